"""Max-out scSE with the sSE squeeze fused in, keeping no copy of the layer's input for backward.

:func:`~scse_monai.networks.blocks.maxout.maxout_recalibrate` already avoids saving the two full-size products,
but the layer's input ``x`` is still saved: by the sSE 1x1 convolution (for its weight gradient) and by the
max-out itself. The next layer saves the scSE *output* anyway, and since both gates are positive (sigmoids), ``x``
can be recovered from it: ``x = out / g_sel`` with ``g_sel`` the gate that won the max. This Function therefore
computes the sSE gate and the max-out together and saves only ``out`` (shared with the next layer, so it costs
nothing), the two small gates and the 1x1 weights. The cSE squeeze is a ``mean`` over space, whose backward needs
no input either.

Gradients follow ``torch.maximum``'s rule (the larger product takes the gradient, a tie splits it in half); ties
are recognised where the gates are equal or ``x == 0``. Where the winning gate underflows to 0 the input cannot be
recovered, but its gradient contributions carry a factor ``g (1 - g) = 0`` or ``g = 0`` there, so 0 is used.

Under TorchScript, tracing or ONNX export the plain formula is used; under autocast only the max-out is fused
(:func:`~scse_monai.networks.blocks.maxout.maxout_recalibrate`), so that the convolution keeps autocast's precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scse_monai.networks.blocks.maxout import maxout_recalibrate

__all__ = ["scse_max_fused", "scse_max_reference"]


def _squeeze(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The sSE squeeze q = conv1x1(x), (B, 1, *S): the same convolution call as the sSE layer, so values match it."""
    if x.ndim == 3:
        return F.conv1d(x, weight, bias)
    if x.ndim == 4:
        return F.conv2d(x, weight, bias)
    return F.conv3d(x, weight, bias)


def scse_max_reference(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The plain formula: ``max(x * g_c, x * sigmoid(conv1x1(x)))``."""
    g_s = torch.sigmoid(_squeeze(x, weight, bias))
    return torch.maximum(x * g_c, x * g_s)


class _FusedSCSEMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):  # noqa: D102
        g_s = torch.sigmoid(_squeeze(x, weight, bias))
        out = x * g_c
        torch.maximum(out, x * g_s, out=out)
        ctx.save_for_backward(out, g_c, g_s, weight)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        out, g_c, g_s, weight = ctx.saved_tensors
        spatial = tuple(range(2, out.ndim))
        c = out.shape[1]
        # Full-size temporaries are freed (or reused in place) as soon as possible: this runs at the memory peak of
        # the training step, when all activations are still saved.
        # which product won: for x >= 0 the larger gate, for x < 0 the smaller one (sign(x) == sign(out))
        c_wins = torch.where(out >= 0, g_c > g_s, g_c < g_s)
        g_sel = torch.where(c_wins, g_c, g_s)
        x = out / g_sel
        x.masked_fill_(g_sel == 0, 0.0)
        del g_sel
        grad_p = c_wins.to(grad.dtype)
        del c_wins
        grad_p.masked_fill_((g_c == g_s) | (out == 0), 0.5)  # ties: torch.maximum gives each side half
        grad_p.mul_(grad)
        grad_q = grad - grad_p
        grad_g_c = (grad_p * x).sum(dim=spatial, keepdim=True).sum_to_size(g_c.shape)
        grad_g_s = (grad_q * x).sum(dim=1, keepdim=True)
        grad_pre = grad_g_s.mul_(g_s * (1 - g_s))  # through the sigmoid, (B, 1, *S)
        b = out.shape[0]
        grad_weight = torch.matmul(x.reshape(b, c, -1), grad_pre.reshape(b, -1, 1)).sum(0).reshape(weight.shape)
        del x
        grad_bias = grad_pre.sum().reshape(1)
        grad_x = grad_p.mul_(g_c)
        grad_x.addcmul_(grad_q, g_s)
        del grad_q
        grad_x.addcmul_(grad_pre, weight.reshape([1, c] + [1] * len(spatial)).to(grad_x.dtype))
        return grad_x, grad_g_c, grad_weight.to(weight.dtype), grad_bias


@torch.jit.unused
def _fused_eager(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return scse_max_reference(x, g_c, weight, bias)
    if torch.is_autocast_enabled(x.device.type):
        # mixed precision: keep autocast's own casting of the convolution and its backward (values and gradients
        # as the plain layer); only the max-out is fused then
        return maxout_recalibrate(x, g_c, torch.sigmoid(_squeeze(x, weight, bias)))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, g_c, weight, bias)):
        return _FusedSCSEMax.apply(x, g_c, weight, bias)
    return _no_grad_forward(x, g_c, weight, bias)


def _no_grad_forward(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    g_s = torch.sigmoid(_squeeze(x, weight, bias))
    out = x * g_c
    return torch.maximum(out, x * g_s, out=out)


def scse_max_fused(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``max(x * g_c, x * sigmoid(conv1x1(x; weight, bias)))`` saving no copy of ``x`` for backward.

    Args:
        x: feature map (batch, channels, *spatial).
        g_c: channel gate (batch, channels, 1, ...), e.g. the cSE gate computed from ``x.mean(spatial)``.
        weight: the sSE 1x1 convolution's weight, (1, channels, 1, ...).
        bias: its bias, (1,).
    """
    if torch.jit.is_scripting():
        return scse_max_reference(x, g_c, weight, bias)
    return _fused_eager(x, g_c, weight, bias)
