"""MONAI's UNet with squeeze & excitation recalibration after its encoder, bottleneck and decoder layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn as nn
from monai.networks.nets import UNet

from scse_monai.networks.layers.utils import SESpec, get_se_layer, normalize_se_spec
from scse_monai.networks.nets.signatures import ARGUMENTS_ATTR, check_spatial_dims, drop_in_signature, monai_arguments
from scse_monai.utils.config_values import as_optional, as_optional_bool

__all__ = ["SEUNet", "SEUNET_PLACEMENTS", "PAPER_POSITIONS", "PLACEMENT_VARIANTS", "resolve_placement"]

#: The parts of a UNet an SE layer can follow.
PARTS = ("encoder", "bottleneck", "decoder", "classifier")

#: Named placements: the positions of Roy et al.'s placement study (TMI 2019, §IV-B, Table IV) on MONAI's UNet.
SEUNET_PLACEMENTS: dict[str, tuple[str, ...]] = {
    "encoder": ("encoder",),  # P1
    "decoder": ("decoder",),  # P2
    "bottleneck": ("bottleneck",),  # P3
    "classifier": ("classifier",),  # P4: SE on the logits of the top up layer
    "encoder_decoder": ("encoder", "decoder"),  # P5, the paper's choice
    "encoder_decoder_bottleneck": ("encoder", "bottleneck", "decoder"),  # P5 + P3, SEUNet's default
    "all": PARTS,  # P6
}

#: The paper's position labels (Table IV) -> placement names.
PAPER_POSITIONS: dict[str, str] = {
    "P1": "encoder",
    "P2": "decoder",
    "P3": "bottleneck",
    "P4": "classifier",
    "P5": "encoder_decoder",
    "P6": "all",
}

#: Placement ablation variants for the bundle: name -> ``network_def`` overrides of ``train.json``. The SE kind
#: stays what ``network_def#se`` says; ``se_bottleneck`` is cleared so that the placement alone decides.
PLACEMENT_VARIANTS: dict[str, dict[str, Any]] = {
    name: {"network_def#placement": name, "network_def#se_bottleneck": None} for name in SEUNET_PLACEMENTS
}


def resolve_placement(placement: str | Sequence[str] | None, se_bottleneck: bool | None = None) -> frozenset[str]:
    """The set of UNet parts (:data:`PARTS`) that get an SE layer.

    Args:
        placement: a name in :data:`SEUNET_PLACEMENTS`, a paper position ``"P1"`` ... ``"P6"``
            (:data:`PAPER_POSITIONS`), a non-empty sequence of parts, e.g. ``["encoder", "decoder"]``, or ``None``
            (also spelt ``"null"``, as command lines pass it): encoder and decoder, plus the bottleneck unless
            ``se_bottleneck`` is False.
        se_bottleneck: the older switch for the bottleneck's SE: True, False or None (also ``"true"``, ``"false"``,
            ``"null"``); with a ``placement`` it must be None or agree with it.

    Raises:
        ValueError: for an unknown name or part, a placement of another type or with no part, an ``se_bottleneck``
            that is not a boolean, or one that contradicts ``placement``; each message names the argument and what
            it accepts.
    """
    se_bottleneck = as_optional_bool(se_bottleneck, "se_bottleneck")
    accepted = (f"expected one of {sorted(SEUNET_PLACEMENTS)}, a paper position {sorted(PAPER_POSITIONS)}, a list "
                f"of parts from {list(PARTS)} or None (null)")
    placement = as_optional(placement)
    if placement is None:
        parts = {"encoder", "decoder"} | ({"bottleneck"} if se_bottleneck in (None, True) else set())
        return frozenset(parts)
    if isinstance(placement, str):
        name = PAPER_POSITIONS.get(placement.upper(), placement.lower())
        if name not in SEUNET_PLACEMENTS:
            raise ValueError(f"unknown SE placement {placement!r}; {accepted}.")
        parts = frozenset(SEUNET_PLACEMENTS[name])
    elif isinstance(placement, list | tuple | set | frozenset):
        unknown = [p for p in placement if p not in PARTS]
        if unknown or not placement:
            what = f"unknown UNet parts {unknown} in" if unknown else "no part in"
            raise ValueError(f"{what} SE placement {list(placement)}; {accepted} (se=None for no SE).")
        parts = frozenset(placement)
    else:
        raise ValueError(f"placement must be a name or a list of parts, got {placement!r}; {accepted}.")
    if se_bottleneck is not None and se_bottleneck != ("bottleneck" in parts):
        raise ValueError(
            f"se_bottleneck={se_bottleneck} contradicts placement={placement!r}; leave se_bottleneck None (null) "
            "when giving a placement."
        )
    return parts


class SEUNet(UNet):
    """:class:`monai.networks.nets.UNet` with an SE layer after every encoder, bottleneck and decoder layer.

    Roy et al., "Recalibrating Fully Convolutional Networks with Spatial and Channel 'Squeeze and Excitation'
    Blocks", IEEE TMI 2019, https://arxiv.org/abs/1808.08127.

    Placement: the paper's best placement P5 puts SE after every encoder and decoder block (Table IV). MONAI's top
    up layer emits the logits (it merges the last decoder with the classifier), so it gets no SE, like the paper's
    classifier. The bottleneck gets one too by default (P5 + P3, between the paper's P5 and P6); set
    ``se_bottleneck=False`` or ``placement="P5"`` for exactly P5. In MONAI's channel-doubling layout the bottleneck
    is the widest layer, so its SE can cost more parameters than all others together. SE wraps the down layer, so
    the skip connection carries the recalibrated map (the paper's "configuration 1", §IV-D).

    ``placement`` reproduces the paper's placement study (Table IV) with :data:`SEUNET_PLACEMENTS`: ``"encoder"``
    (P1: every down layer), ``"decoder"`` (P2: every up layer but the top one), ``"bottleneck"`` (P3),
    ``"classifier"`` (P4: SE on the logits the top up layer emits), ``"encoder_decoder"`` (P5), ``"all"`` (P6), or
    any list of those parts. :data:`PLACEMENT_VARIANTS` gives the matching bundle overrides.

    The network is built only through UNet's hooks (``_get_down_layer``, ``_get_bottom_layer``,
    ``_get_up_layer``); ``forward`` is UNet's, so it scripts with ``torch.jit.script`` and exports to ONNX.

    Drop-in: every argument of :class:`~monai.networks.nets.UNet`, positional or by keyword, means what it means
    there (``SEUNet(2, 1, 3, (16, 32, 64), (2, 2), 3, 3, 1)`` is that UNet with SE layers); the arguments below are
    keyword-only, after UNet's.

    Args:
        args: :class:`~monai.networks.nets.UNet`'s arguments (``spatial_dims`` 1, 2 or 3, ``in_channels``,
            ``out_channels``, ``channels``, ``strides``, ``kernel_size``, ``up_kernel_size``, ``num_res_units``, ...).
        se: SE layer spec: ``None`` (or ``"none"``/``"null"``, as command lines spell it) gives exactly MONAI's
            UNet: same modules, ``state_dict`` keys and outputs for the same seed. Otherwise a name registered in
            :data:`scse_monai.networks.layers.SE` (``"scse"``, ``"cse"``, ``"sse"``) or ``("name", {kwargs})``,
            e.g. ``("scse", {"r": 2, "aggregation": "max"})``. Defaults to ``"scse"`` (max-out, r = 2).
        se_bottleneck: also recalibrate the bottleneck's output (when ``placement`` is None). Defaults to True.
        placement: which parts get SE layers, see :func:`resolve_placement`; ``None`` (default): encoder, decoder
            and, unless ``se_bottleneck`` is False, the bottleneck.
        kwargs: UNet's arguments by name.

    Raises:
        ValueError: for ``spatial_dims`` other than 1, 2 or 3, an unknown ``placement``, a ``se_bottleneck`` that is
            not a boolean or contradicts ``placement``, or an invalid ``se`` spec
            (:func:`~scse_monai.networks.layers.get_se_layer`).
        TypeError: for a call that UNet would refuse (a missing or unknown argument).

    Example::

        >>> net = SEUNet(spatial_dims=2, in_channels=1, out_channels=5, channels=(16, 32, 64), strides=(2, 2))
        >>> net(torch.randn(1, 1, 64, 64)).shape
        torch.Size([1, 5, 64, 64])
    """

    def __init__(
        self,
        *args: Any,
        se: SESpec = "scse",
        se_bottleneck: bool | None = None,
        placement: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # MONAI's arguments go to UNet unchanged (drop-in: any UNet call builds the same network); ours are
        # keyword-only. Checked here, because UNet fails with an IndexError for spatial_dims=4.
        arguments = monai_arguments(type(self), UNet, args, kwargs)
        check_spatial_dims(type(self), arguments["spatial_dims"], (1, 2, 3))
        # Plain attributes set before UNet.__init__, which calls the layer hooks below.
        self.se = normalize_se_spec(se)
        self.se_parts = resolve_placement(placement, se_bottleneck)
        self.se_bottleneck = "bottleneck" in self.se_parts
        ours = {"se": self.se, "se_bottleneck": as_optional_bool(se_bottleneck, "se_bottleneck"),
                "placement": as_optional(placement)}
        setattr(self, ARGUMENTS_ATTR, {**arguments, **ours})
        super().__init__(**arguments)

    def _get_down_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        layer = super()._get_down_layer(in_channels, out_channels, strides, is_top)
        return self._with_se(layer, out_channels, "encoder")

    def _get_bottom_layer(self, in_channels: int, out_channels: int) -> nn.Module:
        return self._with_se(super()._get_down_layer(in_channels, out_channels, 1, False), out_channels, "bottleneck")

    def _get_up_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        layer = super()._get_up_layer(in_channels, out_channels, strides, is_top)
        return self._with_se(layer, out_channels, "classifier" if is_top else "decoder")

    def _with_se(self, layer: nn.Module, channels: int, part: str) -> nn.Module:
        if not self.se or part not in self.se_parts:
            return layer
        return nn.Sequential(layer, get_se_layer(self.se, self.dimensions, channels))


SEUNet.__init__.__signature__ = drop_in_signature(UNet, SEUNet.__init__)  # type: ignore[attr-defined]
