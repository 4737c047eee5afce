"""MONAI's UNet with squeeze & excitation recalibration after its encoder, bottleneck and decoder layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
from monai.networks.nets import UNet

from scse_monai.networks.layers.utils import SESpec, get_se_layer, normalize_se_spec

__all__ = ["SEUNet"]


class SEUNet(UNet):
    """:class:`monai.networks.nets.UNet` with an SE layer after every encoder, bottleneck and decoder layer.

    Roy et al., "Recalibrating Fully Convolutional Networks with Spatial and Channel 'Squeeze and Excitation'
    Blocks", IEEE TMI 2019, https://arxiv.org/abs/1808.08127.

    Placement: the paper's best placement P5 puts SE after every encoder and decoder block (Table IV). MONAI's top
    up layer emits the logits (it merges the last decoder with the classifier), so it gets no SE, like the paper's
    classifier. The bottleneck gets one too by default (P5 + P3, between the paper's P5 and P6); set
    ``se_bottleneck=False`` for exactly P5. In MONAI's channel-doubling layout the bottleneck is the widest layer,
    so its SE can cost more parameters than all others together. SE wraps the down layer, so the skip connection
    carries the recalibrated map (the paper's "configuration 1", §IV-D).

    The network is built only through UNet's hooks (``_get_down_layer``, ``_get_bottom_layer``,
    ``_get_up_layer``); ``forward`` is UNet's, so it scripts with ``torch.jit.script`` and exports to ONNX.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels (classes).
        channels: sequence of channels, see :class:`~monai.networks.nets.UNet`.
        strides: sequence of convolution strides, see :class:`~monai.networks.nets.UNet`.
        se: SE layer spec: ``None`` (or ``"none"``/``"null"``, as command lines spell it) gives exactly MONAI's
            UNet: same modules, ``state_dict`` keys and outputs for the same seed. Otherwise a name registered in
            :data:`scse_monai.networks.layers.SE` (``"scse"``, ``"cse"``, ``"sse"``) or ``("name", {kwargs})``,
            e.g. ``("scse", {"r": 2, "aggregation": "max"})``. Defaults to ``"scse"`` (max-out, r = 2).
        se_bottleneck: also recalibrate the bottleneck's output. Defaults to True.
        kwargs: further :class:`~monai.networks.nets.UNet` arguments (``num_res_units``, ``act``, ``norm``, ...).

    Example::

        >>> net = SEUNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(16, 32, 64), strides=(2, 2))
        >>> net(torch.randn(1, 1, 64, 64)).shape
        torch.Size([1, 5, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        strides: Sequence[int],
        se: SESpec = "scse",
        se_bottleneck: bool = True,
        **kwargs,
    ) -> None:
        # Plain attributes set before UNet.__init__, which calls the layer hooks below.
        self.se = normalize_se_spec(se)
        self.se_bottleneck = se_bottleneck
        super().__init__(spatial_dims, in_channels, out_channels, channels, strides, **kwargs)

    def _get_down_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        return self._with_se(super()._get_down_layer(in_channels, out_channels, strides, is_top), out_channels)

    def _get_bottom_layer(self, in_channels: int, out_channels: int) -> nn.Module:
        layer = super()._get_down_layer(in_channels, out_channels, 1, False)
        return self._with_se(layer, out_channels) if self.se_bottleneck else layer

    def _get_up_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        layer = super()._get_up_layer(in_channels, out_channels, strides, is_top)
        return layer if is_top else self._with_se(layer, out_channels)

    def _with_se(self, layer: nn.Module, channels: int) -> nn.Module:
        if not self.se:
            return layer
        return nn.Sequential(layer, get_se_layer(self.se, self.dimensions, channels))
