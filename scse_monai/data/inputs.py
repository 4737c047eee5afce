"""Finding and checking inference inputs (NIfTI files and DICOM series folders) before the network runs.

``input`` may be one NIfTI file, one DICOM series folder, or a folder searched at any depth (a CHAOS
``Train_Sets``/``Test_Sets`` tree, ``MR/<id>/T1DUAL/DICOM_anon`` with its ``InPhase``/``OutPhase`` series, a folder
of NIfTI files, or a mix). Every input gets one output name (:func:`scse_monai.data.naming.series_name`: the
CHAOS case names of the converter, else header identifiers or the NIfTI stem), and a run is refused before
anything is written when

- two inputs would get the same name (``scan.nii`` and ``scan.nii.gz``, two series without identifiers), or a
  prediction would overwrite an input, or the output folder lies inside an input;
- a prediction file already exists, unless ``overwrite`` (replace it) or ``skip_existing`` (resume: a series whose
  outputs all exist is skipped; writers replace files atomically, so an existing file is a complete one).

The checks match those of the converter: every NIfTI file is read completely (declared size against the file first,
so a short file cannot trigger a huge allocation; data type and channels checked); every DICOM folder goes through
the converter's series validator (:func:`scse_monai.data.dicom.read_dicom_series`: one series, one modality,
consistent geometry, pixel data of the declared size); only regular files are read (a FIFO named ``x.dcm`` would
block for ever). In a folder of inputs, one that fails these checks is reported in one warning line and skipped, so
the others still run; a single input that fails them is an error. Errors name the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import NIFTI_SUFFIXES, check_output_path, check_regular_file, nifti_stem

if TYPE_CHECKING:
    from scse_monai.data.dicom import DicomSeries

__all__ = ["list_inference_inputs", "find_inference_inputs", "check_inference_input", "NIFTI_SUFFIXES",
           "OUTPUT_FORMATS"]

#: ``output_format`` values: which predictions are written.
OUTPUT_FORMATS = ("nifti", "dicom_seg", "both")
#: extension of the DICOM SEG predictions.
DICOM_SEG_EXT = ".dcm"


def _is_nifti(path: Path) -> bool:
    return nifti_stem(path.name) is not None and not path.name.startswith(".") and not path.is_dir()


def _is_dicom_folder(path: Path) -> bool:
    try:
        return path.is_dir() and any(p.suffix.lower() == ".dcm" and not p.name.startswith(".") for p in path.iterdir())
    except OSError as e:
        raise InvalidInputError(f"cannot read folder ({e.strerror or e})", path) from e


def check_inference_input(path: str | os.PathLike) -> DicomSeries | None:
    """Check one input completely, as the converter checks its inputs (see the module docstring).

    Returns:
        The DICOM series read (without its voxel array) for a series folder, ``None`` for a NIfTI file.

    Raises:
        InvalidInputError: naming the file and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        from scse_monai.data.dicom import read_dicom_series

        # pixels decoded too, as the converter does: a slice whose compressed data (JPEG 2000, ...) has no decoder
        # here or is damaged fails here, naming the slice, not inside the image loader without a file name
        series = read_dicom_series(path, with_pixels=True)
        series.array = None  # checked; the bundle's loader reads the voxels again
        return series
    from scse_monai.data.nifti import read_nifti

    check_regular_file(path, "NIfTI image")
    data, _ = read_nifti(path, "NIfTI image")
    shape = data.shape
    if not (data.ndim == 3 or (data.ndim == 4 and shape[3] == 1)):
        raise InvalidInputError(
            f"image has shape {shape}; expected a 3D volume with one channel (x, y, z) or (x, y, z, 1)", path
        )


def find_inference_inputs(root: str | os.PathLike) -> list[Path]:
    """The NIfTI files and DICOM series folders at ``root`` or anywhere below it, in name order (not checked).

    Hidden files and folders are skipped and symbolic links to folders are not followed (no loops); a series folder
    is searched further too (a sub-folder may hold another series).
    """
    from scse_monai.data.dicom import natural_key

    root = Path(root)
    if _is_nifti(root) or _is_dicom_folder(root):
        return [root]
    found: list[Path] = []

    def walk_error(e: OSError) -> None:
        raise InvalidInputError(f"cannot read folder ({e.strerror or e})", e.filename)

    for folder, dirs, files in os.walk(root, onerror=walk_error):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        here = Path(folder)
        if here != root and _is_dicom_folder(here):
            found.append(here)
        found.extend(here / f for f in sorted(files, key=natural_key) if _is_nifti(here / f))
    return found


def _output_exts(output_format: str, output_ext: str, dicom_input: bool) -> list[str]:
    exts = [output_ext] if output_format in ("nifti", "both") else []
    if output_format in ("dicom_seg", "both") and dicom_input:
        exts.append(DICOM_SEG_EXT)
    return exts


def _check_seg_grid(series: DicomSeries, path: Path) -> None:
    """Refuse a series whose slices are not evenly spaced: the prediction's regular grid cannot carry its SEG."""
    from scse_monai.data.dicom_seg import GRID_TOLERANCE

    step = series.spacing[2]
    if not series.positions_monotonic or series.position_deviation_mm > GRID_TOLERANCE * step:
        raise InvalidInputError(
            f"slice positions deviate up to {series.position_deviation_mm:.3g} mm from an even {step:.3g} mm grid; "
            "expected evenly spaced slices for a DICOM SEG (the prediction's grid is regular): use output_format "
            "nifti for this series",
            path,
        )


def _targets(name: str, output_dir: str | os.PathLike, postfix: str, exts: list[str]) -> list[Path]:
    return [Path(output_dir) / f"{name}_{postfix}{ext}" for ext in exts]


def list_inference_inputs(
    path: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    output_postfix: str = "seg",
    output_ext: str = ".nii.gz",
    output_format: str = "nifti",
    overwrite: bool = False,
    skip_existing: bool = False,
) -> list[dict[str, str]]:
    """``[{"image": ..., "name": ...}, ...]``: every input at or below ``path``, checked, with its output name.

    Args:
        path: a ``.nii``/``.nii.gz`` file; a folder of ``.dcm`` slices (one series); or a folder searched at any
            depth for both (see the module docstring).
        output_dir: where the predictions go (``<name>_<postfix><ext>``); refused if it is or lies inside an input,
            if a prediction would overwrite an input, or if a prediction exists (see ``overwrite``).
        output_postfix: postfix of the prediction names (the bundle's ``output_postfix``).
        output_ext: extension of the NIfTI predictions.
        output_format: ``"nifti"``, ``"dicom_seg"`` (``<name>_<postfix>.dcm``, DICOM series inputs only: NIfTI
            inputs are skipped with a warning; needs the ``dicom`` extra) or ``"both"`` (a NIfTI input then gets
            the NIfTI prediction only).
        overwrite: replace existing predictions (each atomically).
        skip_existing: resume: leave out inputs whose predictions all exist.

    Raises:
        InvalidInputError: when ``path`` does not exist or holds no NIfTI file or DICOM series; a single input fails
            :func:`check_inference_input` (in a folder, failing inputs are skipped with a warning, and an error is
            raised only if none is left); two inputs share an output name; an output collides with an input or
            already exists; or ``output_format`` is unknown or ``"dicom_seg"`` with NIfTI inputs only; or a DICOM SEG
            is asked for a series whose slices are not evenly spaced (its SEG cannot follow the prediction's grid).
        ModuleNotFoundError: ``output_format`` asks for DICOM SEG and highdicom is not installed.
    """
    import logging

    from scse_monai.data.naming import series_name

    logger = logging.getLogger(__name__)
    if output_format not in OUTPUT_FORMATS:
        raise InvalidInputError(f"output_format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    root = Path(path)
    if not root.exists():
        raise InvalidInputError("no such file or folder; expected a NIfTI file or a DICOM series folder", root)
    found = find_inference_inputs(root)
    if not found:
        raise InvalidInputError(
            "found no NIfTI file (.nii, .nii.gz) or DICOM series folder (*.dcm) at any depth", root
        )
    single = len(found) == 1 and found[0] == root
    good: list[Path] = []
    failures: list[str] = []
    for p in found:
        try:
            series = check_inference_input(p)
            if series is not None and output_format != "nifti":
                _check_seg_grid(series, p)
        except InvalidInputError as e:
            if single:
                raise
            failures.append(str(e).replace("\n", " "))
            logger.warning("skipped input: %s", failures[-1])
            continue
        good.append(p)
    if not good:  # the first failure named here too: the message names the file at fault, not only the folder
        raise InvalidInputError(f"none of the {len(found)} inputs found passed the checks (see the warnings); the "
                                f"first: {failures[0]}", root)
    if output_format == "dicom_seg":
        for p in good:
            if not p.is_dir():
                logger.warning("skipped input: %s: a NIfTI file has no DICOM series for a DICOM SEG", p)
        good = [p for p in good if p.is_dir()]
        if not good:
            raise InvalidInputError("output_format 'dicom_seg' needs DICOM series inputs; found NIfTI files only", root)
    if output_format != "nifti":
        from scse_monai.data.dicom_seg import require_highdicom

        require_highdicom()
    names: dict[str, Path] = {}
    entries = []
    for p in good:
        name = series_name(p)
        key = name.casefold()
        if key in names:
            raise InvalidInputError(
                f"{p} and {names[key]} would both be saved as {name}_{output_postfix}*; expected one input per "
                "output name: run them separately, into different output_dir",
                root,
            )
        names[key] = p
        entries.append({"image": str(p), "name": name})
    if output_dir is None:
        return entries
    check_output_path(output_dir, {"input": root}, kind="folder")
    kept, existing = [], []
    for entry in entries:
        p = Path(entry["image"])
        exts = _output_exts(output_format, output_ext, p.is_dir())
        targets = _targets(entry["name"], output_dir, output_postfix, exts)
        for target in targets:
            if any(target.resolve() == Path(q["image"]).resolve() for q in entries):
                raise InvalidInputError(f"the prediction of {p.name} would overwrite the input {target}", target)
        present = [t for t in targets if t.exists()]
        if skip_existing and len(present) == len(targets):
            logger.info("%s: skipped, its prediction %s exists (skip_existing)", p, ", ".join(t.name for t in targets))
            continue
        if present and not overwrite:
            existing.extend(present)
        kept.append(entry)
    if entries and not kept:
        logger.warning("all %d inputs have their predictions in %s (skip_existing): nothing to do", len(entries),
                       output_dir)
    if existing:
        shown = ", ".join(str(t) for t in existing[:3])
        shown += f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise InvalidInputError(
            f"{len(existing)} prediction(s) exist already: {shown}; expected a new output: pass --overwrite true to "
            "replace them, or --skip_existing true to segment only the series without a prediction",
            output_dir,
        )
    return kept

