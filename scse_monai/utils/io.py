"""Output housekeeping in one place: atomic files, per-run temporaries, output locks, and path/name safety.

Atomic output files are written to a temporary file in the same folder, then renamed. An interrupted run (Ctrl-C,
SIGKILL, power loss) therefore never leaves a half-written file under the final name: either the old file, or no
file, or the complete new one. ``os.replace`` is atomic within one file system, which is why the temporary file lives
next to the target rather than in ``/tmp``.

Every temporary (file or staging folder) is named ``.<target name>.<pid>.<random>.tmp...``: the process id tells a
later run whether its writer is still alive, so :func:`remove_stale_temporaries` deletes only what a *killed* run
left behind, never the live temporary of a concurrent run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "NIFTI_SUFFIXES",
    "nifti_stem",
    "case_name",
    "check_safe_name",
    "check_output_path",
    "check_regular_file",
    "remove_stale_temporaries",
    "make_staging_dir",
    "output_lock",
    "pid_alive",
    "atomic_path",
    "naming_errors",
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

    On any exception the temporary file is removed and ``target`` is left untouched. Temporaries of ``target`` that
    a killed run left behind are removed first (:func:`remove_stale_temporaries`; a live run's are kept).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries([target])
    if suffix is None:
        suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target.name), suffix=f".tmp{suffix}", dir=target.parent)
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


#: the NIfTI file suffixes the package reads and writes (longest first, so ``.nii.gz`` wins over ``.nii``).
NIFTI_SUFFIXES = (".nii.gz", ".nii")

_TEMP_PID = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[^.]+\.tmp")


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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (the owner of a temporary named after it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: exists, owned by someone else
        return True
    return True


def _temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def remove_stale_temporaries(paths, recursive: bool = False) -> list[Path]:
    """Delete temporaries that :func:`atomic_path`/:func:`make_staging_dir` left beside ``paths`` in a killed run.

    Only temporaries whose writer process no longer exists are deleted, so a concurrent run's live temporary is
    kept. With ``recursive``, each path is a folder and every stale temporary below it goes (e.g. before a
    submission folder is handed out).

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    candidates: list[Path] = []
    for path in paths:
        path = Path(path)
        try:
            if recursive:
                candidates += [p for p in path.rglob(".*.tmp*") if _TEMP_PID.match(p.name)]
            elif path.parent.is_dir():
                candidates += list(path.parent.glob(f".{path.name}.*.tmp*"))
        except OSError:
            continue  # an unreadable folder: nothing of ours to clean there
    for tmp in candidates:
        m = _TEMP_PID.match(tmp.name)
        if m is not None and pid_alive(int(m.group("pid"))):
            continue
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except OSError:
            pass
    return removed


def make_staging_dir(target: str | os.PathLike) -> Path:
    """A new hidden folder beside ``target`` (same file system, so it can be renamed into place), per run."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=target.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it 0700
    return staging


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``folder`` (created if needed) for one run; refuse if another holds it.

    The lock is ``flock`` on the folder itself, so no lock file ends up in the output, and the kernel releases it
    when the process dies (no stale lock after a kill). Where ``flock`` is unavailable the run goes ahead unlocked.

    Raises:
        InvalidInputError: when another run holds the lock on ``folder``.
    """
    from scse_monai.errors import InvalidInputError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield folder
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InvalidInputError(
                    f"another {command} run is writing into this folder; expected one run per output folder (wait "
                    "for it to finish or choose another folder)",
                    folder,
                ) from e
            raise
        yield folder
    finally:
        os.close(fd)  # releases the lock


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
