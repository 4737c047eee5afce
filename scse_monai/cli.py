"""The ``scse-monai`` command line (also ``python -m scse_monai``).

Each sub-command lives in its own module, which provides ``add_arguments(parser)`` and ``run(args) -> int``.
What bad input and the file system can throw -- :class:`~scse_monai.errors.InvalidInputError`, the ``OSError``
family (missing, unreadable or unwritable paths, a full disk), JSON and other ``ValueError`` s -- is printed as one
line naming the path, and the command exits with status 2. Programming errors (``TypeError``, ``AttributeError``,
...) still end with their traceback, so that they get reported and fixed rather than mistaken for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, chosen = _build_parser(argv)
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
    except KeyboardInterrupt:
        print(f"scse-monai {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
