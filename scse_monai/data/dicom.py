"""The DICOM series reader and geometry: one validated volume per folder of slices, in file-name order.

The CHAOS organisers fix the slice order by file name, not by DICOM position tags ("In CHAOS challenge the
orientation of the slices is determined by order of image names NOT by position tags in DICOM files",
``CHAOSmetrics.py`` in emrekavur/CHAOS-evaluation). This module is the one place that fixes that order: every
slice reader sorts by :func:`natural_key` on the file name (:func:`list_slices`; the CHAOS Ground PNG reader,
:func:`scse_monai.apps.chaos.io.read_png_stack`, uses it too), so the k-th DICOM pairs with the k-th PNG.

Array convention: axes ``(i, j, k) = (DICOM column, DICOM row, slice in name order)``, i.e.
``volume[:, :, k] == pixel_array_k.T``; no flips. The affine is nibabel RAS, built from the DICOM LPS geometry of the
first and last file in name order (as the official evaluation does), with the slice spacing taken from
ImagePositionPatient, never from SliceThickness (the real CT sample has a 2.0 mm step and SliceThickness 3.2).

pydicom is imported on first read, so that importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scse_monai.errors import InvalidInputError
from scse_monai.utils.paths import check_regular_file

__all__ = ["DicomSeries", "natural_key", "list_slices", "read_dicom_series", "dicom_affine"]

logger = logging.getLogger(__name__)

_DIGITS = re.compile(r"([0-9]+)")  # ASCII digits only: '²'.isdigit() is True but int('²') fails


def natural_key(path: str | os.PathLike) -> tuple:
    """Natural sort key on the file *name*: digit runs compare as integers (``img2 < img10``), text case-folded.

    Args:
        path: a file path or name; only its last component is used.

    Returns:
        A tuple usable as ``sorted(..., key=natural_key)``; each part is ``(0, int)`` or ``(1, str)`` so that digit
        and text parts never get compared with each other.
    """
    name = Path(path).name
    return tuple((0, int(t)) if _DIGITS.fullmatch(t) else (1, t.casefold()) for t in _DIGITS.split(name) if t)


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
    try:
        if not folder.is_dir():
            raise InvalidInputError(f"folder not found; expected a folder of {suffix} slice files", folder)
        files = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name.lower().endswith(suffix.lower())]
        files = [p for p in files if not p.is_dir()]
    except OSError as e:
        raise InvalidInputError(f"cannot read folder ({e.strerror or e}); expected a readable folder", folder) from e
    for p in files:  # a FIFO named x.dcm would block the reader for ever
        check_regular_file(p, f"{suffix} slice")
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
        position_deviation_mm: the largest distance between a slice's ImagePositionPatient and where the
            first/last-file affine puts it (0 for evenly spaced slices).
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
    position_deviation_mm: float = 0.0


def dicom_affine(
    iop, pixel_spacing, ipp_first, ipp_last, n: int, thickness: float | None = None, convention: str = "ras"
) -> np.ndarray:
    """The one voxel ``(column, row, slice)`` -> mm matrix from DICOM geometry (first/last file in name order).

    Slices step by ``(IPP_last - IPP_first) / (n - 1)`` (the official CHAOS evaluation's mapping; for one slice the
    slice normal IOP[0:3] x IOP[3:6] times ``thickness``, 1 mm if ``None``). The in-plane columns depend on
    ``convention``:

    - ``"ras"`` (NIfTI files, the data contract): the DICOM standard's convention, columns step along IOP[0:3] by
      PixelSpacing[1], rows along IOP[3:6] by PixelSpacing[0]; LPS rows 0 and 1 negated to RAS.
    - ``"chaos"``: the organisers' ``transformToRealCoordinates`` (CHAOS-evaluation), in LPS. It builds
      ``M = [X*di, Y*dj, (T1 - TN)/(1 - N), T1]`` and feeds ``(row, column, slice, 1)``, i.e. X*di multiplies the
      *row* index, the transpose of the DICOM convention (harmless with square pixels and axis-aligned orientation).
      Re-indexed for ``(column, row, slice)`` arrays: ``M_ours @ (i, j, k, 1) == M @ (j, i, k, 1)``, which
      reproduces the official points exactly (this is what the CHAOS metrics must use).

    Args:
        iop: ImageOrientationPatient, 6 values.
        pixel_spacing: PixelSpacing (row, column) in mm.
        ipp_first: ImagePositionPatient of the first slice.
        ipp_last: ImagePositionPatient of the last slice.
        n: number of slices.
        thickness: only for ``n == 1``: the step along the slice normal.
        convention: ``"ras"`` or ``"chaos"``.
    """
    if convention not in ("ras", "chaos"):
        raise ValueError(f"convention must be 'ras' or 'chaos', got {convention!r}.")
    iop = np.asarray(iop, dtype=np.float64)
    x_dir, y_dir = iop[:3], iop[3:6]
    ps = np.asarray(pixel_spacing, dtype=np.float64)
    first = np.asarray(ipp_first, dtype=np.float64)
    last = np.asarray(ipp_last, dtype=np.float64)
    if n > 1:
        step = (last - first) / (n - 1)
    else:
        step = np.cross(x_dir, y_dir) * (float(thickness) if thickness else 1.0)
    column_dir, row_dir = (x_dir, y_dir) if convention == "ras" else (y_dir, x_dir)
    m = np.eye(4)
    m[:3, 0] = column_dir * ps[1]
    m[:3, 1] = row_dir * ps[0]
    m[:3, 2] = step
    m[:3, 3] = first
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ m if convention == "ras" else m


_PIXEL_DATA = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: largest image (rows x columns x frames) accepted with compressed pixel data, whose size cannot be checked before
#: decoding: far above CT/MR slices (512 x 512), far below what would exhaust memory.
_MAX_ENCAPSULATED_PIXELS = 8192 * 8192


def _read_header(path: Path):
    """All elements of ``path`` parsed now (a malformed one fails here, naming the file); pixel data deferred."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        check_regular_file(path, "DICOM slice")
        # Pixel data is only located here (defer_size), so its declared size can be checked before it is read.
        ds = pydicom.dcmread(path, defer_size=4096)
        # pydicom parses element values lazily; touch every element now so that a malformed one (unknown VR, bad
        # length, undecodable text) fails here, naming this file, rather than at some later attribute access.
        for _ in ds.file_meta:
            pass
        for tag in list(ds.keys()):
            if tag != _PIXEL_DATA:
                ds[tag]
        return ds
    except InvalidInputError:
        raise
    except InvalidDicomError as e:
        raise InvalidInputError(f"not a DICOM file ({e}); expected a DICOM slice", path) from e
    except Exception as e:  # truncated or corrupt files raise a variety of low-level errors (EOFError, struct.error)
        msg = f"unreadable DICOM file ({type(e).__name__}: {e}); expected a DICOM slice"
        raise InvalidInputError(msg, path) from e


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


def _one_value(files: list[Path], headers: list, keyword: str, what: str) -> str:
    """The single value of ``keyword`` over the series ('' if absent everywhere); an error names the first outlier."""
    values = [str(ds.get(keyword, "") or "").strip() for ds in headers]
    if len(set(values)) > 1:
        k = next(i for i, v in enumerate(values) if v != values[0])
        raise InvalidInputError(
            f"{keyword} {values[k] or '(missing)'!r} differs from {values[0] or '(missing)'!r} of {files[0].name} "
            f"({len(set(values))} {what}s in one folder); expected one {what} per folder",
            files[k],
        )
    return values[0]


def _rescale(ds, path: Path) -> tuple[float, float]:
    """(slope, intercept); both tags or neither (then 1, 0). A lone or degenerate tag would give wrong values."""
    has_slope, has_intercept = "RescaleSlope" in ds, "RescaleIntercept" in ds
    if has_slope != has_intercept:
        present, missing = ("RescaleSlope", "RescaleIntercept") if has_slope else ("RescaleIntercept", "RescaleSlope")
        raise InvalidInputError(f"{present} without {missing}; expected both rescale tags or neither", path)
    if "ModalityLUTSequence" in ds:
        raise InvalidInputError("Modality LUT Sequence is not supported; expected RescaleSlope/RescaleIntercept", path)
    if not has_slope:
        return 1.0, 0.0
    slope = float(_tag_floats(ds, "RescaleSlope", 1, path)[0])
    intercept = float(_tag_floats(ds, "RescaleIntercept", 1, path)[0])
    if slope == 0:
        raise InvalidInputError("RescaleSlope 0 maps every voxel to one value; expected a non-zero slope", path)
    return slope, intercept


def _check_pixel_data(ds, path: Path, size: tuple[int, int]) -> None:
    """Declared image size against the pixel data element, before any pixel buffer is allocated."""
    elem = ds.get_item(_PIXEL_DATA)
    if elem is None:
        raise InvalidInputError(f"no PixelData; expected a {size[0]}x{size[1]} DICOM image", path)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames_raw = ds.get("NumberOfFrames", 1)
    try:
        frames = int(frames_raw or 1)
    except (TypeError, ValueError):
        frames = -1
    if samples != 1 or frames != 1:
        raise InvalidInputError(
            f"SamplesPerPixel {samples}, NumberOfFrames {frames_raw!r}; expected one greyscale frame per file", path
        )
    bits = int(_tag_floats(ds, "BitsAllocated", 1, path)[0])
    value = getattr(elem, "value", None)
    length = getattr(elem, "length", None)
    if length is None:
        length = len(value) if value is not None else 0
    pixels = size[0] * size[1]
    if length == _UNDEFINED_LENGTH or getattr(elem, "is_undefined_length", False):
        if pixels > _MAX_ENCAPSULATED_PIXELS:
            raise InvalidInputError(f"declared image {size[0]}x{size[1]} is too large for a slice", path)
        return
    expected = (pixels + 7) // 8 if bits == 1 else pixels * ((bits + 7) // 8)
    start = getattr(elem, "value_tell", None)
    available = length
    if start is not None and value is None:  # deferred: what the file really holds after the element header
        available = min(length, max(0, os.path.getsize(path) - int(start)))
    if available < expected:
        raise InvalidInputError(
            f"pixel data holds {available} bytes but Rows x Columns {size[0]}x{size[1]} at {bits} bits needs "
            f"{expected}; expected a complete image (truncated file or wrong size tags)",
            path,
        )


@dataclass
class _Geometry:
    size: tuple[int, int]
    iop: np.ndarray
    ps: np.ndarray
    ipps: np.ndarray
    rescale: list[tuple[float, float]]


def _validate_slices(files: list[Path], headers: list) -> _Geometry:
    """Per-slice checks of a series against its first slice: size, pixel data, spacing, orientation, rescale."""
    first = headers[0]
    size = (int(_tag_floats(first, "Rows", 1, files[0])[0]), int(_tag_floats(first, "Columns", 1, files[0])[0]))
    if not size[0] > 0 < size[1]:
        raise InvalidInputError(f"Rows x Columns {size[0]}x{size[1]}; expected a non-empty image", files[0])
    iop = _tag_floats(first, "ImageOrientationPatient", 6, files[0])
    x_dir, y_dir = iop[:3], iop[3:]
    # Orthonormal: both cosines unit length AND perpendicular (a cross product of length 1 checks neither alone).
    if not (abs(np.linalg.norm(x_dir) - 1) < 1e-3 and abs(np.linalg.norm(y_dir) - 1) < 1e-3
            and abs(float(x_dir @ y_dir)) < 1e-3):
        raise InvalidInputError(
            f"ImageOrientationPatient {iop.tolist()} (lengths {np.linalg.norm(x_dir):.4g}, {np.linalg.norm(y_dir):.4g},"
            f" dot product {float(x_dir @ y_dir):.4g}); expected two orthogonal unit direction cosines",
            files[0],
        )
    ps = _tag_floats(first, "PixelSpacing", 2, files[0])
    if not np.all(ps > 0):
        raise InvalidInputError(f"PixelSpacing {ps.tolist()}; expected two positive spacings (mm)", files[0])
    ipps, rescale = [], []
    rescaled = "RescaleSlope" in first or "RescaleIntercept" in first
    for path, ds in zip(files, headers, strict=True):
        this_size = (int(_tag_floats(ds, "Rows", 1, path)[0]), int(_tag_floats(ds, "Columns", 1, path)[0]))
        if this_size != size:
            raise InvalidInputError(
                f"slice size {this_size[0]}x{this_size[1]} (rows x columns) differs from the series' first slice "
                f"{files[0].name} ({size[0]}x{size[1]}); expected all slices of a series to have the same size",
                path,
            )
        _check_pixel_data(ds, path, size)
        if not np.allclose(_tag_floats(ds, "PixelSpacing", 2, path), ps, atol=1e-4):
            raise InvalidInputError(f"PixelSpacing differs from {files[0].name}; expected one spacing per series", path)
        if not np.allclose(_tag_floats(ds, "ImageOrientationPatient", 6, path), iop, atol=1e-4):
            raise InvalidInputError(
                f"ImageOrientationPatient differs from {files[0].name}; expected one orientation per series", path
            )
        if ("RescaleSlope" in ds or "RescaleIntercept" in ds) != rescaled:
            raise InvalidInputError(
                f"rescale tags {'missing' if rescaled else 'present'} here but {'present' if rescaled else 'missing'} "
                f"in {files[0].name}; expected every slice in the same units (e.g. HU)",
                path,
            )
        rescale.append(_rescale(ds, path))
        ipps.append(_tag_floats(ds, "ImagePositionPatient", 3, path))
    return _Geometry(size, iop, ps, np.stack(ipps), rescale)


def _check_positions(files: list[Path], ipps: np.ndarray, normal: np.ndarray, folder) -> tuple[bool, bool, float]:
    """Positions distinct and evenly spaced; returns (monotonic in name order, name order == ascending, deviation).

    Two files at one position (anywhere in the series) are an error: they cannot both be slices of one volume.
    Uneven spacing and a non-monotonic name order are warnings with the measured deviation: the organisers' rule
    orders CHAOS slices by name and maps them with the first/last-file affine whatever the positions are.
    """
    n = len(files)
    proj = ipps @ normal
    order = np.argsort(proj, kind="stable")
    gaps = np.diff(proj[order])
    close = np.flatnonzero(gaps < 1e-3)
    if close.size:
        a, b = sorted((int(order[close[0]]), int(order[close[0] + 1])))
        raise InvalidInputError(
            f"same slice position {proj[b]:.4g} mm along the normal (ImagePositionPatient {ipps[b].tolist()}) as "
            f"{files[a].name}; expected one position per slice (duplicate or mixed-in slice)",
            files[b],
        )
    diffs = np.diff(proj)
    monotonic = bool(n == 1 or np.all(diffs > 0) or np.all(diffs < 0))
    ascending = bool(np.array_equal(order, np.arange(n)) and monotonic)
    deviation = 0.0
    if n > 2:
        # Where the first/last-file affine puts each slice vs where its header says it is.
        expected = ipps[0] + np.outer(np.arange(n), (ipps[-1] - ipps[0]) / (n - 1))
        errors = np.linalg.norm(ipps - expected, axis=1)
        k = int(np.argmax(errors))
        deviation = float(errors[k])
        step = float(np.linalg.norm(ipps[-1] - ipps[0]) / (n - 1))
        if not monotonic:
            logger.warning(
                "%s: slice positions along the normal are not monotonic in file-name order; the first/last affine "
                "places %s %.3g mm from its ImagePositionPatient",
                folder, files[k].name, deviation,
            )
        elif deviation > max(0.01 * step, 1e-3):
            logger.warning(
                "%s: uneven slice spacing (%.4g..%.4g mm); the first/last affine places %s %.3g mm (%.0f%% of a "
                "slice step) from its ImagePositionPatient",
                folder, float(np.abs(diffs).min()), float(np.abs(diffs).max()), files[k].name, deviation,
                100 * deviation / max(step, 1e-9),
            )
    return monotonic, ascending, deviation


def read_dicom_series(folder: str | os.PathLike, with_pixels: bool = True) -> DicomSeries:
    """Read and validate every ``*.dcm`` slice of ``folder`` in natural name order (the organisers' order).

    This is the one DICOM series validator (the converter and the bundle's inference inputs both use it):

    - one series: a single SeriesInstanceUID and a single Modality over the folder;
    - every slice a complete single-frame greyscale image of the first slice's Rows x Columns, the declared size
      checked against the pixel data before any pixel buffer is allocated;
    - one PixelSpacing (positive) and one ImageOrientationPatient (orthonormal within 1e-3) per series;
    - RescaleSlope/RescaleIntercept both present or both absent, on every slice alike, finite, slope non-zero;
    - positions distinct along the slice normal; uneven spacing or a non-monotonic name order is logged with the
      deviation (in mm) between the first/last-file affine and the slice's own ImagePositionPatient.

    Args:
        folder: a folder with one DICOM file per slice (e.g. ``CT/1/DICOM_anon`` or ``T1DUAL/DICOM_anon/InPhase``).
        with_pixels: ``False`` reads headers only (fast); ``array`` is then ``None``.

    Raises:
        InvalidInputError: for any violation above, an unreadable or truncated file, or a missing geometry tag; the
            message names the file and what was expected.
    """
    files = list_slices(folder, ".dcm")
    headers = [_read_header(p) for p in files]
    _one_value(files, headers, "SeriesInstanceUID", "series")
    modality = _one_value(files, headers, "Modality", "modality")
    geo = _validate_slices(files, headers)
    size, iop, ps, ipps_arr = geo.size, geo.iop, geo.ps, geo.ipps
    n = len(files)
    normal = np.cross(iop[:3], iop[3:6])
    monotonic, matches, deviation = _check_positions(files, ipps_arr, normal, folder)
    echo_times = {t for t in (_optional_float(ds, "EchoTime") for ds in headers) if t is not None}
    first = headers[0]
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
        for k, (path, ds) in enumerate(zip(files, headers, strict=True)):
            try:
                pixels = ds.pixel_array
            except Exception as e:  # truncated pixel data, unsupported transfer syntax, missing decoder ...
                raise InvalidInputError(
                    f"cannot decode pixel data ({type(e).__name__}: {e}); expected a complete "
                    f"{size[0]}x{size[1]} DICOM image",
                    path,
                ) from e
            if pixels.shape != size:
                raise InvalidInputError(f"pixel array shape {pixels.shape} != Rows x Columns {size}", path)
            slope, intercept = geo.rescale[k]
            values = (pixels.astype(np.float64) * slope + intercept).astype(np.float32)
            if not np.all(np.isfinite(values)):
                raise InvalidInputError(
                    f"RescaleSlope {slope:g} / RescaleIntercept {intercept:g} give voxel values beyond float32; "
                    "expected finite numbers",
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
        modality=modality,
        echo_time=_optional_float(first, "EchoTime"),
        name_order_matches_position=matches,
        echo_times=tuple(sorted(echo_times)),
        positions_monotonic=monotonic,
        shape=(size[1], size[0], n),
        position_deviation_mm=deviation,
    )
