"""MONAI's SegResNet (Auto3DSeg's default network) with squeeze & excitation after its encoder and decoder stages."""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from monai.networks.nets import SegResNet

from scse_monai.networks.layers.utils import SESpec, normalize_se_spec
from scse_monai.networks.nets.signatures import ARGUMENTS_ATTR, check_spatial_dims, drop_in_signature, monai_arguments
from scse_monai.networks.wrappers import fill_se_slots

__all__ = ["SESegResNet"]


class SESegResNet(SegResNet):
    """:class:`monai.networks.nets.SegResNet` with an SE layer at the end of every encoder and decoder stage.

    Roy et al., "Recalibrating Fully Convolutional Networks with Spatial and Channel 'Squeeze and Excitation'
    Blocks", IEEE TMI 2019, https://arxiv.org/abs/1808.08127.

    Placement: SegResNet's encoder stages (``down_layers``: a strided convolution then ``ResBlock``s) and decoder
    stages (``up_layers``: ``ResBlock``s after the upsampling and the additive skip) each end with an SE layer, the
    paper's P5 (Table IV); the deepest encoder stage is SegResNet's bottleneck, so it is recalibrated too (P3). The
    skips carry the recalibrated encoder maps ("configuration 1", §IV-D); the final norm-act-1x1 conv
    (``conv_final``, the classifier) gets none. Each SE layer is appended to its stage's ``nn.Sequential``, so the
    ``state_dict`` keys of SegResNet's own modules are unchanged: a SegResNet checkpoint loads with
    ``strict=False``, leaving only the SE layers to train.

    The SE layers are created after SegResNet's layers, so the SegResNet part gets exactly the weights a
    ``SegResNet`` gets for the same seed, and the SE layers their PyTorch/MONAI default initialisation. Built
    through SegResNet's ``_make_down_layers`` / ``_make_up_layers``; ``forward`` is SegResNet's (scripts, exports).

    Drop-in: every argument of :class:`~monai.networks.nets.SegResNet`, positional or by keyword, means what it means
    there; ``se`` is keyword-only, after SegResNet's.

    Args:
        args: :class:`~monai.networks.nets.SegResNet`'s arguments (``spatial_dims`` 2 or 3, default 3;
            ``init_filters``, default 8; ``in_channels``, default 1; ``out_channels``, default 2; ...).
        se: SE layer spec: ``None`` (or ``"none"``/``"null"``) gives exactly MONAI's SegResNet; a name registered in
            :data:`scse_monai.networks.layers.SE` (``"scse"``, ``"cse"``, ``"sse"``) or ``("name", {kwargs})``.
            Defaults to ``"scse"`` (max-out, r = 2).
        kwargs: SegResNet's arguments by name.

    Raises:
        ValueError: for ``spatial_dims`` other than 2 or 3, or an invalid ``se`` spec
            (:func:`~scse_monai.networks.layers.get_se_layer`).
        TypeError: for a call that SegResNet would refuse (a missing or unknown argument).

    Example::

        >>> net = SESegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=5)
        >>> net(torch.randn(1, 1, 32, 32, 32)).shape
        torch.Size([1, 5, 32, 32, 32])
    """

    def __init__(self, *args: Any, se: SESpec = "scse", **kwargs: Any) -> None:
        # MONAI's arguments go to SegResNet unchanged (drop-in); ours are keyword-only.
        arguments = monai_arguments(type(self), SegResNet, args, kwargs)
        spatial_dims = check_spatial_dims(type(self), arguments["spatial_dims"], (2, 3))
        # Plain attributes set before SegResNet.__init__, which calls the stage hooks below.
        self.se = normalize_se_spec(se)
        setattr(self, ARGUMENTS_ATTR, {**arguments, "se": self.se})
        self._se_slots = []  # (stage, child name, channels), filled by _end_with_se
        super().__init__(**arguments)
        fill_se_slots(self._se_slots, self.se, spatial_dims)
        del self._se_slots

    def _make_down_layers(self) -> nn.ModuleList:
        layers = super()._make_down_layers()
        for i, stage in enumerate(layers):
            self._end_with_se(stage, self.init_filters * 2**i)
        return layers

    def _make_up_layers(self) -> tuple[nn.ModuleList, nn.ModuleList]:
        up_layers, up_samples = super()._make_up_layers()
        n_up = len(self.blocks_up)
        for i, stage in enumerate(up_layers):
            self._end_with_se(stage, self.init_filters * 2 ** (n_up - i - 1))
        return up_layers, up_samples

    def _end_with_se(self, stage: nn.Sequential, channels: int) -> None:
        if self.se is not None:
            stage.append(nn.Identity())  # the SE layer is set once SegResNet's own layers exist
            self._se_slots.append((stage, str(len(stage) - 1), channels))


SESegResNet.__init__.__signature__ = drop_in_signature(SegResNet, SESegResNet.__init__)  # type: ignore[attr-defined]
