"""Finding and checking inference inputs (NIfTI files and DICOM series folders) before the network runs.

The checks match those of the converter: every NIfTI file is read completely (declared size against the file first,
so a short file cannot trigger a huge allocation; data type and channels checked); every DICOM folder goes through
the converter's series validator (:func:`scse_monai.data.dicom.read_dicom_series`: one series, one modality,
consistent geometry, pixel data of the declared size); only regular files are read (a FIFO named ``x.dcm`` would
block for ever); and two inputs that would write the same prediction file (``scan.nii`` and ``scan.nii.gz``) or an
output folder inside an input are refused. Errors name the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import NIFTI_SUFFIXES, case_name, check_output_path, check_regular_file, nifti_stem

__all__ = ["list_inference_inputs", "check_inference_input", "NIFTI_SUFFIXES"]


def _is_nifti(path: Path) -> bool:
    return nifti_stem(path.name) is not None and not path.name.startswith(".") and not path.is_dir()


def _is_dicom_folder(path: Path) -> bool:
    try:
        return path.is_dir() and any(p.suffix.lower() == ".dcm" and not p.name.startswith(".") for p in path.iterdir())
    except OSError as e:
        raise InvalidInputError(f"cannot read folder ({e.strerror or e})", path) from e


def check_inference_input(path: str | os.PathLike) -> None:
    """Check one input completely, as the converter checks its inputs (see the module docstring).

    Raises:
        InvalidInputError: naming the file and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        from scse_monai.data.dicom import read_dicom_series

        read_dicom_series(path, with_pixels=False)
        return
    from scse_monai.data.nifti import read_nifti

    check_regular_file(path, "NIfTI image")
    data, _ = read_nifti(path, "NIfTI image")
    shape = data.shape
    if not (data.ndim == 3 or (data.ndim == 4 and shape[3] == 1)):
        raise InvalidInputError(
            f"image has shape {shape}; expected a 3D volume with one channel (x, y, z) or (x, y, z, 1)", path
        )


def list_inference_inputs(
    path: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    output_postfix: str = "seg",
    output_ext: str = ".nii.gz",
) -> list[dict[str, str]]:
    """``[{"image": ...}, ...]`` for a NIfTI file, a DICOM series folder, or a folder holding either, all checked.

    Args:
        path: a ``.nii``/``.nii.gz`` file; a folder of ``.dcm`` slices (one series); or a folder whose NIfTI files and
            DICOM sub-folders are each one input (sorted by name).
        output_dir: where the predictions go (``<name>_<postfix><ext>``); refused if it is or lies inside an input,
            or if a prediction would overwrite an input.
        output_postfix: postfix of the prediction names (the bundle's ``output_postfix``).
        output_ext: extension of the prediction files.

    Raises:
        InvalidInputError: when ``path`` does not exist, holds no NIfTI file or DICOM series, an input fails
            :func:`check_inference_input`, two inputs share a prediction name, or the output collides with an input.
    """
    root = Path(path)
    if not root.exists():
        raise InvalidInputError("no such file or folder; expected a NIfTI file or a DICOM series folder", root)
    if _is_nifti(root) or _is_dicom_folder(root):
        found = [root]
    elif root.is_dir():
        try:
            children = sorted(root.iterdir())
        except OSError as e:
            raise InvalidInputError(f"cannot read folder ({e.strerror or e})", root) from e
        found = [p for p in children if _is_nifti(p) or _is_dicom_folder(p)]
    else:
        found = []
    if not found:
        raise InvalidInputError("found no NIfTI file (.nii, .nii.gz) or DICOM series folder (*.dcm)", root)
    names: dict[str, Path] = {}
    for p in found:
        key = case_name(p).casefold()
        if key in names:
            raise InvalidInputError(
                f"{p.name} and {names[key].name} would both be saved as {case_name(p)}_{output_postfix}{output_ext}; "
                "expected one input per name",
                root,
            )
        names[key] = p
    if output_dir is not None:
        check_output_path(output_dir, {"input": root}, kind="folder")
        for p in found:
            target = Path(output_dir) / f"{case_name(p)}_{output_postfix}{output_ext}"
            if any(target.resolve() == q.resolve() for q in found):
                raise InvalidInputError(f"the prediction of {p.name} would overwrite the input {target}", target)
    for p in found:
        check_inference_input(p)
    return [{"image": str(p)} for p in found]
