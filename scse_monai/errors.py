"""The one exception type the library raises for bad input.

Every reader, converter and evaluator in :mod:`scse_monai` turns a malformed or unexpected input into an
:class:`InvalidInputError` whose message names the file or case and says what was expected. It subclasses
:class:`ValueError`, so code that already catches ``ValueError`` keeps working. The command line prints its message
as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = ["InvalidInputError"]


class InvalidInputError(ValueError):
    """An input file, folder, case or argument is not what scse_monai expected.

    Args:
        message: what is wrong and what was expected.
        path: the file or folder at fault, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
