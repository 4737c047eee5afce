"""Max-out aggregation of the scSE branches, ``max(x * g_c, x * g_s)`` (Roy et al., TMI 2019, eq. 7, Table II).

``x`` is a feature map (B, C, *S), ``g_c`` the cSE gate (B, C, 1, ...) and ``g_s`` the sSE gate (B, 1, *S). Both gates
are small; only their broadcast products are full-size. The straightforward formula (:func:`maxout_reference`)
materialises ``x * g_c`` and ``x * g_s`` and autograd keeps both for backward, i.e. two extra full-size activations per
scSE block. :func:`maxout_recalibrate` computes the same values in one blocked pass and keeps only ``x``, ``g_c`` and
``g_s`` for backward (``x`` is kept anyway by the sSE's 1x1 convolution, so the saved state adds nothing full-size);
backward recomputes the products block by block. Blocks are at most 64 MiB, so the temporaries are bounded by the block
size, not by the activation size.

The forward values are bitwise those of :func:`maxout_reference` (the same two products and the same max, only
blocked). The gradients are those of autograd on :func:`maxout_reference`, including its tie rule: where
``x * g_c == x * g_s`` (e.g. ``x == 0`` or equal gates) ``torch.maximum`` gives each input half of the gradient.

TorchScript, tracing, ONNX export and ``torch.compile``/``torch.export`` see the plain formula (an
``autograd.Function`` with a Python loop cannot be scripted or exported, and a compiler fuses the formula by itself).
"""

from __future__ import annotations

import torch

__all__ = ["maxout_recalibrate", "maxout_reference", "MaxOutRecalibrate"]

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


def _forward_blocked(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """``maximum(x * g_c, x * g_s)`` written block by block into the output; one block-sized temporary in all."""
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


class MaxOutRecalibrate(torch.autograd.Function):
    """``max(x * g_c, x * g_s)`` that saves only ``x``, ``g_c`` and ``g_s`` for backward.

    Elementwise ops only, so under autocast it behaves like the formula (mul and maximum are not autocast ops; the
    result has the promoted dtype of the inputs) and no ``custom_fwd`` is needed.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x, g_c, g_s)
        return _forward_blocked(x, g_c, g_s)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        x, g_c, g_s = ctx.saved_tensors
        need_x, need_c, need_s = ctx.needs_input_grad[:3]
        dtype = grad.dtype
        grad_x = torch.empty(x.shape, dtype=dtype, device=x.device) if need_x else None
        # Gate gradients per sample (a batch-1 gate shared by all samples is summed over the batch at the end).
        n_batch = x.shape[0]
        grad_c = torch.zeros((n_batch,) + tuple(g_c.shape[1:]), dtype=dtype, device=x.device) if need_c else None
        grad_s = torch.zeros((n_batch,) + tuple(g_s.shape[1:]), dtype=dtype, device=x.device) if need_s else None
        spatial = tuple(range(2, x.ndim))
        buf_p: torch.Tensor | None = None
        buf_q: torch.Tensor | None = None
        for bs, cs, xb, gcb, gsb in _blocks(x, g_c, g_s):
            gb = grad[bs, cs]
            if buf_p is None or buf_q is None or buf_p.shape != gb.shape:
                buf_p, buf_q = torch.empty_like(gb), torch.empty_like(gb)
            # torch.maximum's backward on the recomputed products p = x * g_c, q = x * g_s: the larger gets the
            # gradient, a tie gives each half: (sign(p - q) + 1) / 2 is p's share, as p - q == 0 iff p == q.
            # (torch.heaviside computes the same in one op but is not vectorised: ~20x slower on CPU.)
            torch.mul(xb, gcb, out=buf_p)
            torch.mul(xb, gsb, out=buf_q)
            grad_p = buf_p.sub_(buf_q).sign_().add_(1).mul_(gb).mul_(0.5)
            grad_q = torch.sub(gb, grad_p, out=buf_q)
            if grad_x is not None:
                torch.mul(grad_q, gsb, out=grad_x[bs, cs]).addcmul_(grad_p, gcb)
            if grad_c is not None:
                prod = grad_p.mul_(xb)
                blk = prod.sum(dim=spatial, keepdim=True) if spatial else prod
                target = grad_c[bs, cs] if g_c.shape[1] > 1 else grad_c[bs]
                target += blk.sum_to_size(target.shape)
            if grad_s is not None:
                grad_s[bs] += grad_q.mul_(xb).sum(dim=1, keepdim=True)
        if grad_c is not None:
            grad_c = grad_c.sum_to_size(g_c.shape).to(g_c.dtype)
        if grad_s is not None:
            grad_s = grad_s.sum_to_size(g_s.shape).to(g_s.dtype)
        if grad_x is not None:
            grad_x = grad_x.to(x.dtype)
        return grad_x, grad_c, grad_s


@torch.jit.unused
def _maxout_eager(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return maxout_reference(x, g_c, g_s)
    _check_shapes(x, g_c, g_s)
    if torch.is_grad_enabled() and (x.requires_grad or g_c.requires_grad or g_s.requires_grad):
        return MaxOutRecalibrate.apply(x, g_c, g_s)
    return _forward_blocked(x, g_c, g_s)


def maxout_recalibrate(x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor) -> torch.Tensor:
    """max(x * g_c, x * g_s) for x (B, C, *S), a channel gate g_c (B, C, 1, ...) and a spatial gate g_s (B, 1, *S).

    Same values and gradients as :func:`maxout_reference` (see the module docstring), without keeping the two
    full-size products for backward; without grad it allocates only the output (plus one block-sized temporary).
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
