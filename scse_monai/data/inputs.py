"""Finding inference inputs: NIfTI files and DICOM series folders."""

from __future__ import annotations

from pathlib import Path

from scse_monai.errors import InvalidInputError

__all__ = ["list_inference_inputs", "NIFTI_SUFFIXES"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES) and not path.name.startswith(".")


def _is_dicom_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() == ".dcm" and not p.name.startswith(".") for p in path.iterdir())


def _check_nifti_header(path: Path) -> None:
    """Read only the header, so a file that is not NIfTI fails here with its name, not deep inside LoadImaged."""
    import nibabel as nib

    try:
        nib.load(str(path))
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, zlib/gzip errors ... for bad files
        msg = f"unreadable NIfTI file ({type(e).__name__}: {e}); expected a NIfTI image"
        raise InvalidInputError(msg, path) from None


def list_inference_inputs(path: str | Path) -> list[dict[str, str]]:
    """``[{"image": ...}, ...]`` for a NIfTI file, a DICOM series folder, or a folder holding either.

    Args:
        path: a ``.nii``/``.nii.gz`` file; a folder of ``.dcm`` slices (one series, read by MONAI's DICOM reader);
            or a folder whose NIfTI files and DICOM sub-folders are each one input (sorted by name).

    Raises:
        InvalidInputError: when ``path`` does not exist, holds no NIfTI file or DICOM series, or a NIfTI file's header
            cannot be read.
    """
    root = Path(path)
    if not root.exists():
        raise InvalidInputError("no such file or folder; expected a NIfTI file or a DICOM series folder", root)
    if _is_nifti(root) or _is_dicom_folder(root):
        found = [root]
    elif root.is_dir():
        found = sorted(p for p in root.iterdir() if _is_nifti(p) or _is_dicom_folder(p))
    else:
        found = []
    if found:
        for p in found:
            if _is_nifti(p):
                _check_nifti_header(p)
        return [{"image": str(p)} for p in found]
    raise InvalidInputError("found no NIfTI file (.nii, .nii.gz) or DICOM series folder (*.dcm)", root)
