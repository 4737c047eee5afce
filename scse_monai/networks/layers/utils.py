"""Build SE layers from MONAI-style specs, with the arguments checked before anything is built."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import split_args

from scse_monai.errors import InvalidInputError
from scse_monai.networks.blocks import ChannelSpatialSELayer
from scse_monai.networks.layers.factories import SE
from scse_monai.utils.config_values import as_optional

__all__ = ["SESpecError", "get_se_layer", "se_layer_types", "normalize_se_spec"]

SESpec = str | tuple | list | type | None

_ACCEPTED = (
    'None or "none" (no SE), a registered name such as "scse", a pair [name, {{kwargs}}] such as '
    '["scse", {{"r": 2}}] (a list in JSON/YAML, a tuple in Python), or a class or [class, {{kwargs}}]; '
    "registered names: {names}"
)


class SESpecError(InvalidInputError, TypeError):
    """An SE spec of the wrong form, or arguments its layer does not take.

    A ``ValueError`` like every bad input here, and the ``TypeError`` that MONAI's ``split_args`` raises for a
    malformed layer spec, so that callers catching either keep working.
    """


def normalize_se_spec(spec: SESpec) -> SESpec:
    """``None`` for "no SE" however it is spelt (``None``, ``""``, ``"none"``, ``"null"``), else ``spec``, checked.

    Command lines pass strings: ``python -m monai.bundle run ... --network_def#se null`` gives ``"null"``. A spec of
    the wrong form or an unknown name is refused here, when a network is built, not at its first SE layer.

    Raises:
        SESpecError: for a spec of the wrong form (e.g. a dict), naming ``se`` and the accepted forms.
        ValueError: for an unknown name (with a "did you mean" suggestion).
    """
    if as_optional(spec) is None or (isinstance(spec, str) and not spec.strip()):
        return None
    _split(spec)
    return spec


def _split(spec: Any) -> tuple[type, dict[str, Any]]:
    """The layer class and the keyword arguments of a spec that is not "no SE"."""
    accepted = _ACCEPTED.format(names=", ".join(sorted(n.lower() for n in SE.names)))
    if isinstance(spec, Mapping):
        hint = ""
        if "name" in spec:  # {"name": "scse", "r": 2}: say how MONAI's specs write it
            hint = f" Write {[spec['name'], {k: v for k, v in spec.items() if k != 'name'}]!r} instead."
        raise SESpecError(f"se={spec!r}: a dict is not an SE spec.{hint} Accepted: {accepted}.")
    if isinstance(spec, type):
        return spec, {}
    try:
        name, kwargs = split_args(tuple(spec) if isinstance(spec, list) else spec)
    except (TypeError, ValueError) as err:
        raise SESpecError(f"se={spec!r}: {str(err).rstrip('.')}. Accepted: {accepted}.") from err
    if not isinstance(name, str | type):
        raise SESpecError(f"se={spec!r}: the first element must be a name or a class. Accepted: {accepted}.")
    try:
        return SE[name], dict(kwargs)
    except ValueError as err:  # MONAI's "did you mean", with the argument named
        raise InvalidInputError(f"se={spec!r}: {str(err).strip()}") from err


def _check_arguments(cls: type, spatial_dims: int, in_channels: int, kwargs: dict[str, Any]) -> None:
    """Refuse, before building, what the layer classes would fail on with a traceback or build wrongly."""
    if isinstance(spatial_dims, bool) or spatial_dims not in (1, 2, 3):
        raise InvalidInputError(f"spatial_dims must be 1, 2 or 3 for an SE layer, got {spatial_dims!r}.")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise InvalidInputError(f"in_channels must be a positive integer for an SE layer, got {in_channels!r}.")
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a callable without a signature: leave the check to the call
        signature = None
    if signature is not None:
        try:
            signature.bind(spatial_dims=spatial_dims, in_channels=in_channels, **kwargs)
        except TypeError as err:
            raise SESpecError(f"se arguments {kwargs!r} do not fit {cls.__name__}{signature}: {err}") from err
    r = kwargs.get("r", 2)
    with_r = cls in (ChannelSELayer, ChannelSpatialSELayer)
    if with_r and (isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= in_channels):
        # MONAI's layer divides by r (ZeroDivisionError for 0) and builds a zero-width MLP for r > in_channels
        raise InvalidInputError(
            f"r must be an integer in [1, in_channels={in_channels}] so that the cSE hidden width in_channels // r"
            f" is at least 1, got r={r!r}."
        )


def get_se_layer(spec: SESpec, spatial_dims: int, in_channels: int) -> nn.Module:
    """Create an SE layer from a spec, like MONAI's ``get_act_layer`` / ``get_norm_layer``.

    Args:
        spec: ``None``, ``""``, ``"none"`` or ``"null"`` (no recalibration, :class:`torch.nn.Identity`); a
            registered name such as ``"scse"``; a pair ``("name", {kwargs})`` such as
            ``("scse", {"r": 4, "aggregation": "add"})`` (a list ``["name", {kwargs}]`` from a JSON/YAML config);
            or a class, or a pair ``(class, {kwargs})``, taking ``(spatial_dims, in_channels, **kwargs)``.
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of channels of the feature map to recalibrate.

    Raises:
        SESpecError: for a spec of the wrong form (a dict, a malformed pair) or arguments the layer does not take;
            a ``ValueError`` and a ``TypeError``.
        ValueError: for an unknown name (with a "did you mean" suggestion), ``spatial_dims`` other than 1-3,
            ``in_channels`` < 1, or a cSE ``r`` outside ``[1, in_channels]``.

    Example::

        >>> get_se_layer(("scse", {"aggregation": "add"}), spatial_dims=2, in_channels=16)
        ChannelSpatialSELayer(...)
    """
    spec = normalize_se_spec(spec)
    if spec is None:
        return nn.Identity()
    cls, kwargs = _split(spec)
    _check_arguments(cls, spatial_dims, in_channels, kwargs)
    return cls(spatial_dims=spatial_dims, in_channels=in_channels, **kwargs)


def se_layer_types() -> tuple[type, ...]:
    """The classes currently registered in :data:`~scse_monai.networks.layers.SE`, user registrations included."""
    return tuple({SE[name] for name in SE.names})
