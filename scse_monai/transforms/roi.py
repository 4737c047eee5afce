"""The patch size (``roi_size``) a U-Net-style network accepts: a multiple of its total down-sampling per axis.

A (DynUNet, UNet) encoder halves the grid at every stride-2 level and the decoder concatenates the skip features
again; a patch not divisible by the product of the strides makes the shapes differ and fails deep inside the
network with a concatenation error that never names ``roi_size``. The bundle calls :func:`check_roi_size` where it
uses ``roi_size`` (crops, sliding-window inferer), so a bad value is refused by name, with the nearest valid sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scse_monai.errors import InvalidInputError

__all__ = ["network_divisor", "check_roi_size"]


def network_divisor(network: Any) -> list[int]:
    """The total down-sampling per spatial axis of a DynUNet- or UNet-style network (its ``strides``).

    Args:
        network: a module with ``strides`` (one int or one per-axis sequence per level) and ``spatial_dims`` or
            ``dimensions``.

    Raises:
        InvalidInputError: when the network has no ``strides`` to derive the divisor from.
    """
    strides = getattr(network, "strides", None)
    dims = getattr(network, "spatial_dims", None) or getattr(network, "dimensions", None)
    if strides is None or dims is None:
        raise InvalidInputError(f"cannot derive the patch-size divisor of {type(network).__name__} (no strides and "
                                "spatial_dims); expected a DynUNet- or UNet-style network")
    divisor = [1] * int(dims)
    for level in strides:
        per_axis = [int(level)] * int(dims) if isinstance(level, int) else [int(s) for s in level]
        divisor = [d * s for d, s in zip(divisor, per_axis, strict=True)]
    return divisor


def check_roi_size(roi_size: Sequence[int], network: Any, name: str = "roi_size") -> list[int]:
    """``roi_size`` as a list after checking that ``network`` accepts patches of that size.

    Args:
        roi_size: the patch size, one entry per spatial axis of the network.
        network: the network (see :func:`network_divisor`).
        name: the configuration key, for the message.

    Raises:
        InvalidInputError: naming ``name``, the required multiples and the nearest valid sizes.
    """
    divisor = network_divisor(network)
    try:
        roi = [int(v) for v in roi_size]
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} {roi_size!r}: expected {len(divisor)} positive integers") from e
    if len(roi) != len(divisor) or any(v < 1 for v in roi) or any(int(v) != v for v in roi_size):
        raise InvalidInputError(f"{name} {list(roi_size)}: expected {len(divisor)} positive integers (one per "
                                "spatial axis of the network)")
    if any(v % d for v, d in zip(roi, divisor, strict=True)):
        lower = [max(d, math.floor(v / d) * d) for v, d in zip(roi, divisor, strict=True)]
        upper = [math.ceil(v / d) * d for v, d in zip(roi, divisor, strict=True)]
        raise InvalidInputError(
            f"{name} {roi} is not divisible by the network's down-sampling {divisor} (the product of its strides per "
            f"axis); expected multiples of {divisor}, e.g. {name} {lower} or {upper}")
    return roi
