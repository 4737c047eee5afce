"""One run per output folder: an exclusive ``flock`` on the folder itself.

Not :mod:`filelock` (installed with torch): it locks a lock *file* that it creates (``os.open(path, O_RDWR |
O_CREAT)`` fails with ``IsADirectoryError`` on a folder), so it would leave a lock file in the user's output folder
(or beside it, in a folder that may not be ours to write), where every later run and the output-folder guard would
meet it. A lock on the folder's own descriptor needs no file, and the kernel releases it when the process dies.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["output_lock"]


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
