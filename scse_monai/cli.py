"""The ``scse-monai`` command line (also ``python -m scse_monai``).

Each sub-command lives in its own module, which provides ``add_arguments(parser)`` and ``run(args) -> int``.
What bad input and the file system can throw -- :class:`~scse_monai.errors.InvalidInputError`, the ``OSError``
family (missing, unreadable or unwritable paths, a full disk), JSON and other ``ValueError`` s -- is printed as one
line naming the path, and the command exits with status 2. Programming errors (``TypeError``, ``AttributeError``,
...) still end with their traceback, so that they get reported and fixed rather than mistaken for bad input.
Ctrl-C prints one line ``scse-monai <command>: interrupted`` and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from scse_monai.errors import InvalidInputError

__all__ = ["main", "COMMANDS", "error_line"]

# name -> (module, one-line help). Modules are imported only when their command runs (torch/MONAI start slowly).
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("scse_monai.apps.chaos.phantom", "write a synthetic data set in the CHAOS layout"),
    "convert": ("scse_monai.apps.chaos.convert", "convert a CHAOS root (DICOM + PNG) to NIfTI + datalist.json"),
    "evaluate": ("scse_monai.apps.chaos.evaluate", "CHAOS metrics (DICE, RAVD, ASSD, MSSD, scores)"),
    "export-submission": ("scse_monai.apps.chaos.export", "NIfTI predictions -> CHAOS submission PNGs"),
    "demo": ("scse_monai.apps.demo", "phantom -> convert -> train UNet vs SEUNet -> test-fold evaluation -> report"),
    "ablate": ("scse_monai.apps.ablate", "nested cross-validation ablation: SE kinds, aggregations, placements"),
    "bundle": ("scse_monai.apps.export_bundle", "write a copy of the MONAI bundle (configs, docs, LICENSE) to DIR"),
}


def _build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(
        prog="scse-monai", description="scSE for MONAI: CHAOS data tooling, evaluation and experiments."
    )
    from scse_monai import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser, chosen


def error_line(e: BaseException) -> str:
    """One line for an expected error: ``InvalidInputError`` as is; an ``OSError`` as ``path: reason``."""
    if isinstance(e, InvalidInputError):
        text = str(e)
    elif isinstance(e, OSError):
        paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
        reason = e.strerror or str(e) or type(e).__name__
        text = f"{paths}: {reason}" if paths else f"{reason} ({type(e).__name__})"
    elif isinstance(e, json.JSONDecodeError):
        text = f"invalid JSON ({e})"
    else:
        text = f"{e} ({type(e).__name__})"
    return " ".join(text.split())  # one line


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while modules are imported, then deliver it as ``KeyboardInterrupt``.

    A ``KeyboardInterrupt`` raised inside an extension module's import (numpy, torch) comes out as an
    ``ImportError`` with a traceback; meanwhile SIGINT only records that it came.
    """
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return
    received: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if received:
        raise KeyboardInterrupt


def _run(argv: list[str]) -> int:
    with _interrupts_deferred():
        parser, _ = _build_parser(argv)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (InvalidInputError, OSError, ValueError) as e:
        print(f"scse-monai {args.command}: error: {error_line(e)}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Ctrl-C (``KeyboardInterrupt``) at any point -- while torch and MONAI are imported, while arguments are parsed,
    while the command runs -- ends with one line ``scse-monai <command>: interrupted`` and status 130 (128 + SIGINT,
    the shell's convention); the commands' ``finally`` blocks and atomic writers have removed their temporaries by
    then.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except KeyboardInterrupt:
        chosen = next((a for a in argv if not a.startswith("-")), None)
        name = f"scse-monai {chosen}" if chosen in COMMANDS else "scse-monai"
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
