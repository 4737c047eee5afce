"""Path and name safety: case names, names safe as one path component, outputs outside the inputs, regular files.

Names from datalists become output folder and file names, outputs must never overwrite an input, and a FIFO named
like an input would block a reader for ever: these checks turn each into an :class:`~scse_monai.InvalidInputError`
naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["NIFTI_SUFFIXES", "nifti_stem", "case_name", "check_safe_name", "check_output_path", "check_regular_file"]

#: the NIfTI file suffixes the package reads and writes (longest first, so ``.nii.gz`` wins over ``.nii``).
NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(name: str | os.PathLike) -> str | None:
    """The file name without ``.nii``/``.nii.gz`` (case-insensitive suffix), or ``None`` if it is not NIfTI."""
    name = Path(name).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def case_name(path: str | os.PathLike) -> str:
    """The case name of a NIfTI file or a folder: ``data/ct_1.nii.gz`` -> ``ct_1``, ``series/`` -> ``series``."""
    return nifti_stem(path) or Path(path).name


def check_safe_name(value: object, what: str, source: object | None = None) -> str:
    """``value`` as a string that is safe as one path component (no separator, no ``..``, not hidden or empty).

    Names from datalists become output folder and file names; ``"../../x"`` must not write outside the output.

    Raises:
        InvalidInputError: naming ``source`` (e.g. the datalist) and the offending value.
    """
    from scse_monai.errors import InvalidInputError

    text = None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):  # a numeric CHAOS id
        text = str(value)
    if (
        text is None
        or not text.strip()
        or text.startswith(".")
        or any(c in text for c in "/\\\0:")
        or any(ord(c) < 32 for c in text)
    ):
        raise InvalidInputError(
            f"{what} {value!r} is not a safe file name; expected a plain name (letters, digits, '_', '-')", source
        )
    return text


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(path)).resolve(strict=False)


def check_output_path(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], kind: str = "file") \
        -> Path:
    """Refuse an output that is, or lies inside, one of the inputs (or, for a file output, is an existing folder).

    Args:
        output: the output file or folder.
        inputs: ``{"--ground": path, ...}``: what the command reads (``None`` entries are skipped).
        kind: ``"file"`` or ``"folder"``: what the output must be if it exists.

    Raises:
        InvalidInputError: naming the output and the input it collides with.
    """
    from scse_monai.errors import InvalidInputError

    out = _resolved(output)
    for label, src in inputs.items():
        if src is None:
            continue
        src_r = _resolved(src)
        if out == src_r or src_r in out.parents:
            where = "is" if out == src_r else "lies inside"
            raise InvalidInputError(f"output {where} the input {label} {src}; expected an output path outside every "
                                    "input (inputs are never overwritten)", output)
    path = Path(output)
    if kind == "file" and path.is_dir():
        raise InvalidInputError("output is an existing folder; expected a file name", output)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InvalidInputError("output exists and is not a folder; expected a folder", output)
    return path


def check_regular_file(path: str | os.PathLike, what: str = "input") -> Path:
    """Refuse anything but a regular file (a FIFO or device named ``x.dcm`` would block or never end a read)."""
    from scse_monai.errors import InvalidInputError

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InvalidInputError(f"cannot access {what} ({e.strerror or e})", path) from e
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{what} is not a regular file (a FIFO, socket or device); expected a file", path)
    return path
