"""Max-out aggregation of the scSE branches, ``max(x * g_c, x * g_s)`` (Roy et al., TMI 2019, eq. 7, Table II).

``x`` is a feature map (B, C, *S), ``g_c`` the cSE gate (B, C, 1, ...) and ``g_s`` the sSE gate (B, 1, *S). Both gates
are small; only their broadcast products are full-size. :func:`maxout_blocked` computes the formula without autograd
(inference) block by block into the output, so the temporaries are bounded by the block size (64 MiB), not by the
activation size; its values are bitwise those of :func:`maxout_reference`. With autograd on,
:func:`maxout_recalibrate` is the plain formula; the scSE layer's training path is
:class:`~scse_monai.networks.blocks.fused_scse.SCSEMaxFunction`, which also fuses the sSE squeeze.
"""

from __future__ import annotations

import torch

__all__ = ["maxout_blocked", "maxout_recalibrate", "maxout_reference"]

#: Elements per block of the blocked loops (64 MiB of float32). Each torch op costs a fixed dispatch and thread
#: synchronisation, which dominated with cache-sized blocks (2^18: ~2x slower than the plain formula on 2 busy
#: cores); with 2^24 a 2D layer is one block, and only large 3D activations are split, which still bounds the
#: temporaries.
BLOCK_ELEMENTS = 1 << 24


def maxout_reference(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """The straightforward formula: both recalibrated tensors, then their element-wise max."""
    return torch.maximum(x * g_c, x * g_s)


def _blocks(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor):
    """Yield ``(bs, cs, x_blk, gc_blk, gs_blk)`` covering ``x`` in blocks of about ``BLOCK_ELEMENTS`` elements.

    ``bs``/``cs`` are the batch and channel slices of the block: several whole samples when a sample is small, else a
    range of channels of one sample. The gate blocks are views; a gate with batch (or channel) size 1 is shared.
    """
    n_batch, n_chan = x.shape[0], x.shape[1]
    per_sample = max(1, x[0].numel())
    per_channel = max(1, x[0, 0].numel())
    if per_sample <= BLOCK_ELEMENTS:
        b_step, c_step = max(1, BLOCK_ELEMENTS // per_sample), n_chan
    else:
        b_step, c_step = 1, max(1, BLOCK_ELEMENTS // per_channel)
    for b0 in range(0, n_batch, b_step):
        bs = slice(b0, min(n_batch, b0 + b_step))
        gc_b = g_c[bs] if g_c.shape[0] > 1 else g_c
        gs_b = g_s[bs] if g_s.shape[0] > 1 else g_s
        for c0 in range(0, n_chan, c_step):
            cs = slice(c0, min(n_chan, c0 + c_step))
            yield bs, cs, x[bs, cs], gc_b[:, cs] if gc_b.shape[1] > 1 else gc_b, gs_b


def _check_shapes(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> None:
    if x.ndim < 2 or g_c.ndim != x.ndim or g_s.ndim != x.ndim:
        raise ValueError(
            f"expected x (B, C, *S) and gates with the same number of dimensions, got shapes {tuple(x.shape)}, "
            f"{tuple(g_c.shape)}, {tuple(g_s.shape)}."
        )
    try:
        broadcast = torch.broadcast_shapes(x.shape, g_c.shape, g_s.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != x.shape:
        raise ValueError(
            f"the gates must broadcast to x's shape {tuple(x.shape)}, got {tuple(g_c.shape)} and {tuple(g_s.shape)}."
        )
    for name, g in (("g_c", g_c), ("g_s", g_s)):
        if g.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"{name} must have batch size 1 or {x.shape[0]}, got shape {tuple(g.shape)}.")
    if g_s.shape[1] != 1:
        raise ValueError(f"g_s must have one channel (a spatial gate), got shape {tuple(g_s.shape)}.")


def maxout_blocked(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """``maximum(x * g_c, x * g_s)`` written block by block into the output; one block-sized temporary in all.

    No autograd: for inference. The values are bitwise those of :func:`maxout_reference`.
    """
    dtype = torch.promote_types(torch.promote_types(x.dtype, g_c.dtype), g_s.dtype)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    tmp: torch.Tensor | None = None
    for bs, cs, xb, gcb, gsb in _blocks(x, g_c, g_s):
        ob = out[bs, cs]
        if tmp is None or tmp.shape != ob.shape:
            tmp = torch.empty_like(ob)
        torch.mul(xb, gcb, out=ob)
        torch.mul(xb, gsb, out=tmp)
        torch.maximum(ob, tmp, out=ob)
    return out


@torch.jit.unused
def _maxout_eager(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return maxout_reference(x, g_c, g_s)
    _check_shapes(x, g_c, g_s)
    if torch.is_grad_enabled() and (x.requires_grad or g_c.requires_grad or g_s.requires_grad):
        return maxout_reference(x, g_c, g_s)
    return maxout_blocked(x, g_c, g_s)


def maxout_recalibrate(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """max(x * g_c, x * g_s) for x (B, C, *S), a channel gate g_c (B, C, 1, ...) and a spatial gate g_s (B, 1, *S).

    With autograd on it is :func:`maxout_reference`; without, :func:`maxout_blocked` (same values), which allocates
    only the output plus one block-sized temporary.
    For gates in (0, 1) the result is ``x * max(g_c, g_s)`` where ``x >= 0`` and ``x * min(g_c, g_s)`` where
    ``x < 0``.

    Args:
        x: feature map (batch, channels, *spatial).
        g_c: channel gate, (batch or 1, channels, 1, ...).
        g_s: spatial gate, (batch or 1, 1, *spatial).

    Raises:
        ValueError: when the gates do not have those shapes.
    """
    if torch.jit.is_scripting():
        return maxout_reference(x, g_c, g_s)
    return _maxout_eager(x, g_c, g_s)
