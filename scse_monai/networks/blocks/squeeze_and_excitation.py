"""Spatial (sSE) and concurrent spatial-and-channel (scSE) squeeze & excitation layers.

The channel branch (cSE) is MONAI's :class:`monai.networks.blocks.ChannelSELayer` (Hu et al., SENet), reused as it
is; this module adds what MONAI lacks, after Roy et al.:

- "Recalibrating Fully Convolutional Networks with Spatial and Channel 'Squeeze and Excitation' Blocks",
  IEEE TMI 38(2), 2019, https://arxiv.org/abs/1808.08127 (max-out aggregation, the default here);
- "Concurrent Spatial and Channel Squeeze & Excitation in Fully Convolutional Networks", MICCAI 2018,
  https://arxiv.org/abs/1803.02579 (additive aggregation).

Every layer takes ``(spatial_dims, in_channels, **kwargs)`` like ``ChannelSELayer``, works in 1D, 2D and 3D and
returns a tensor of the input's shape.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Conv
from monai.utils import look_up_option

from scse_monai.networks.blocks.fused_scse import gate_dtype, scse_max, spatial_gate, spatial_squeeze
from scse_monai.utils.enums import SEAggregation

__all__ = ["SpatialSELayer", "ChannelSpatialSELayer", "check_input_rank"]


def check_input_rank(x: torch.Tensor, spatial_dims: int) -> None:
    """Raise ``ValueError`` unless ``x`` is (batch, channels, *spatial) with ``spatial_dims`` spatial axes."""
    if x.ndim != spatial_dims + 2:  # (string concatenation: TorchScript has no f-strings)
        raise ValueError("expected input of shape (batch, channels, " + str(spatial_dims) + " spatial dims), i.e. "
                         + str(spatial_dims + 2) + " dimensions, got " + str(x.ndim) + " dimensions")


class SpatialSELayer(nn.Module):
    """Channel squeeze and spatial excitation (sSE), Roy et al., TMI 2019, eq. 3.

    A 1x1 convolution C -> 1 (with bias) squeezes the channels into one map q; each position is rescaled by
    sigmoid(q): ``U_sSE(i, j, :) = sigmoid(q(i, j)) * u(i, j, :)``. Adds ``C + 1`` parameters. The convolution's
    parameters live in ``self.conv`` (a MONAI ``Conv`` module, so checkpoints keep their keys); the squeeze itself is
    computed as a matrix-vector product (:func:`~scse_monai.networks.blocks.fused_scse.spatial_squeeze`), which is
    the same value and much faster on CPU than a convolution with one output channel.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of input channels C.

    Example::

        >>> layer = SpatialSELayer(spatial_dims=2, in_channels=8)
        >>> layer(torch.randn(1, 8, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, spatial_dims: int, in_channels: int) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}.")
        self.spatial_dims = spatial_dims
        self.conv = Conv[Conv.CONV, spatial_dims](in_channels, 1, kernel_size=1, bias=True)
        self.sigmoid = nn.Sigmoid()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial gate sigmoid(q), shaped (batch, 1, *spatial).

        Under autocast the squeeze and the sigmoid run in (at least) float32, whatever the input's dtype.
        """
        if not torch.jit.is_scripting():  # (TorchScript compiles only this branch's alternative)
            if torch.is_autocast_enabled(x.device.type):
                return self._gate_float32(x)
        # the convolution's parameters, applied as a batched matrix-vector product (see spatial_squeeze)
        return self.sigmoid(spatial_squeeze(x, self.conv.weight, self.conv.bias))

    @torch.jit.unused
    def _gate_float32(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.conv.weight, self.conv.bias
        with torch.autocast(x.device.type, enabled=False):
            return spatial_gate(x, weight, bias, gate_dtype(weight, weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibrate ``x``.

        Args:
            x: in shape (batch, in_channels, spatial_1[, spatial_2, ...]).

        Raises:
            ValueError: when ``x`` does not have ``spatial_dims + 2`` dimensions.
        """
        check_input_rank(x, self.spatial_dims)
        return (x * self.gate(x)).to(x.dtype)


class ChannelSpatialSELayer(nn.Module):
    """Concurrent spatial and channel squeeze & excitation (scSE), Roy et al., TMI 2019, eqs. 4-7.

    The cSE branch (MONAI's :class:`~monai.networks.blocks.ChannelSELayer`: global average pooling, FC C -> C//r,
    ReLU, FC C//r -> C, sigmoid, all FC layers with bias) and the sSE branch (:class:`SpatialSELayer`) are computed
    in parallel from the same input U and aggregated element-wise:

    - ``"max"`` (default): max(U_cSE, U_sSE), the TMI 2019 max-out used in all of its experiments (Table II,
      Dice 0.867) and in the authors' code (``ai-med/squeeze_and_excitation``).
    - ``"add"``: U_cSE + U_sSE, the MICCAI 2018 version; what ``segmentation_models_pytorch`` calls "scse"
      (there with r = 16).
    - ``"mul"``: U_cSE * U_sSE, the element-wise product of the two recalibrated maps as Table II defines it,
      i.e. ``u^2 * g_c * g_s`` (not the sequential ``u * g_c * g_s``).
    - ``"concat"``: the paper concatenates U_cSE and U_sSE into 2C channels, which changes the next layer's input
      width. To keep this layer a drop-in replacement (C channels out), the concatenation is followed here by a
      learned 1x1 convolution 2C -> C with bias, i.e. the linear part the next layer would otherwise have to
      absorb; it adds 2C^2 + C parameters. This projection is our choice, not the paper's.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of input channels C.
        r: reduction ratio of the cSE bottleneck (hidden width C // r). Defaults to 2, the paper's best (Table V).
        aggregation: ``"max"``, ``"add"``, ``"mul"`` or ``"concat"``, see above. Defaults to ``"max"``.
        memory_efficient: for ``"max"``: :func:`~scse_monai.networks.blocks.fused_scse.scse_max`, whose training
            path keeps only the input (which the sSE squeeze keeps anyway) and the small gates for backward, not the
            two full-size products, with the plain formula's values and gradients (in-place ops after the block
            included; ``tests/networks/blocks/test_drop_in.py``). ``False``: the plain formula. Defaults to True.

    Under autocast the cSE squeeze and MLP, the sSE squeeze and both sigmoids run in float32 (half-precision gates
    saturate); the output has the input's dtype.

    Raises:
        ValueError: when ``r`` is not a positive integer no larger than ``in_channels``, or ``aggregation`` is
            unknown.

    Example::

        >>> layer = ChannelSpatialSELayer(spatial_dims=3, in_channels=16, r=2, aggregation="max")
        >>> layer(torch.randn(2, 16, 8, 8, 8)).shape
        torch.Size([2, 16, 8, 8, 8])

    See Also:
        :class:`SpatialSELayer`, :class:`monai.networks.blocks.ChannelSELayer`, :data:`scse_monai.networks.layers.SE`.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        r: int = 2,
        aggregation: str | SEAggregation = SEAggregation.MAX,
        memory_efficient: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r > in_channels:
            raise ValueError(
                f"r must be an integer in [1, in_channels={in_channels}] so that the cSE hidden width in_channels // r"
                f" is at least 1, got r={r!r}."
            )
        try:
            self.aggregation = str(look_up_option(str(aggregation).lower(), SEAggregation))
        except ValueError as e:
            hint = str(e).strip().splitlines()[0]  # MONAI's "did you mean" suggestion
            raise ValueError(f"aggregation={aggregation!r}: {hint} Expected one of {[a.value for a in SEAggregation]}."
                             ) from e
        self.spatial_dims = spatial_dims
        self.memory_efficient = memory_efficient
        self.cse = ChannelSELayer(spatial_dims, in_channels, r=r)
        self.sse = SpatialSELayer(spatial_dims, in_channels)
        self.project = (
            Conv[Conv.CONV, spatial_dims](2 * in_channels, in_channels, kernel_size=1, bias=True)
            if self.aggregation == SEAggregation.CONCAT
            else nn.Identity()
        )

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """The cSE gate s = sigmoid(W1 relu(W2 z)), shaped (batch, channels, 1, ...).

        ``ChannelSELayer.forward`` returns ``x * s``; combining the gates needs ``s`` itself, so this runs the
        ChannelSELayer's own ``fc`` module on the spatial mean (what its ``avg_pool`` computes) without the product.
        Under autocast the mean and the MLP run in the parameters' dtype, at least float32.
        """
        if not torch.jit.is_scripting():
            if torch.is_autocast_enabled(x.device.type):
                return self._channel_gate_float32(x)
        # the mean over space is the ChannelSELayer's AdaptiveAvgPool(1), but its backward keeps no copy of x; over
        # the spatial dims, not a (B, C, -1) reshape, which copies a channels-last x (and under torch.compile made
        # inductor write x in NCHW beside the channels-last layout the convolutions use)
        z = x.mean(dim=[d for d in range(2, x.ndim)])
        shape = [x.shape[0], x.shape[1]] + [1] * (x.ndim - 2)
        return self.cse.fc(z).view(shape)

    @torch.jit.unused
    def _channel_gate_float32(self, x: torch.Tensor) -> torch.Tensor:
        weight = next(self.cse.fc.parameters())
        with torch.autocast(x.device.type, enabled=False):
            z = x.mean(dim=[d for d in range(2, x.ndim)], dtype=gate_dtype(weight, weight))
            return self.cse.fc(z.to(weight.dtype)).view(*x.shape[:2], *[1] * (x.ndim - 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibrate ``x``.

        Args:
            x: in shape (batch, in_channels, spatial_1[, spatial_2, ...]).

        Raises:
            ValueError: when ``x`` does not have ``spatial_dims + 2`` dimensions.
        """
        check_input_rank(x, self.spatial_dims)
        g_c = self.channel_gate(x)
        bias = self.sse.conv.bias
        if self.aggregation == "max" and self.memory_efficient and bias is not None:
            return scse_max(x, g_c, self.sse.conv.weight, bias)  # its three paths: see fused_scse
        g_s = self.sse.gate(x)
        if self.aggregation == "max":  # the plain formula (or a bias-less sSE convolution, after a user's surgery)
            out = torch.maximum(x * g_c, x * g_s)
        elif self.aggregation == "add":
            out = x * (g_c + g_s)
        elif self.aggregation == "mul":
            out = (x * g_c) * (x * g_s)
        else:
            out = self.project(torch.cat([x * g_c, x * g_s], dim=1))
        return out.to(x.dtype)
