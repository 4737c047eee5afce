"""Atomic output files: written to a temporary file in the same folder, then renamed onto the target.

An interrupted run (Ctrl-C, SIGKILL, power loss) therefore never leaves a half-written file under the final name:
either the old file, or no file, or the complete new one. ``os.replace`` is atomic within one file system, which is
why the temporary file lives next to the target rather than in ``/tmp`` (see :mod:`scse_monai.utils.temporaries`
for its name and the clean-up of those a killed run left).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scse_monai.utils.temporaries import current_umask, remove_stale_temporaries, temp_prefix

__all__ = ["atomic_path", "naming_errors", "atomic_write_bytes", "atomic_write_text", "atomic_save_nifti",
           "atomic_torch_save"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is fsync'ed and renamed onto ``target``.

    Args:
        target: the final file name.
        suffix: suffix of the temporary file (some writers choose the format from it); defaults to the target's
            full suffix, e.g. ``.nii.gz``.

    On any exception the temporary file is removed and ``target`` is left untouched. Temporaries of ``target`` that
    a killed run left behind are removed first (:func:`remove_stale_temporaries`; a live run's are kept).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries([target])
    if suffix is None:
        suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with naming_errors(target, tmp):
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            # mkstemp creates 0600 files; give the result the permissions a plain open() would have
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def naming_errors(target: str | os.PathLike, tmp: str | os.PathLike) -> Iterator[None]:
    """Re-raise an ``OSError`` of writing ``tmp`` (or one naming no file) as one naming ``target``, cause kept.

    A full disk met while writing a temporary must name the file the user asked for, not our hidden temporary.
    """
    try:
        yield
    except OSError as e:
        if e.filename not in (None, str(tmp)):
            raise
        raise OSError(e.errno, f"cannot write ({e.strerror or e})", str(target)) from e


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp, naming_errors(target, tmp):
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``target`` atomically."""
    atomic_write_bytes(target, text.encode(encoding))


def atomic_save_nifti(image: Any, target: str | os.PathLike) -> None:
    """Save a nibabel image atomically (the temporary name keeps ``.nii``/``.nii.gz`` so nibabel compresses alike)."""
    import nibabel as nib

    with atomic_path(target) as tmp, naming_errors(target, tmp):
        nib.save(image, str(tmp))


def atomic_torch_save(obj: Any, target: str | os.PathLike) -> None:
    """``torch.save`` atomically: a checkpoint on disk is always complete and loadable."""
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
