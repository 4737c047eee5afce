"""What a value typed on the bundle's command line means: ``--resume false`` is ``False``, ``--se null`` is ``None``.

``python -m monai.bundle run ... --resume false`` hands the config the *string* ``"false"`` (MONAI's command line
parses values with ``fire``, which turns only Python literals such as ``False`` into Python objects), and a non-empty
string is truthy. The bundle's configs therefore read every boolean and null-able setting a user may override
through :func:`as_bool` or :func:`as_optional`, which accept the spellings of JSON, YAML and Python alike and refuse
anything else with an error naming the setting. MONAI has no such parser: ``monai.bundle`` passes overrides through
unchanged by design (a string may be a legitimate value), so the meaning has to be given where the value is used.
"""

from __future__ import annotations

from typing import Any

from scse_monai.errors import InvalidInputError

__all__ = ["BOOL_SPELLINGS", "NULL_SPELLINGS", "as_bool", "as_optional", "as_optional_bool"]

#: accepted spellings of the two booleans (compared case-insensitively, surrounding blanks ignored).
BOOL_SPELLINGS: dict[str, bool] = {"true": True, "false": False, "1": True, "0": False}
#: accepted spellings of "no value".
NULL_SPELLINGS: tuple[str, ...] = ("null", "none")


def _accepted(optional: bool) -> str:
    spellings = "true/false/True/False/1/0"
    return f"{spellings} or null/None" if optional else spellings


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in NULL_SPELLINGS)


def as_bool(value: Any, key: str) -> bool:
    """``value`` as a boolean: ``True``/``False``, ``1``/``0`` or one of those as a string (any case).

    Args:
        value: what the config holds, possibly a string from the command line.
        key: the config id, named in the error (e.g. ``"resume"``).

    Raises:
        InvalidInputError: for any other value, naming ``key`` and the accepted spellings.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOL_SPELLINGS:
        return BOOL_SPELLINGS[value.strip().lower()]
    raise InvalidInputError(f"{key}: {value!r} is not a boolean; expected {_accepted(False)}")


def as_optional_bool(value: Any, key: str) -> bool | None:
    """Like :func:`as_bool`, but ``None`` or ``null``/``None`` (any case) give ``None``."""
    if _is_null(value):
        return None
    try:
        return as_bool(value, key)
    except InvalidInputError:
        raise InvalidInputError(f"{key}: {value!r} is not a boolean; expected {_accepted(True)}") from None


def as_optional(value: Any) -> Any:
    """``None`` for ``None`` or the strings ``null``/``None`` (any case); any other value unchanged."""
    return None if _is_null(value) else value
