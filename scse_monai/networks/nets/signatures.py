"""Drop-in constructors: MONAI's own parameters first, exactly as MONAI declares them, then ours, keyword-only.

The SE networks take ``(*args, se=..., ..., **kwargs)`` and hand ``args`` and ``kwargs`` to MONAI's ``__init__``
unchanged, so every call that builds MONAI's network (positional or by keyword) builds ours the same way, whatever
parameters the installed MONAI version has. :func:`drop_in_signature` gives the class the combined signature, so
``inspect.signature(SEUNet)`` and ``help(SEUNet)`` show MONAI's parameters followed by ours;
:func:`monai_arguments` reads MONAI's arguments of a call by name, to check them before MONAI builds anything.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["drop_in_signature", "monai_arguments", "check_spatial_dims"]


def drop_in_signature(base: type, init: Callable[..., None]) -> inspect.Signature:
    """``base.__init__``'s signature followed by the keyword-only parameters of ``init`` (set it as ``__signature__``).

    Raises:
        ValueError: when ``init`` declares a keyword-only parameter whose name MONAI's ``base`` also uses.
    """
    base_params = list(inspect.signature(base.__init__).parameters.values())
    ours = [p for p in inspect.signature(init).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    var_keyword = [p for p in base_params if p.kind is inspect.Parameter.VAR_KEYWORD]
    positional = [p for p in base_params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return inspect.signature(init).replace(parameters=[*positional, *ours, *var_keyword])


def monai_arguments(cls: type, base: type, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """MONAI's arguments of ``cls(*args, **kwargs)`` by name, defaults filled in.

    Raises:
        TypeError: naming ``cls`` for a call MONAI's ``base`` would refuse too (a missing or unknown argument).
    """
    try:
        bound = inspect.signature(base.__init__).bind(None, *args, **kwargs)
    except TypeError as e:
        ours = [p.name for p in inspect.signature(cls).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        raise TypeError(f"{cls.__name__}: {e}; expected the arguments of {base.__name__}, then keyword-only {ours}") \
            from None
    bound.apply_defaults()
    return dict(bound.arguments)


def check_spatial_dims(cls: type, spatial_dims: object, accepted: tuple[int, ...]) -> int:
    """``spatial_dims`` as an ``int`` if it is one of ``accepted``.

    Raises:
        ValueError: naming ``cls``, the argument and the accepted values (MONAI fails later, e.g. with an
            ``IndexError`` in its layer factories, for ``spatial_dims=4``).
    """
    if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, numbers.Integral) or spatial_dims not in accepted:
        raise ValueError(f"{cls.__name__}: spatial_dims must be one of {list(accepted)}, got {spatial_dims!r}.")
    return int(spatial_dims)
