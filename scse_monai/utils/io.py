"""Atomic output files: write to a temporary file in the same folder, then rename.

An interrupted run (Ctrl-C, SIGKILL, power loss) therefore never leaves a half-written file under the final name:
either the old file, or no file, or the complete new one. ``os.replace`` is atomic within one file system, which is
why the temporary file lives next to the target rather than in ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_save_nifti",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is fsync'ed and renamed onto ``target``.

    Args:
        target: the final file name.
        suffix: suffix of the temporary file (some writers choose the format from it); defaults to the target's
            full suffix, e.g. ``.nii.gz``.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``target`` atomically."""
    atomic_write_bytes(target, text.encode(encoding))


def atomic_save_nifti(image: Any, target: str | os.PathLike) -> None:
    """Save a nibabel image atomically (the temporary name keeps ``.nii``/``.nii.gz`` so nibabel compresses alike)."""
    import nibabel as nib

    with atomic_path(target) as tmp:
        nib.save(image, str(tmp))


def atomic_torch_save(obj: Any, target: str | os.PathLike) -> None:
    """``torch.save`` atomically: a checkpoint on disk is always complete and loadable."""
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
