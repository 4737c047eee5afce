"""The max-out scSE, ``max(x * g_c, x * sigmoid(conv1x1(x)))`` (Roy et al., TMI 2019, eq. 7 and Table II).

:func:`scse_max_reference` is the plain formula. :func:`scse_max` computes it on one of three paths, chosen in
:func:`_dispatch`, each for one reason:

- **eager training**: :class:`SCSEMaxFunction`. Autograd on the formula keeps both full-size products ``x * g_c``
  and ``x * g_s`` for ``torch.maximum``'s backward; the Function keeps only the layer's input ``x`` (which the sSE
  squeeze keeps anyway), the channel gate and the 1x1 weights, and recomputes the products in backward;
- **no autograd** (inference): :func:`_scse_max_values`, the formula writing its max into the first product, one
  full-size temporary instead of two;
- **graph capture** (TorchScript, tracing, ONNX, ``torch.export``, ``torch.compile``): the formula itself, since an
  ``autograd.Function`` cannot be scripted or exported and inductor fuses the formula into its own loops. In a
  compiled training graph it runs in a non-reentrant :func:`torch.utils.checkpoint.checkpoint` region, so that
  inductor's partitioner keeps only the region's input x for backward and recomputes the rest
  (``docs/performance.md``).

The Function is correct by construction where a drop-in block must be:

- it saves its *input*, never its output, so in-place ops and residual ``+=`` after the block are safe;
- backward applies the chain rule of the formula literally, including ``torch.maximum``'s tie rule (equal products,
  e.g. ``x == 0`` or equal or saturated gates, give each side half; see ``derivatives.yaml``) and its NaN rule;
- under ``create_graph`` backward uses differentiable, out-of-place ops (double backward works), and
  ``generate_vmap_rule`` with a separate ``setup_context`` lets ``torch.func`` transform it; a plain CPU backward
  computes the same gradients in three full-size buffers (:func:`_branch_grads_in_place`, measured 1.9x faster
  than the general path at the bundle's first layer);
- under autocast the squeezes and the sigmoid run in float32 (a known SE failure mode in half precision); the output
  keeps the input's (autocast) dtype.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils.checkpoint

__all__ = ["SCSEMaxFunction", "gate_dtype", "scse_max", "scse_max_reference", "spatial_gate", "spatial_squeeze"]


def spatial_squeeze(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The sSE squeeze q = conv1x1(x; weight, bias) with one output channel, (B, 1, *S); ``bias`` may be None.

    Computed as a batched matrix-vector product, ``bias + weight (1 x C) @ x (C x S)`` per batch item, not as a
    convolution: on CPU, oneDNN's convolution with a single output channel (and its backward) runs 10-15x slower than
    this memory-bound product (``benchmarks/se_profile.py``; e.g. 120 ms against 8 ms for a 16 x 32 x 256 x 256
    input), and it was most of scSE's eager overhead. Same value as ``F.conv2d(x, weight, bias)`` up to float
    rounding; scriptable and exportable (ONNX ``MatMul``). Under ``torch.compile`` it is a reduction over channels
    instead (:func:`_spatial_squeeze_reduction`).
    """
    if not torch.jit.is_scripting():
        if torch.compiler.is_compiling():
            return _spatial_squeeze_reduction(x, weight, bias)
    b, c = x.shape[0], x.shape[1]
    w, xs = weight.reshape(1, 1, c).expand(b, 1, c), x.reshape(b, c, -1)
    q = torch.bmm(w, xs) if bias is None else torch.baddbmm(bias.reshape(1, 1, 1), w, xs)
    return q.view_as(x[:, :1])


@torch.jit.unused
def _spatial_squeeze_reduction(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """What ``torch.compile`` sees of the squeeze: ``sum_c(w_c x_c) + bias``, a reduction over channels.

    Inductor fuses it with the producer of ``x`` and the other SE loops, in whatever layout the graph keeps ``x``
    (channels-last after convolutions). The matrix product would be an external kernel that needs ``x`` contiguous
    in (C, S) order: inductor then writes a transposed copy of ``x`` (a full-size pass) just to feed it, and its
    partitioner keeps more for backward (``docs/performance.md``).
    """
    shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
    q = (x * weight.reshape(shape)).sum(dim=1, keepdim=True)
    return q if bias is None else q + bias.reshape([1] * x.ndim)


def gate_dtype(a: torch.Tensor, b: torch.Tensor) -> torch.dtype:
    """The precision of the gates: that of ``a`` and ``b`` (a gate, the weights), at least float32.

    The squeezes and sigmoids are never computed in half precision (a known SE failure mode under AMP).
    """
    return torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)


def spatial_gate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """The sSE gate ``sigmoid(conv1x1(x))`` computed in ``dtype``."""
    bias = None if bias is None else bias.to(dtype)
    return torch.sigmoid(spatial_squeeze(x.to(dtype), weight.to(dtype), bias))


def scse_max_reference(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The plain formula ``max(x * g_c, x * sigmoid(conv1x1(x)))``, gates in at least float32, result in ``x.dtype``.

    For float32/float64 inputs the casts are no-ops. :func:`scse_max` runs it with autocast off.
    """
    dtype = gate_dtype(g_c, weight)
    g_s = spatial_gate(x, weight, bias, dtype)
    xd = x.to(dtype)
    return torch.maximum(xd * g_c.to(dtype), xd * g_s).to(x.dtype)


def _scse_max_values(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The formula's values without autograd (inference, and :class:`SCSEMaxFunction`'s forward), bitwise.

    The max is written into the first product: one full-size temporary, not two. Under ``torch.func`` transforms it
    is the formula itself (``out=`` ops have no batching rule).
    """
    if torch._C._are_functorch_transforms_active():
        return scse_max_reference(x, g_c, weight, bias)
    dtype = gate_dtype(g_c, weight)
    xd = x.to(dtype)
    out = xd * g_c.to(dtype)
    return torch.maximum(out, xd * spatial_gate(x, weight, bias, dtype), out=out).to(x.dtype)


class SCSEMaxFunction(torch.autograd.Function):
    """``max(x * g_c, x * sigmoid(conv1x1(x; weight, bias)))`` keeping only ``x``, ``g_c``, ``weight``, ``bias``.

    See the module docstring. The products are computed in the gates' precision (float32 for half-precision ``x``)
    and the result is cast to ``x.dtype``; forward is bitwise :func:`scse_max_reference`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _scse_max_values(x, g_c, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:  # noqa: D102
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # noqa: D102
        x, g_c, weight, bias = ctx.saved_tensors
        with torch.autocast(x.device.type, enabled=False):
            dtype = gate_dtype(g_c, weight)
            xd, gcd, wd = x.to(dtype), g_c.to(dtype), weight.to(dtype)
            g_s = spatial_gate(xd, wd, bias, dtype)
            gd = grad.to(dtype)
            grads = _branch_grads_in_place(xd, gcd, g_s, gd, g_c) if _in_place_ok(x) else None
            if grads is None:  # the general path: out-of-place, any device, NaN included
                grad_p, grad_q = _maximum_grads(xd * gcd, xd * g_s, gd)
                grad_g_s = (grad_q * xd).sum(dim=1, keepdim=True)
                grad_g_c = _gate_grad(grad_p, xd, g_c)
            else:
                grad_p, grad_q, grad_g_s, grad_g_c = grads
            grad_pre = grad_g_s * g_s * (1 - g_s)  # through the sigmoid, (B, 1, *S)
            # the squeeze's weight gradient, sum over batch and space of x * dL/dq, as one batched product
            b, c = x.shape[0], x.shape[1]
            grad_w = torch.bmm(grad_pre.reshape(b, 1, -1), xd.reshape(b, c, -1).transpose(1, 2)).sum(0)
            w_b = wd.reshape(1, -1, *[1] * (x.ndim - 2))
            if torch.is_grad_enabled():  # create_graph (double backward): out-of-place ops only
                grad_x = grad_p * gcd + grad_q * g_s + grad_pre * w_b
            else:  # reuse the buffers: this runs at the training step's memory peak
                grad_x = grad_p.mul_(gcd).addcmul_(grad_q, g_s).addcmul_(grad_pre, w_b)
        grad_bias = grad_pre.sum().reshape(bias.shape).to(bias.dtype)
        return grad_x.to(x.dtype), grad_g_c, grad_w.reshape(weight.shape).to(weight.dtype), grad_bias


def _gate_grad(grad: torch.Tensor, x: torch.Tensor, g_c: torch.Tensor) -> torch.Tensor:
    """``(grad * x)`` summed to the shape of the channel gate ``g_c``.

    For the usual per-sample gate (B, C, 1, ...) a batched dot product per (sample, channel), which reads both maps
    once and allocates no full-size temporary (3x faster than the product and its sum at the bundle's first layer);
    any other broadcast shape is summed generically.
    """
    b, c = x.shape[0], x.shape[1]
    if g_c.shape == (b, c, *[1] * (x.ndim - 2)):
        dot = torch.bmm(grad.reshape(b * c, 1, -1), x.reshape(b * c, -1, 1))
        return dot.view(g_c.shape).to(g_c.dtype)
    return (grad * x).sum_to_size(g_c.shape).to(g_c.dtype)


def _in_place_ok(x: torch.Tensor) -> bool:
    """Whether backward may take :func:`_branch_grads_in_place`: on CPU, no double backward, no ``torch.func``."""
    return x.device.type == "cpu" and not torch.is_grad_enabled() and not torch._C._are_functorch_transforms_active()


def _branch_grads_in_place(
    x: torch.Tensor, g_c: torch.Tensor, g_s: torch.Tensor, grad: torch.Tensor, gate: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``torch.maximum``'s gradients for ``p = x g_c``, ``q = x g_s`` and the two gate sums, in three full-size buffers.

    The general path (:func:`_maximum_grads`) builds three masks, a ``where``, a copy and two masked fills, each a
    fresh full-size tensor whose page faults CPU memory pays again. Here ``s = sign(p - q)`` selects exactly: for
    finite products ``p - q`` is 0 only where ``p == q`` (IEEE subtraction with gradual underflow), so
    ``grad_p = grad / 2 (1 + s)`` and ``grad_q = grad / 2 (1 - s)`` are ``grad``, ``grad / 2`` or 0 as maximum's rule
    says. Where that fails (a NaN product, ``inf - inf``, a non-finite ``grad`` times 0) a NaN reaches one of the two
    gate sums and ``None`` is returned, so that the caller takes the general path, which follows maximum's NaN rule.

    Args:
        x: the layer's input, in the gates' dtype.
        g_c: the channel gate, in that dtype.
        g_s: the spatial gate.
        grad: the upstream gradient, in that dtype.
        gate: the channel gate as the layer got it; its shape and dtype are those of dL/dg_c.

    Returns:
        ``(grad_p, grad_q, dL/dg_s summed over channels, dL/dg_c)``, or ``None``.
    """
    a = x * g_c
    b = x * g_s
    a.sub_(b).sign_()  # s = sign(p - q)
    torch.mul(grad, 0.5, out=b)
    grad_p = torch.addcmul(b, b, a)  # grad / 2 * (1 + s)
    grad_q = b.addcmul_(b, a, value=-1.0)  # grad / 2 * (1 - s), in place
    grad_g_s = torch.mul(grad_q, x, out=a).sum(dim=1, keepdim=True)
    grad_g_c = _gate_grad(grad_p, x, gate)
    if bool(torch.isnan(grad_g_s).any()) or bool(torch.isnan(grad_g_c).any()):
        return None
    return grad_p, grad_q, grad_g_s, grad_g_c


def _maximum_grads(p: torch.Tensor, q: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of ``torch.maximum(p, q)``: ``where(p == q, grad / 2, grad)``, zeroed where the other is larger.

    The rule of PyTorch's ``derivatives.yaml``, NaN included (a NaN product gives both sides the full gradient).
    Out-of-place, so that it is differentiable under ``create_graph``.
    """
    half = torch.where(p == q, grad * 0.5, grad)
    return half.masked_fill(p < q, 0.0), half.masked_fill(p > q, 0.0)


@torch.jit.unused
def _dispatch(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The one place that picks the path (see the module docstring); autocast is off in all three."""
    with torch.autocast(x.device.type, enabled=False):
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            if torch.compiler.is_compiling() and torch.is_grad_enabled():  # keep only x for compiled backward
                return torch.utils.checkpoint.checkpoint(scse_max_reference, x, g_c, weight, bias, use_reentrant=False)
            return scse_max_reference(x, g_c, weight, bias)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (x, g_c, weight, bias)):
            return SCSEMaxFunction.apply(x, g_c, weight, bias)
        return _scse_max_values(x, g_c, weight, bias)


def scse_max(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``max(x * g_c, x * sigmoid(conv1x1(x; weight, bias)))``, the max-out scSE (values of :func:`scse_max_reference`).

    Args:
        x: feature map (batch, channels, *spatial), 1 to 3 spatial dimensions.
        g_c: channel gate (batch, channels, 1, ...), e.g. the cSE gate computed from ``x.mean(spatial)``.
        weight: the sSE 1x1 convolution's weight, (1, channels, 1, ...).
        bias: its bias, (1,).

    Returns:
        The recalibrated map, shape and dtype of ``x``.
    """
    if torch.jit.is_scripting():
        return scse_max_reference(x, g_c, weight, bias)
    return _dispatch(x, g_c, weight, bias)
