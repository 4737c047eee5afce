"""Max-out aggregation of the scSE branches: max(x * g_c, x * g_s).

Placeholder with the plain formula; see issue "Performance" for the fused, memory-efficient version.
"""

from __future__ import annotations

import torch

__all__ = ["maxout_recalibrate", "maxout_reference"]


def maxout_reference(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """The straightforward formula: both recalibrated tensors, then their element-wise max."""
    return torch.maximum(x * g_c, x * g_s)


def maxout_recalibrate(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """max(x * g_c, x * g_s) for x (B, C, *S), a channel gate g_c (B, C, 1, ...) and a spatial gate g_s (B, 1, *S)."""
    return maxout_reference(x, g_c, g_s)
