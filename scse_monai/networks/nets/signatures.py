"""Drop-in constructors: MONAI's own parameters first, exactly as MONAI declares them, then ours, keyword-only.

The SE networks take ``(*args, se=..., ..., **kwargs)`` and name ``args`` and ``kwargs`` by MONAI's ``__init__``
signature (:func:`monai_arguments`), so every call that builds MONAI's network (positional or by keyword) builds ours
the same way, whatever parameters the installed MONAI version has. :func:`drop_in_signature` gives the class the
combined signature, so ``inspect.signature(SEUNet)`` and ``help(SEUNet)`` show MONAI's parameters followed by ours.

A bundle builds its network from ``network_def`` with what the command line put there: ``--network_def#res_block
false`` arrives as the string ``"false"``, which MONAI's ``DynUNet`` would take as true, so :func:`monai_arguments`
parses the values of MONAI's boolean parameters (:func:`~scse_monai.utils.config_values.as_bool`). The networks keep
their named arguments (:data:`ARGUMENTS_ATTR`); :func:`network_definition` gives them as the resolved
``network_def``, which the bundle records beside ``models/model.pt`` (:mod:`scse_monai.handlers.model_record`).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch.nn as nn

from scse_monai.utils.config_values import as_bool

__all__ = ["ARGUMENTS_ATTR", "drop_in_signature", "monai_arguments", "check_spatial_dims", "network_definition"]

#: attribute under which an SE network keeps its named arguments (a plain dict; TorchScript leaves it out).
ARGUMENTS_ATTR = "init_arguments"


def _is_bool(annotation: Any) -> bool:
    return annotation is bool or (isinstance(annotation, str) and annotation.replace(" ", "") in ("bool", "bool|None"))


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
    """MONAI's arguments of ``cls(*args, **kwargs)`` by name, defaults filled in, booleans parsed.

    Raises:
        TypeError: naming ``cls`` for a call MONAI's ``base`` would refuse too (a missing or unknown argument).
        InvalidInputError: for a boolean parameter of ``base`` given a string other than a boolean's spelling.
    """
    try:
        bound = inspect.signature(base.__init__).bind(None, *args, **kwargs)
    except TypeError as e:
        ours = [p.name for p in inspect.signature(cls).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        raise TypeError(f"{cls.__name__}: {e}; expected the arguments of {base.__name__}, then keyword-only {ours}") \
            from None
    bound.apply_defaults()
    named = {k: v for k, v in bound.arguments.items() if k != "self"}
    for name, parameter in inspect.signature(base.__init__).parameters.items():
        if _is_bool(parameter.annotation) and isinstance(named.get(name), str):
            named[name] = as_bool(named[name], f"network_def#{name}")
    return named


def network_definition(net: nn.Module) -> dict[str, Any] | None:
    """``{"_target_": class path, **arguments}`` of an SE network, or ``None`` for a module that keeps none."""
    arguments = getattr(net, ARGUMENTS_ATTR, None)
    if not isinstance(arguments, Mapping):
        return None
    cls = type(net)
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **arguments}


def check_spatial_dims(cls: type, spatial_dims: object, accepted: tuple[int, ...]) -> int:
    """``spatial_dims`` as an ``int`` if it is one of ``accepted``.

    Raises:
        ValueError: naming ``cls``, the argument and the accepted values (MONAI fails later, e.g. with an
            ``IndexError`` in its layer factories, for ``spatial_dims=4``).
    """
    if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, numbers.Integral) or spatial_dims not in accepted:
        raise ValueError(f"{cls.__name__}: spatial_dims must be one of {list(accepted)}, got {spatial_dims!r}.")
    return int(spatial_dims)
