"""Per-run temporaries beside their target, and the clean-up of those a killed run left behind.

Every temporary (file or staging folder) is named ``.<target name>.<pid>.<random>.tmp...``: the process id tells a
later run whether its writer is still alive, so :func:`remove_stale_temporaries` deletes only what a *killed* run
left behind, never the live temporary of a concurrent run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["temp_prefix", "pid_alive", "remove_stale_temporaries", "make_staging_dir", "current_umask"]

_TEMP_PID = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[^.]+\.tmp")


def temp_prefix(name: str) -> str:
    """The name prefix of this process's temporaries of ``name``: ``.<name>.<pid>.``."""
    return f".{name}.{os.getpid()}."


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


def remove_stale_temporaries(paths: Iterable[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Delete the temporaries that a killed run left beside ``paths``.

    They are those of :func:`~scse_monai.utils.atomic.atomic_path` and :func:`make_staging_dir`.

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
    staging = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it 0700
    return staging


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
