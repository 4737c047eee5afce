"""A bundle run that fails on bad input ends with the project's one-line message, not MONAI's wrapper around it.

``python -m monai.bundle run`` evaluates the configs' expressions; an :class:`~scse_monai.errors.InvalidInputError`
raised inside one (no input found, a model that does not fit) reaches the user wrapped in MONAI's ``RuntimeError:
Failed to evaluate ConfigExpression ...`` at the end of a long traceback. :func:`surface_errors`, the first step of
the bundle's ``initialize``, installs a :data:`sys.excepthook` that prints, for an uncaught exception caused by an
``InvalidInputError``, only a hint and the message, as the last line. With ``SCSE_MONAI_DEBUG=1`` the full traceback
comes first. Every other exception keeps Python's usual report. MONAI's command line has no hook of its own for
this (``fire`` lets exceptions propagate), hence the excepthook.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from scse_monai.errors import InvalidInputError

__all__ = ["DEBUG_ENV", "input_error_in", "surface_errors"]

#: set to 1 to see the full traceback of a bundle run's input error.
DEBUG_ENV = "SCSE_MONAI_DEBUG"


def input_error_in(exc: BaseException | None) -> InvalidInputError | None:
    """The first :class:`InvalidInputError` in ``exc``'s chain of causes and contexts, or ``None``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InvalidInputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    error = input_error_in(exc)
    if error is None or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        sys.__excepthook__(exc_type, exc, tb)
    if error is not None:
        if os.environ.get(DEBUG_ENV, "") in ("", "0"):
            print(f"bad input; {DEBUG_ENV}=1 shows the traceback", file=sys.stderr)
        print("error: " + " ".join(str(error).split()), file=sys.stderr)


def surface_errors() -> bool:
    """Install the hook (once per process); returns ``True`` so that a config can use it as an expression."""
    sys.excepthook = _hook
    return True
