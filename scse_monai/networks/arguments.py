"""The arguments an SE network was built with: named, with command-line booleans parsed, and kept for the record.

A bundle builds its network from ``network_def`` with whatever the command line put there: ``--network_def#res_block
false`` arrives as the string ``"false"``, which MONAI's ``DynUNet`` would take as true. :func:`bind_arguments` names
every argument of a call by the MONAI network's own signature (so positional calls work as they do for MONAI's
network) and parses the values of its boolean parameters with :func:`~scse_monai.utils.config_values.as_bool`.
The SE networks keep the result (:func:`network_definition`), which is what the bundle records next to
``models/model.pt`` and compares before loading it (:mod:`scse_monai.handlers.model_record`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn as nn

from scse_monai.utils.config_values import as_bool

__all__ = ["bind_arguments", "network_definition", "ARGUMENTS_ATTR"]

#: attribute under which an SE network keeps its arguments (a plain dict, ignored by TorchScript's forward).
ARGUMENTS_ATTR = "init_arguments"


def _is_bool(annotation: Any) -> bool:
    return annotation is bool or (isinstance(annotation, str) and annotation.replace(" ", "") in ("bool", "bool|None"))


def bind_arguments(base: type, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``base(*args, **kwargs)``'s arguments by parameter name, defaults filled in, booleans parsed.

    Args:
        base: the MONAI network class whose ``__init__`` signature names the arguments.
        args: positional arguments, as ``base`` takes them.
        kwargs: keyword arguments.

    Raises:
        TypeError: for a call ``base`` would refuse (too many positional arguments, unknown keywords), with
            Python's own message.
        InvalidInputError: for a boolean parameter given something other than a boolean spelling.
    """
    bound = inspect.signature(base).bind(*args, **kwargs)
    bound.apply_defaults()
    named = dict(bound.arguments)
    for name, parameter in inspect.signature(base).parameters.items():
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
