"""Inspecting SE networks: which layers recalibrate, and what they cost."""

from __future__ import annotations

from collections.abc import Iterator

import torch.nn as nn

from scse_monai.networks.layers.utils import se_layer_types

__all__ = ["iter_se_layers", "count_se_parameters", "count_parameters"]


def iter_se_layers(net: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(qualified_name, layer)`` for the outermost SE layers of ``net``, in forward (registration) order.

    An SE layer is an instance of a class registered in :data:`~scse_monai.networks.layers.SE`; the cSE inside an
    scSE is part of that scSE, not a layer of its own. A module registered under several names (DynUNet's
    ``skip_layers`` re-register its blocks) is visited once, under its first name, as ``named_modules`` does.
    """
    yield from _walk_se_layers(net, prefix, se_layer_types(), set())


def _walk_se_layers(
    net: nn.Module, prefix: str, types: tuple[type, ...], seen: set[int]
) -> Iterator[tuple[str, nn.Module]]:
    for name, child in net.named_children():
        if id(child) in seen:
            continue
        seen.add(id(child))
        qualified = f"{prefix}.{name}" if prefix else name
        if isinstance(child, types):
            yield qualified, child
        else:
            yield from _walk_se_layers(child, qualified, types, seen)


def count_parameters(net: nn.Module) -> int:
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())


def count_se_parameters(net: nn.Module) -> int:
    """Parameters spent on SE recalibration in ``net``.

    Per layer with C channels and reduction r (biases included, Roy et al. TMI 2019 §II-E): cSE has
    2·C·(C//r) weights and C//r + C biases, sSE has C + 1, scSE (max/add/mul) the sum of both.
    """
    return sum(count_parameters(layer) for _, layer in iter_se_layers(net))
