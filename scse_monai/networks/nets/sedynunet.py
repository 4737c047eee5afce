"""MONAI's DynUNet (nnU-Net's architecture) with squeeze & excitation after its encoder, bottleneck and decoders."""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from monai.networks.nets import DynUNet

from scse_monai.networks.layers.utils import SESpec, normalize_se_spec
from scse_monai.networks.nets.signatures import ARGUMENTS_ATTR, check_spatial_dims, drop_in_signature, monai_arguments
from scse_monai.networks.wrappers import fill_se_slots, se_after

__all__ = ["SEDynUNet"]


class SEDynUNet(DynUNet):
    """:class:`monai.networks.nets.DynUNet` with an SE layer after every encoder, bottleneck and decoder block.

    The encoder blocks are DynUNet's input block and downsample blocks; the decoder blocks its upsample blocks.

    Roy et al., "Recalibrating Fully Convolutional Networks with Spatial and Channel 'Squeeze and Excitation'
    Blocks", IEEE TMI 2019, https://arxiv.org/abs/1808.08127.

    Placement: DynUNet has a separate 1x1 output block (the paper's classifier), so every decoder block gets an SE
    layer, as in the paper's P5 (Table IV), plus one after the bottleneck (P3). The output block and the deep
    supervision heads get none; the heads read the recalibrated decoder outputs. The skip connections carry the
    recalibrated encoder maps (the paper's "configuration 1", §IV-D). The SE layer follows the whole block, so with
    ``res_block=True`` it sees the block's output after its in-place residual addition and activation.

    Weight initialisation: DynUNet re-initialises every convolution (Kaiming normal, a = 0.01, zero bias) at the end
    of its ``__init__``. The SE layers are created after that, so they keep their own PyTorch/MONAI default
    initialisation (as in the authors' code and MONAI's ``ChannelSELayer``), and the DynUNet part of an
    ``SEDynUNet`` gets exactly the weights a ``DynUNet`` gets for the same seed: SE and baseline runs start from the
    same backbone.

    The network is built through DynUNet's own methods (``get_input_block``, ``get_downsamples``,
    ``get_bottleneck``, ``get_upsamples``); ``forward`` is DynUNet's, so it scripts and exports to ONNX.

    Drop-in: every argument of :class:`~monai.networks.nets.DynUNet`, positional or by keyword, means what it means
    there; ``se`` is keyword-only, after DynUNet's.

    Args:
        args: :class:`~monai.networks.nets.DynUNet`'s arguments (``spatial_dims`` 1, 2 or 3, ``in_channels``,
            ``out_channels``, ``kernel_size``, ``strides``, ``upsample_kernel_size``, ``filters``, ...).
        se: SE layer spec: ``None`` (or ``"none"``/``"null"``) gives exactly MONAI's DynUNet (modules,
            ``state_dict`` keys and order, initialisation and outputs for the same seed); a name registered in
            :data:`scse_monai.networks.layers.SE` (``"scse"``, ``"cse"``, ``"sse"``) or ``("name", {kwargs})``.
            Defaults to ``"scse"`` (max-out, r = 2).
        kwargs: DynUNet's arguments by name.

    Raises:
        ValueError: for ``spatial_dims`` other than 1, 2 or 3, or an invalid ``se`` spec
            (:func:`~scse_monai.networks.layers.get_se_layer`).
        TypeError: for a call that DynUNet would refuse (a missing or unknown argument).

    Example::

        >>> net = SEDynUNet(3, 1, 5, kernel_size=[[3, 3, 1], 3, 3], strides=[1, [2, 2, 1], 2],
        ...                 upsample_kernel_size=[[2, 2, 1], 2], filters=[16, 32, 64], res_block=True)
        >>> net(torch.randn(1, 1, 64, 64, 32)).shape
        torch.Size([1, 5, 64, 64, 32])
    """

    def __init__(self, *args: Any, se: SESpec = "scse", **kwargs: Any) -> None:
        # MONAI's arguments go to DynUNet unchanged (drop-in); ours are keyword-only. spatial_dims is checked here,
        # because DynUNet fails with an IndexError for spatial_dims=4.
        arguments = monai_arguments(type(self), DynUNet, args, kwargs)
        spatial_dims = check_spatial_dims(type(self), arguments["spatial_dims"], (1, 2, 3))
        # Plain attributes set before DynUNet.__init__, which calls the block hooks below.
        self.se = normalize_se_spec(se)
        setattr(self, ARGUMENTS_ATTR, {**arguments, "se": self.se})
        self._se_slots = []  # (wrapper, child name, channels), filled by _with_se
        super().__init__(**arguments)
        # DynUNet.__init__ has re-initialised its convolutions; only now create the SE layers in their slots.
        fill_se_slots(self._se_slots, self.se, spatial_dims)
        del self._se_slots

    def get_input_block(self) -> nn.Module:
        """DynUNet's input block, followed by an SE layer."""
        return self._with_se(super().get_input_block(), self.filters[0])

    def get_downsamples(self) -> nn.ModuleList:
        """DynUNet's downsample blocks, each followed by an SE layer."""
        blocks = super().get_downsamples()
        return nn.ModuleList([self._with_se(b, c) for b, c in zip(blocks, self.filters[1:-1], strict=True)])

    def get_bottleneck(self) -> nn.Module:
        """DynUNet's bottleneck, followed by an SE layer."""
        return self._with_se(super().get_bottleneck(), self.filters[-1])

    def get_upsamples(self) -> nn.ModuleList:
        """DynUNet's upsample blocks, each followed by an SE layer (the output block and heads get none)."""
        blocks = super().get_upsamples()  # deepest first, as DynUNet orders them
        channels = self.filters[:-1][::-1]
        return nn.ModuleList([self._with_se(b, c, num_inputs=2) for b, c in zip(blocks, channels, strict=True)])

    def _with_se(self, block: nn.Module, channels: int, num_inputs: int = 1) -> nn.Module:
        if self.se is None:
            return block
        wrapper = se_after(block, nn.Identity(), num_inputs)  # the SE layer is set after DynUNet's initialisation
        self._se_slots.append((wrapper, "1" if num_inputs == 1 else "se", channels))
        return wrapper


SEDynUNet.__init__.__signature__ = drop_in_signature(DynUNet, SEDynUNet.__init__)  # type: ignore[attr-defined]
