"""Build SE layers from MONAI-style specs."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.layers.factories import split_args

from scse_monai.networks.layers.factories import SE

__all__ = ["get_se_layer", "se_layer_types", "normalize_se_spec"]

SESpec = str | tuple | type | None

_NO_SE = ("", "none", "null")


def normalize_se_spec(spec: SESpec) -> SESpec:
    """``None`` for "no SE" however it is spelt (``None``, ``""``, ``"none"``, ``"null"``), else ``spec``.

    Command lines pass strings: ``python -m monai.bundle run ... --network_def#se null`` gives ``"null"``.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in _NO_SE):
        return None
    return spec


def get_se_layer(spec: SESpec, spatial_dims: int, in_channels: int) -> nn.Module:
    """Create an SE layer from a spec, like MONAI's ``get_act_layer`` / ``get_norm_layer``.

    Args:
        spec: ``None``, ``""``, ``"none"`` or ``"null"`` (no recalibration, :class:`torch.nn.Identity`); a
            registered name such as ``"scse"``; a pair ``("name", {kwargs})`` such as
            ``("scse", {"r": 4, "aggregation": "add"})``; or a class, or a pair ``(class, {kwargs})``, taking
            ``(spatial_dims, in_channels, **kwargs)``.
        spatial_dims: number of spatial dimensions.
        in_channels: number of channels of the feature map to recalibrate.

    Raises:
        ValueError: for an unknown name (with a "did you mean" suggestion).
        TypeError: for a malformed spec.

    Example::

        >>> get_se_layer(("scse", {"aggregation": "add"}), spatial_dims=2, in_channels=16)
        ChannelSpatialSELayer(...)
    """
    spec = normalize_se_spec(spec)
    if spec is None:
        return nn.Identity()
    if isinstance(spec, type):
        return spec(spatial_dims=spatial_dims, in_channels=in_channels)
    if isinstance(spec, list):  # JSON/YAML configs give lists, not tuples
        spec = tuple(spec)
    name, kwargs = split_args(spec)
    return SE[name](spatial_dims=spatial_dims, in_channels=in_channels, **kwargs)


def se_layer_types() -> tuple[type, ...]:
    """The classes currently registered in :data:`~scse_monai.networks.layers.SE`, user registrations included."""
    return tuple({SE[name] for name in SE.names})
