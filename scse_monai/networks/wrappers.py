"""Modules that run a network block and then an SE layer on its output, for one- and two-input blocks.

A one-input block becomes ``nn.Sequential(block, se)`` (what :class:`~scse_monai.networks.nets.SEUNet` does); a
decoder block taking ``(x, skip)`` (MONAI's ``UnetUpBlock``, ``UpCat``, ...) becomes :class:`SEAfterTwoInputs`.
Both have fixed, typed ``forward`` signatures, so networks built with them script with ``torch.jit.script`` and
export to ONNX.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

from scse_monai.networks.layers.utils import SESpec, get_se_layer

__all__ = ["SEAfterTwoInputs", "se_after", "fill_se_slots"]


class SEAfterTwoInputs(nn.Module):
    """``se(block(x, skip))`` for a decoder block with a second input (a skip connection or gating signal).

    ``skip`` is typed as a tensor for TorchScript; in eager mode it may be ``None`` where the block accepts that
    (FlexibleUNet calls its last ``UpCat`` blocks without a skip).

    Args:
        block: module called as ``block(x, skip)``.
        se: layer applied to the block's output (``nn.Identity`` until an SE layer is set).
    """

    def __init__(self, block: nn.Module, se: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.se = se

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``se(block(x, skip))``."""
        return self.se(self.block(x, skip))


def se_after(block: nn.Module, se: nn.Module, num_inputs: int = 1) -> nn.Module:
    """``block`` followed by ``se``: ``nn.Sequential(block, se)`` or, for ``num_inputs=2``, :class:`SEAfterTwoInputs`.

    Raises:
        ValueError: for any other ``num_inputs`` (blocks with keyword or more inputs need their own wrapper).
    """
    if num_inputs == 1:
        return nn.Sequential(block, se)
    if num_inputs == 2:
        return SEAfterTwoInputs(block, se)
    raise ValueError(f"SE can follow blocks called with 1 or 2 tensors, got a block called with {num_inputs}.")


def fill_se_slots(slots: Iterable[tuple[nn.Module, str, int]], spec: SESpec, spatial_dims: int) -> None:
    """Put a new SE layer for ``channels`` into each ``(parent, child_name, channels)`` placeholder slot.

    The SE networks build their blocks with ``nn.Identity`` placeholders and fill them at the end of ``__init__``:
    the SE layers then do not draw from the random number generator between the backbone's layers (so the backbone
    gets the same initial weights as MONAI's network for the same seed) and escape any re-initialisation the
    backbone applies to all of its convolutions.
    """
    for parent, name, channels in slots:
        setattr(parent, name, get_se_layer(spec, spatial_dims, channels))
