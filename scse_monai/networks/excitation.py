"""Record the excitations (gates) of every SE layer of a network, for analysis and figures.

The channel gate of a cSE branch is s = sigmoid(W1 relu(W2 z)) in (0, 1)^C, the spatial gate of an sSE branch is
sigmoid(q) in (0, 1)^(1 x spatial). An SE layer tells the recorder its gates through a one-method protocol,
:class:`SEGates`: ``excitation_gates(x)`` returns ``{"channel": ..., "spatial": ...}`` for the layer's input ``x``.
A forward pre-hook on every SE layer (every class registered in :data:`scse_monai.networks.layers.SE`, user
registrations included) calls it on the layer's actual input, without gradients, so the forward pass is unchanged.
The project's layers and MONAI's :class:`~monai.networks.blocks.ChannelSELayer` (which cannot carry the method) are
known here; any other block implements the method::

    class MyChannelSE(nn.Module):
        def __init__(self, spatial_dims: int, in_channels: int, r: int = 2) -> None:
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(in_channels, in_channels // r), nn.ReLU(),
                                    nn.Linear(in_channels // r, in_channels), nn.Sigmoid())

        def excitation_gates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"channel": self.fc(x.flatten(2).mean(2))}           # (batch, channels)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            g = self.excitation_gates(x)["channel"]
            return x * g.view(*g.shape, *([1] * (x.ndim - 2)))

    SE.add_factory_class("mycse", MyChannelSE)
    records = capture_excitations(SEUNet(..., se="mycse"), x)   # records[...].channel holds MyChannelSE's gates

This is what SENet's "role of excitation" analysis looks at (Hu et al., arXiv 1709.01507, §7.2, Figs. 6-7: mean
channel gates per class and layer) and what Roy et al. show as spatial attention maps (TMI 2019, §IV-I, Fig. 7).

Example::

    >>> net = SEUNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(8, 16, 32), strides=(2, 2)).eval()
    >>> records = capture_excitations(net, torch.randn(2, 1, 32, 32))
    >>> {name: (r.channel.shape, r.spatial.shape) for name, r in records.items()}["model.0.1"]
    (torch.Size([2, 8]), torch.Size([2, 1, 16, 16]))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer

from scse_monai.networks.blocks.squeeze_and_excitation import ChannelSpatialSELayer, SpatialSELayer
from scse_monai.networks.utils import iter_se_layers

__all__ = ["SEGates", "ExcitationRecord", "ExcitationRecorder", "capture_excitations", "excitation_gates"]


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


#: SE layers whose gates :func:`excitation_gates` knows without the :class:`SEGates` method.
_BUILT_IN = (ChannelSpatialSELayer, SpatialSELayer, ChannelSELayer)


@runtime_checkable
class SEGates(Protocol):
    """What an SE block implements so that its gates are recorded (see the module docstring for an example)."""

    def excitation_gates(self, x: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """The gates the block applies to its input ``x``.

        Returns:
            ``{"channel": (batch, channels[, 1, ...]), "spatial": (batch, 1, *spatial)}``; a block without one of
            the branches leaves that key out.
        """
        ...


def excitation_gates(layer: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gates ``layer`` applies to its input ``x``: :meth:`SEGates.excitation_gates` or a built-in layer's own.

    Built in: :class:`ChannelSpatialSELayer` (its ``channel_gate`` and its sSE's ``gate``), :class:`SpatialSELayer`
    (``gate``) and MONAI's :class:`~monai.networks.blocks.ChannelSELayer` and subclasses (``fc`` on ``avg_pool``).

    Returns:
        ``{"channel": ..., "spatial": ...}`` (either key may be absent); empty for a layer that neither implements
        the protocol nor is built in.
    """
    if isinstance(layer, SEGates):
        return dict(layer.excitation_gates(x))
    if isinstance(layer, ChannelSpatialSELayer):
        return {"channel": layer.channel_gate(x), "spatial": layer.sse.gate(x)}
    if isinstance(layer, SpatialSELayer):
        return {"spatial": layer.gate(x)}
    if isinstance(layer, ChannelSELayer):
        return {"channel": layer.fc(layer.avg_pool(x).reshape(x.shape[0], x.shape[1]))}
    return {}


class ExcitationRecorder:
    """Context manager that hooks every SE layer of ``net`` and keeps the gates of the latest forward pass.

    SE layers are those found by :func:`scse_monai.networks.iter_se_layers` (classes registered in
    :data:`scse_monai.networks.layers.SE`), so any network containing them works, not only
    :class:`~scse_monai.networks.nets.SEUNet`; their gates come from :func:`excitation_gates` (the :class:`SEGates`
    protocol), computed on each layer's input by a forward pre-hook. Hooks are removed on exit, also after an
    exception.

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

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        wanted = {"channel": self.channel, "spatial": self.spatial}

        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            with torch.no_grad():
                gates = excitation_gates(module, inputs[0])
            for kind, gate in gates.items():
                if not wanted.get(kind, False):
                    continue
                value = gate.detach().to("cpu", copy=True)
                if kind == "channel":
                    value = value.reshape(value.shape[0], -1)  # (B, C), whatever view the layer applies next
                setattr(self.records[name], kind, value)

        return hook

    def __enter__(self) -> ExcitationRecorder:
        self.clear()
        try:
            for name, layer in self.layers:
                if not isinstance(layer, (SEGates, *_BUILT_IN)):
                    warnings.warn(
                        f"SE layer {name} ({type(layer).__name__}) has no excitation_gates(x) method; its gates are "
                        "not recorded (see scse_monai.networks.excitation.SEGates)",
                        stacklevel=2,
                    )
                self._handles.append(layer.register_forward_pre_hook(self._hook(name)))
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
