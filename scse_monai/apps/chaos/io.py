"""Readers for CHAOS DICOM series and Ground PNG stacks, in the organisers' slice order.

The CHAOS organisers fix the slice order by file name, not by DICOM position tags ("In CHAOS challenge the
orientation of the slices is determined by order of image names NOT by position tags in DICOM files",
``CHAOSmetrics.py`` in emrekavur/CHAOS-evaluation). This module is the one place that fixes that order: every
reader here sorts by :func:`natural_key` on the file name, and the k-th DICOM pairs with the k-th PNG.

Array convention (see ``notes/DATA_CONTRACT.md``): axes ``(i, j, k) = (DICOM column, DICOM row, slice in name
order)``, i.e. ``volume[:, :, k] == pixel_array_k.T``; no flips. The affine is nibabel RAS, built from the DICOM LPS
geometry of the first and last file in name order (as the official evaluation does), with the slice spacing taken
from ImagePositionPatient, never from SliceThickness (the real CT sample has a 2.0 mm step and SliceThickness 3.2).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scse_monai.errors import InvalidInputError

__all__ = ["DicomSeries", "natural_key", "list_slices", "read_dicom_series", "read_png_stack", "dicom_affine"]

logger = logging.getLogger(__name__)

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str | os.PathLike) -> tuple:
    """Natural sort key on the file *name*: digit runs compare as integers (``img2 < img10``), text case-folded.

    Args:
        path: a file path or name; only its last component is used.

    Returns:
        A tuple usable as ``sorted(..., key=natural_key)``; each part is ``(0, int)`` or ``(1, str)`` so that digit
        and text parts never get compared with each other.
    """
    name = Path(path).name
    return tuple((0, int(t)) if t.isdigit() else (1, t.casefold()) for t in _DIGITS.split(name) if t)


def list_slices(folder: str | os.PathLike, suffix: str = ".dcm") -> list[Path]:
    """List the slice files of ``folder`` in natural name order.

    Hidden files (names starting with ``.``, e.g. macOS ``._x.dcm`` resource forks, which the official MATLAB
    reader also drops) and sub-folders are skipped; the suffix is matched case-insensitively.

    Args:
        folder: the folder holding one file per slice.
        suffix: file suffix to keep, e.g. ``".dcm"`` or ``".png"``.

    Raises:
        InvalidInputError: if ``folder`` is not a folder or holds no ``*<suffix>`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"folder not found; expected a folder of {suffix} slice files", folder)
    files = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.name.lower().endswith(suffix.lower()) and p.is_file()
    ]
    if not files:
        raise InvalidInputError(f"no {suffix} files found; expected one {suffix} file per slice", folder)
    return sorted(files, key=natural_key)


@dataclass
class DicomSeries:
    """One DICOM series read in natural file-name order.

    Attributes:
        array: float32 voxel values, shape ``(columns, rows, slices)`` (``None`` when read without pixels); CT in
            HU, MR as stored value * RescaleSlope + RescaleIntercept.
        affine: 4x4 float64 voxel -> RAS (mm) matrix; see :func:`dicom_affine`.
        files: the slice files in name order (slice k of ``array`` comes from ``files[k]``).
        spacing: voxel size in mm along the array axes: (column spacing, row spacing, |IPP step|).
        ipp_first: ImagePositionPatient (LPS, mm) of the first file in name order.
        ipp_last: ImagePositionPatient of the last file in name order.
        iop: ImageOrientationPatient (6 direction cosines: row direction then column direction).
        pixel_spacing: DICOM PixelSpacing (row spacing, column spacing) in mm.
        modality: DICOM Modality, e.g. ``"CT"`` or ``"MR"``.
        echo_time: EchoTime (ms) of the first file, ``None`` if absent.
        name_order_matches_position: ``True`` if name order equals the order by ascending position along the slice
            normal (IOP row x column direction). ``False`` for the real CT sample, whose names run superior to
            inferior.
        echo_times: the distinct EchoTime values over all files (sorted), to detect mixed echoes in one folder.
        positions_monotonic: ``True`` if the slice positions along the normal are strictly monotonic in name order,
            i.e. the first/last-file affine describes every slice.
        shape: ``(columns, rows, slices)``, also set when read without pixels.
    """

    array: np.ndarray | None
    affine: np.ndarray
    files: list[Path]
    spacing: tuple[float, float, float]
    ipp_first: tuple[float, float, float]
    ipp_last: tuple[float, float, float]
    iop: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    modality: str
    echo_time: float | None
    name_order_matches_position: bool
    echo_times: tuple[float, ...] = field(default_factory=tuple)
    positions_monotonic: bool = True
    shape: tuple[int, int, int] = (0, 0, 0)


def dicom_affine(
    iop: np.ndarray, pixel_spacing: np.ndarray, ipp_first: np.ndarray, ipp_last: np.ndarray, n: int, thickness=None
) -> np.ndarray:
    """Voxel ``(column, row, slice)`` -> RAS affine from DICOM LPS geometry (first/last file in name order).

    Columns step along IOP[0:3] by PixelSpacing[1], rows along IOP[3:6] by PixelSpacing[0], slices by
    ``(IPP_last - IPP_first) / (n - 1)`` (the official CHAOS evaluation's mapping, with the DICOM column/row
    convention); rows 0 and 1 are negated to go from LPS to RAS.

    Args:
        iop: ImageOrientationPatient, 6 values.
        pixel_spacing: PixelSpacing (row, column) in mm.
        ipp_first: ImagePositionPatient of the first slice.
        ipp_last: ImagePositionPatient of the last slice.
        n: number of slices.
        thickness: only for ``n == 1``: the step along the slice normal (SliceThickness; 1.0 if ``None``).
    """
    iop = np.asarray(iop, dtype=np.float64)
    x_dir, y_dir = iop[:3], iop[3:6]
    ps = np.asarray(pixel_spacing, dtype=np.float64)
    first = np.asarray(ipp_first, dtype=np.float64)
    last = np.asarray(ipp_last, dtype=np.float64)
    if n > 1:
        step = (last - first) / (n - 1)
    else:
        step = np.cross(x_dir, y_dir) * (float(thickness) if thickness else 1.0)
    lps = np.eye(4)
    lps[:3, 0] = x_dir * ps[1]
    lps[:3, 1] = y_dir * ps[0]
    lps[:3, 2] = step
    lps[:3, 3] = first
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _read_header(path: Path, with_pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not with_pixels)
        # pydicom parses element values lazily; touch every element now so that a malformed one (unknown VR, bad
        # length, undecodable text) fails here, naming this file, rather than at some later attribute access.
        for _ in ds.file_meta:
            pass
        for _ in ds:
            pass
        return ds
    except InvalidDicomError as e:
        raise InvalidInputError(f"not a DICOM file ({e}); expected a DICOM slice", path) from None
    except Exception as e:  # truncated or corrupt files raise a variety of low-level errors (EOFError, struct.error)
        msg = f"unreadable DICOM file ({type(e).__name__}: {e}); expected a DICOM slice"
        raise InvalidInputError(msg, path) from None


def _tag_floats(ds, keyword: str, count: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    try:
        arr = np.asarray([float(v) for v in (value if count > 1 else [value])], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if value is None or arr.size != count or not np.all(np.isfinite(arr)):
        msg = f"DICOM tag {keyword} is missing or malformed ({value!r}); expected {count} number(s)"
        raise InvalidInputError(msg, path)
    return arr


def _optional_float(ds, keyword: str) -> float | None:
    """A single numeric tag, or ``None`` when it is absent or not one finite number (informational tags only)."""
    try:
        value = float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def read_dicom_series(folder: str | os.PathLike, with_pixels: bool = True) -> DicomSeries:
    """Read every ``*.dcm`` slice of ``folder`` in natural name order (the organisers' order), without reordering.

    Args:
        folder: a folder with one DICOM file per slice (e.g. ``CT/1/DICOM_anon`` or ``T1DUAL/DICOM_anon/InPhase``).
        with_pixels: ``False`` reads headers only (fast); ``array`` is then ``None``.

    Raises:
        InvalidInputError: if the folder is missing or empty, a file is not readable DICOM or is truncated, a
            geometry tag is missing, or the slices differ in size, PixelSpacing or ImageOrientationPatient; the
            message names the file and what was expected.
    """
    files = list_slices(folder, ".dcm")
    headers = [_read_header(p, with_pixels) for p in files]
    first = headers[0]
    rows_cols = (_tag_floats(first, "Rows", 1, files[0]), _tag_floats(first, "Columns", 1, files[0]))
    size = (int(rows_cols[0][0]), int(rows_cols[1][0]))
    iop = _tag_floats(first, "ImageOrientationPatient", 6, files[0])
    ps = _tag_floats(first, "PixelSpacing", 2, files[0])
    if not np.all(ps > 0):
        raise InvalidInputError(f"PixelSpacing {ps.tolist()}; expected two positive spacings (mm)", files[0])
    if not size[0] > 0 < size[1]:
        raise InvalidInputError(f"Rows x Columns {size[0]}x{size[1]}; expected a non-empty image", files[0])
    if not np.isclose(np.linalg.norm(np.cross(iop[:3], iop[3:6])), 1.0, atol=1e-3):
        raise InvalidInputError(
            f"ImageOrientationPatient {iop.tolist()}; expected two orthogonal unit direction cosines", files[0]
        )
    ipps = []
    echo_times: set[float] = set()
    for path, ds in zip(files, headers, strict=True):
        this_size = (int(_tag_floats(ds, "Rows", 1, path)[0]), int(_tag_floats(ds, "Columns", 1, path)[0]))
        if this_size != size:
            raise InvalidInputError(
                f"slice size {this_size[0]}x{this_size[1]} (rows x columns) differs from the series' first slice "
                f"{files[0].name} ({size[0]}x{size[1]}); expected all slices of a series to have the same size",
                path,
            )
        if not np.allclose(_tag_floats(ds, "PixelSpacing", 2, path), ps, atol=1e-4):
            raise InvalidInputError(f"PixelSpacing differs from {files[0].name}; expected one spacing per series", path)
        if not np.allclose(_tag_floats(ds, "ImageOrientationPatient", 6, path), iop, atol=1e-4):
            raise InvalidInputError(
                f"ImageOrientationPatient differs from {files[0].name}; expected one orientation per series", path
            )
        ipps.append(_tag_floats(ds, "ImagePositionPatient", 3, path))
        echo_time = _optional_float(ds, "EchoTime")
        if echo_time is not None:
            echo_times.add(echo_time)
    ipps_arr = np.stack(ipps)
    n = len(files)
    normal = np.cross(iop[:3], iop[3:6])
    proj = ipps_arr @ normal
    diffs = np.diff(proj)
    # Two files at one position (a duplicated or mixed-in slice) make the first/last affine describe no slice
    # correctly; unlike a merely reversed order this cannot be a CHAOS series.
    same = np.flatnonzero(np.linalg.norm(np.diff(ipps_arr, axis=0), axis=1) < 1e-6)
    if same.size:
        k = int(same[0])
        raise InvalidInputError(
            f"same ImagePositionPatient {ipps_arr[k].tolist()} as {files[k].name}; expected one position per slice",
            files[k + 1],
        )
    monotonic = bool(n == 1 or np.all(diffs > 0) or np.all(diffs < 0))
    matches = bool(np.array_equal(np.argsort(proj, kind="stable"), np.arange(n)) and monotonic)
    if not monotonic:
        logger.warning(
            "%s: slice positions along the normal are not strictly monotonic in file-name order; the first/last "
            "affine does not describe every slice",
            folder,
        )
    elif n > 2 and np.ptp(diffs) > 0.01 * max(abs(float(np.mean(diffs))), 1e-6):
        logger.warning("%s: slice spacing varies along the series (%.4g..%.4g mm)", folder, diffs.min(), diffs.max())
    thickness = None
    if n == 1:
        # One file gives no position step: the data contract falls back to SliceThickness, else 1 mm.
        thickness = _optional_float(first, "SliceThickness")
        if thickness is not None and thickness <= 0:
            thickness = None
        logger.warning(
            "%s: single-slice series; slice spacing taken from %s", folder,
            f"SliceThickness ({thickness:g} mm)" if thickness else "no valid SliceThickness: 1.0 mm",
        )
    affine = dicom_affine(iop, ps, ipps_arr[0], ipps_arr[-1], n, thickness)
    step = float(np.linalg.norm(affine[:3, 2]))
    array = None
    if with_pixels:
        array = np.empty((size[1], size[0], n), dtype=np.float32)
        try:
            from pydicom.pixels import apply_rescale
        except ImportError:  # pydicom 2.4 (MONAI Label's server packages pin it): the same function, older name
            from pydicom.pixel_data_handlers.util import apply_modality_lut as apply_rescale

        for k, (path, ds) in enumerate(zip(files, headers, strict=True)):
            try:
                pixels = ds.pixel_array
            except Exception as e:  # truncated pixel data, unsupported transfer syntax, missing decoder ...
                raise InvalidInputError(
                    f"cannot decode pixel data ({type(e).__name__}: {e}); expected a complete "
                    f"{size[0]}x{size[1]} DICOM image",
                    path,
                ) from None
            if pixels.shape != size:
                raise InvalidInputError(f"pixel array shape {pixels.shape} != Rows x Columns {size}", path)
            try:
                values = np.asarray(apply_rescale(pixels, ds), dtype=np.float32)
            except (TypeError, ValueError, AttributeError) as e:  # malformed RescaleSlope/RescaleIntercept
                msg = f"cannot apply RescaleSlope/RescaleIntercept ({type(e).__name__}: {e}); expected numbers"
                raise InvalidInputError(msg, path) from None
            if not np.all(np.isfinite(values)):
                raise InvalidInputError(
                    f"RescaleSlope {ds.get('RescaleSlope')!r} / RescaleIntercept {ds.get('RescaleIntercept')!r} give "
                    "non-finite voxel values; expected finite numbers",
                    path,
                )
            array[:, :, k] = values.T
    return DicomSeries(
        array=array,
        affine=affine,
        files=files,
        spacing=(float(ps[1]), float(ps[0]), step),
        ipp_first=tuple(float(v) for v in ipps_arr[0]),
        ipp_last=tuple(float(v) for v in ipps_arr[-1]),
        iop=tuple(float(v) for v in iop),
        pixel_spacing=(float(ps[0]), float(ps[1])),
        modality=str(first.get("Modality", "") or ""),
        echo_time=_optional_float(first, "EchoTime"),
        name_order_matches_position=matches,
        echo_times=tuple(sorted(echo_times)),
        positions_monotonic=monotonic,
        shape=(size[1], size[0], n),
    )


def read_png_stack(folder: str | os.PathLike) -> np.ndarray:
    """Read the ``*.png`` masks of ``folder`` in natural name order as a ``uint8`` array ``(columns, rows, slices)``.

    Raw values are kept: 1-bit PNGs (PIL mode ``"1"``, the CHAOS CT Ground) give 0/1, 8-bit greyscale (mode ``"L"``,
    the MR Ground) gives 0..255. ``stack[:, :, k] == png_k.T``; no flips.

    Raises:
        InvalidInputError: if the folder is missing or empty, a PNG cannot be read, has another mode, or differs in
            size from the first PNG.
    """
    from PIL import Image

    files = list_slices(folder, ".png")
    slices = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode not in ("1", "L"):
                    raise InvalidInputError(
                        f"PNG mode {mode!r}; expected a 1-bit (mode '1') or 8-bit greyscale (mode 'L') mask", path
                    )
                arr = np.asarray(img, dtype=np.uint8)
        except InvalidInputError:
            raise
        except Exception as e:
            msg = f"unreadable PNG ({type(e).__name__}: {e}); expected a greyscale mask"
            raise InvalidInputError(msg, path) from None
        if slices and arr.shape != slices[0].shape:
            raise InvalidInputError(
                f"mask size {arr.shape[0]}x{arr.shape[1]} (rows x columns) differs from {files[0].name} "
                f"({slices[0].shape[0]}x{slices[0].shape[1]}); expected all masks of a case to have the same size",
                path,
            )
        slices.append(arr)
    return np.ascontiguousarray(np.stack(slices, axis=-1).transpose(1, 0, 2))
