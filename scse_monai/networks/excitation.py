"""Record the excitations (gates) of every SE layer of a network with forward hooks, for analysis and figures.

The channel gate of a cSE branch is s = sigmoid(W1 relu(W2 z)) in (0, 1)^C, the output of MONAI's
:class:`~monai.networks.blocks.ChannelSELayer`'s ``fc`` module (which :class:`ChannelSpatialSELayer.channel_gate`
also calls); the spatial gate of an sSE branch is sigmoid(q), the output of :class:`SpatialSELayer`'s ``sigmoid``.
Hooking those sub-modules records exactly the values the layers multiply with, without changing the forward pass.

This is what SENet's "role of excitation" analysis looks at (Hu et al., arXiv 1709.01507, §7.2, Figs. 6-7: mean
channel gates per class and layer) and what Roy et al. show as spatial attention maps (TMI 2019, §IV-I, Fig. 7).

Example::

    >>> net = SEUNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(8, 16, 32), strides=(2, 2)).eval()
    >>> records = capture_excitations(net, torch.randn(2, 1, 32, 32))
    >>> {name: (r.channel.shape, r.spatial.shape) for name, r in records.items()}["model.0.1"]
    (torch.Size([2, 8]), torch.Size([2, 1, 16, 16]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer

from scse_monai.networks.blocks.squeeze_and_excitation import SpatialSELayer
from scse_monai.networks.utils import iter_se_layers

__all__ = ["ExcitationRecord", "ExcitationRecorder", "capture_excitations", "gate_modules"]


@dataclass
class ExcitationRecord:
    """The gates of one SE layer for one forward pass (detached, on the CPU).

    Attributes:
        name: qualified name of the SE layer in the network (as in ``net.named_modules()``).
        layer_type: class name of the SE layer, e.g. ``"ChannelSpatialSELayer"``.
        channel: cSE gate, (batch, channels); ``None`` for a layer without a channel branch.
        spatial: sSE gate, (batch, 1, *spatial); ``None`` for a layer without a spatial branch.
    """

    name: str
    layer_type: str
    channel: torch.Tensor | None = None
    spatial: torch.Tensor | None = None

    @property
    def channels(self) -> int | None:
        """Number of channels of the recalibrated feature map, if the layer has a channel branch."""
        return None if self.channel is None else int(self.channel.shape[1])


def gate_modules(layer: nn.Module) -> dict[str, nn.Module]:
    """The sub-modules of an SE layer whose outputs are its gates: ``{"channel": fc, "spatial": sigmoid}``.

    Any :class:`~monai.networks.blocks.ChannelSELayer` (also inside an scSE, or a subclass such as
    ``ResidualSELayer``) contributes its ``fc``; any :class:`SpatialSELayer` its ``sigmoid``. A layer holding
    several of one kind contributes the first (in registration order).
    """
    found: dict[str, nn.Module] = {}
    for module in layer.modules():
        if isinstance(module, ChannelSELayer):
            found.setdefault("channel", module.fc)
        elif isinstance(module, SpatialSELayer):
            found.setdefault("spatial", module.sigmoid)
    return found


class ExcitationRecorder:
    """Context manager that hooks every SE layer of ``net`` and keeps the gates of the latest forward pass.

    SE layers are those found by :func:`scse_monai.networks.iter_se_layers` (classes registered in
    :data:`scse_monai.networks.layers.SE`), so any network containing them works, not only
    :class:`~scse_monai.networks.nets.SEUNet`. Hooks are removed on exit, also after an exception.

    Args:
        net: the network (left in its current train/eval mode; call ``net.eval()`` for inference statistics).
        channel: record the cSE gates.
        spatial: record the sSE gates (full-resolution maps: memory grows with batch and image size).

    Attributes:
        records: ``{layer name: ExcitationRecord}`` of the latest forward pass, in the network's registration order
            (for a UNet that is the forward order: encoders, bottleneck, decoders). A layer whose branch did not run
            keeps ``None`` there.

    Example::

        with ExcitationRecorder(net) as rec:
            for batch in loader:
                net(batch)
                gates.append({k: r.channel for k, r in rec.records.items()})
    """

    def __init__(self, net: nn.Module, channel: bool = True, spatial: bool = True) -> None:
        self.net = net
        self.channel = channel
        self.spatial = spatial
        self.layers = list(iter_se_layers(net))
        self.records: dict[str, ExcitationRecord] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def clear(self) -> None:
        """Reset the records (one empty record per SE layer)."""
        self.records = {name: ExcitationRecord(name, type(layer).__name__) for name, layer in self.layers}

    def _hook(self, name: str, kind: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            value = output.detach().to("cpu", copy=True)
            if kind == "channel":
                value = value.reshape(value.shape[0], -1)  # (B, C), whatever view the layer applies next
            setattr(self.records[name], kind, value)

        return hook

    def __enter__(self) -> ExcitationRecorder:
        self.clear()
        wanted = {"channel": self.channel, "spatial": self.spatial}
        try:
            for name, layer in self.layers:
                for kind, module in gate_modules(layer).items():
                    if wanted[kind]:
                        self._handles.append(module.register_forward_hook(self._hook(name, kind)))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Remove all hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __exit__(self, *exc: object) -> None:
        self.remove()


def capture_excitations(
    net: nn.Module, x: torch.Tensor, channel: bool = True, spatial: bool = True
) -> dict[str, ExcitationRecord]:
    """Run ``net(x)`` without gradients and return the gates of every SE layer.

    Args:
        net: a network containing registered SE layers (its train/eval mode is left as it is).
        x: the input batch.
        channel: record the cSE gates, (batch, C).
        spatial: record the sSE gates, (batch, 1, *spatial).

    Returns:
        ``{layer name: ExcitationRecord}`` in registration order; empty if ``net`` has no SE layer.
    """
    with ExcitationRecorder(net, channel=channel, spatial=spatial) as recorder, torch.no_grad():
        net(x)
    return recorder.records
