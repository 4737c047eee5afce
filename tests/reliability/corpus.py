"""Harness of the round-2 reliability corpus: run one adversarial case as a user would and classify the outcome.

Every case is run through the command line in-process (``scse_monai.cli.main``) under a wall-clock alarm, with
the files it must not touch fingerprinted before and after. The outcome is exactly one of:

- ``refused clearly``: non-zero exit, exactly one ``error``/``FAILED`` line naming the file or case, no traceback;
- ``correct result``: exit 0 and the case's own check of the result passes (for inputs that are valid after all);
- ``escaped``: an exception left the CLI, or a traceback was printed, or the line did not name the file;
- ``data loss``: a protected file (an input, an earlier output) changed or vanished;
- ``silent wrong``: exit 0 with a wrong result, or a file written outside the output folder;
- ``hangs``: no answer within the alarm.

Counts go to :data:`~.reliability_data.STATS` under ``corpus <category>: <outcome>`` and are printed by the
terminal summary (``conftest.py``) with the totals over all categories.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import pytest

from scse_monai.cli import main

from .reliability_data import STATS

__all__ = ["OUTCOMES", "record", "fingerprint", "run_case", "alarm", "Hang"]

OUTCOMES = ("refused clearly", "correct result", "escaped", "data loss", "silent wrong", "hangs")


class Hang(Exception):
    """Raised by the alarm when a case runs past its time limit."""


@contextmanager
def alarm(seconds: int):
    """Raise :class:`Hang` in the main thread after ``seconds`` (blocking system calls are interrupted)."""

    def handler(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def record(category: str, outcome: str) -> None:
    """Count one tried case of ``category`` with ``outcome``."""
    assert outcome in OUTCOMES, outcome
    STATS[f"corpus {category}: tried"] += 1
    STATS[f"corpus {category}: {outcome}"] += 1


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """SHA-256 of every file under ``paths`` (files or folders), by path."""
    out: dict[str, str] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _tree(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")} if root.is_dir() else set()


def run_case(
    category: str,
    argv: list,
    capsys: pytest.CaptureFixture,
    names: Iterable[str] = (),
    protect: Iterable[Path] = (),
    sandbox: Path | None = None,
    allowed: Iterable[Path] = (),
    check: Callable[[], bool] | None = None,
    expect: str = "refused clearly",
    line_start: str | None = None,
    timeout: int = 60,
) -> str:
    """Run ``scse-monai argv`` as one corpus case, record its outcome and assert it is ``expect``.

    Args:
        category: corpus category (e.g. ``"output collisions"``).
        argv: the command line (paths are converted to ``str``).
        capsys: pytest's capture fixture.
        names: strings the error line must contain (the file or case at fault).
        protect: files/folders that must be byte-identical afterwards (inputs, earlier outputs).
        sandbox: a folder in which no file may appear outside ``allowed`` (e.g. traversal out of the output).
        allowed: folders where new files are expected.
        check: for inputs that are valid after all: called after exit 0, must return True.
        expect: the outcome the case must have (``"refused clearly"`` or ``"correct result"``).
        line_start: start of the error line (default ``scse-monai <command>: error:``).
        timeout: seconds before the case counts as a hang.

    Returns:
        The error line (or ``""`` for a correct result).
    """
    argv = [str(a) for a in argv]
    protect = list(protect)
    before = fingerprint(protect)
    tree_before = _tree(sandbox) if sandbox is not None else set()
    capsys.readouterr()
    outcome, detail, line = "", "", ""
    try:
        with alarm(timeout):
            code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    except Hang as e:
        outcome, detail, code = "hangs", str(e), None
    except Exception as e:  # noqa: BLE001 - exactly what the corpus looks for
        outcome, detail, code = "escaped", f"{type(e).__name__}: {e}", None
    err = capsys.readouterr().err
    after = fingerprint(protect)
    new_outside: list[str] = []
    if sandbox is not None:
        allowed_roots = [str(Path(a)) for a in allowed]
        new_outside = [p for p in _tree(sandbox) - tree_before
                       if not any(p == a or p.startswith(a + "/") for a in allowed_roots)]
    if outcome:
        pass
    elif before != after:
        changed = sorted(k for k in before if before.get(k) != after.get(k))
        outcome, detail = "data loss", f"changed or removed: {changed[:3]}"
    elif new_outside:
        outcome, detail = "silent wrong", f"files written outside the output: {sorted(new_outside)[:3]}"
    elif "Traceback" in err:
        outcome, detail = "escaped", err[-500:]
    elif code in (0, None):
        ok = check is not None and bool(check())
        outcome, detail = ("correct result", "") if ok else ("silent wrong", "exit 0 without a correct result")
    else:
        start = line_start or f"scse-monai {argv[0]}: error:"
        lines = [ln for ln in err.splitlines() if ln.startswith(start)]
        missing = [n for n in names if not lines or n not in lines[0]]
        if len(lines) != 1 or missing:
            outcome, detail = "escaped", f"expected one line starting {start!r} naming {missing}, got: {err[-600:]}"
        else:
            outcome, line = "refused clearly", lines[0]
    record(category, outcome)
    assert outcome == expect, f"{outcome}: {detail}"
    return line
