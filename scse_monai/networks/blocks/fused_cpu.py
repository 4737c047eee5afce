"""The fused CPU kernel as PyTorch operators, for ``torch.compile`` on CPU.

Three ``torch.library`` custom ops:

- ``scse_monai::scse_max(x, g_c, weight, bias) -> out``, ``out = max(x * g_c, x * sigmoid(conv1x1(x)))``, with
  its autograd formula registered (it saves only its inputs, like
  :class:`~scse_monai.networks.blocks.fused_scse.SCSEMaxFunction`). Functional, so that inductor's partitioner may
  recompute it in backward instead of keeping its output (the training path runs it in a checkpoint region).
- ``scse_monai::scse_max_out(x, g_c, weight, bias, out)``: the same into a buffer the caller allocates; without
  grad. Inductor then allocates the output itself and reuses a freed buffer of the graph for it, instead of fresh
  memory whose page faults cost more than the kernel's traffic on this CPU (``docs/performance.md``).
- ``scse_monai::scse_max_backward_out(grad, x, g_c, weight, bias, grad_x, grad_g_c, grad_w, grad_bias)``: dL/dx
  and one partial sum of dL/dg_c, dL/dw and dL/dbias per work item, with ``torch.maximum``'s rule; into buffers,
  for the same reason.

:func:`usable` says when they apply (CPU, every tensor float32, the kernel built). The layer takes this path only
under ``torch.compile``; eager mode keeps its own path, whose values are bitwise the plain formula's (the kernel's
squeeze sums in another order).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from scse_monai.networks.blocks import cpu_kernel

__all__ = ["scse_max_cpu", "usable"]


def _call_args(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, kind: str):
    for name, t in (("x", x), ("g_c", g_c), ("weight", weight), ("bias", bias)):
        if t.dtype != torch.float32 or t.device.type != "cpu":
            raise ValueError(f"the fused scSE CPU kernel takes float32 CPU tensors, got {name} {t.dtype} on {t.device}")
    xd, lay = cpu_kernel.as_layout(x, kind)
    b, c = x.shape[0], x.shape[1]
    gc = g_c.expand(b, c, *g_c.shape[2:]).reshape(b, c).contiguous()
    w, bias = weight.reshape(c).contiguous(), bias.reshape(1).contiguous()
    args = (xd.data_ptr(), lay.batch_stride, lay.stride, gc.data_ptr(), w.data_ptr(), bias.data_ptr())
    return args, (xd, gc, w, bias)  # the second keeps the copies alive during the call


def _library():
    lib = cpu_kernel.load()
    if lib is None:
        raise RuntimeError(
            "the fused scSE CPU kernel is not available (no C compiler built it, or "
            f"{cpu_kernel.ENV_DISABLE}=0); use scse_monai.networks.blocks.fused_scse.scse_max instead."
        )
    return lib


def _check_out(out: torch.Tensor, x: torch.Tensor, kind: str) -> None:
    want = cpu_kernel.dense_strides(x.shape, kind)
    if out.shape != x.shape or out.stride() != want or out.dtype != x.dtype:
        raise ValueError(
            f"out must be dense in x's layout ({kind}, shape {tuple(x.shape)}, strides {want}), got shape "
            f"{tuple(out.shape)}, strides {out.stride()}, dtype {out.dtype}."
        )


@torch.library.custom_op("scse_monai::scse_max_out", mutates_args=("out",), device_types="cpu")
def _scse_max_out(
    x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor
) -> None:
    kind = cpu_kernel.kind_of(x)
    _check_out(out, x, kind)
    args, keep = _call_args(x, g_c, weight, bias, kind)
    c, pixels = x.shape[1], math.prod(x.shape[2:])
    fn = getattr(_library(), f"scse_fwd_{kind}")
    fn(*args, out.data_ptr(), x.shape[0], c, pixels, cpu_kernel.chunk(kind, c, pixels), torch.get_num_threads())
    del keep


@torch.library.custom_op(
    "scse_monai::scse_max_backward_out",
    mutates_args=("grad_x", "grad_g_c", "grad_w", "grad_bias"),
    device_types="cpu",
)
def _scse_max_backward_out(
    grad: torch.Tensor,
    x: torch.Tensor,
    g_c: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    grad_x: torch.Tensor,
    grad_g_c: torch.Tensor,
    grad_w: torch.Tensor,
    grad_bias: torch.Tensor,
) -> None:
    kind = cpu_kernel.kind_of(x)
    _check_out(grad_x, x, kind)
    items = cpu_kernel.work_items(x, kind)
    c, pixels = x.shape[1], math.prod(x.shape[2:])
    if grad_g_c.shape != (items, c) or grad_w.shape != (items, c) or grad_bias.shape != (items,):
        raise ValueError(f"the partial sums must be ({items}, {c}), ({items}, {c}) and ({items},).")
    args, keep = _call_args(x, g_c, weight, bias, kind)
    gd, lay = cpu_kernel.as_layout(grad, kind)
    fn = getattr(_library(), f"scse_bwd_{kind}")
    fn(
        *args,
        gd.data_ptr(),
        lay.batch_stride,
        lay.stride,
        grad_x.data_ptr(),
        grad_g_c.data_ptr(),
        grad_w.data_ptr(),
        grad_bias.data_ptr(),
        x.shape[0],
        c,
        pixels,
        cpu_kernel.chunk(kind, c, pixels),
        torch.get_num_threads(),
    )
    del keep, gd


@_scse_max_out.register_fake
def _(x, g_c, weight, bias, out) -> None:  # noqa: ANN001
    return None


@_scse_max_backward_out.register_fake
def _(grad, x, g_c, weight, bias, grad_x, grad_g_c, grad_w, grad_bias) -> None:  # noqa: ANN001
    return None


def usable(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether :func:`scse_max_cpu` applies: CPU float32 tensors, 1-3 spatial dims, a bias, the kernel built."""
    tensors = (x, g_c, weight, bias)
    return (
        bias is not None
        and 3 <= x.ndim <= 5
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and g_c.shape[:2] in ((x.shape[0], x.shape[1]), (1, x.shape[1]))
        and _kernel_built()
    )


@torch.compiler.assume_constant_result
def _kernel_built() -> bool:
    # evaluated once when torch.compile traces (building the kernel there), a constant in the graph
    return cpu_kernel.load() is not None


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.ndim in (4, 5):
        return t.contiguous(memory_format=torch.channels_last if t.ndim == 4 else torch.channels_last_3d)
    return t


@torch.library.custom_op("scse_monai::scse_max", mutates_args=(), device_types="cpu")
def _scse_max(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    out = cpu_kernel.dense_like(x)
    _scse_max_out(x, g_c, weight, bias, out)
    return out


@_scse_max.register_fake
def _(x, g_c, weight, bias) -> torch.Tensor:  # noqa: ANN001
    return cpu_kernel.dense_like(x)


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx: Any, grad: torch.Tensor):
    x, g_c, weight, bias = ctx.saved_tensors
    kind = cpu_kernel.kind_of(x)
    if kind == "nhwc":  # in a compiled graph: have the gradient's producer write it channels-last
        grad = _channels_last(grad)
    items, (b, c) = cpu_kernel.work_items(x, kind), x.shape[:2]
    grad_x = cpu_kernel.dense_like(x, kind)
    grad_g_c, grad_w, grad_bias = x.new_empty(items, c), x.new_empty(items, c), x.new_empty(items)
    torch.ops.scse_monai.scse_max_backward_out(grad, x, g_c, weight, bias, grad_x, grad_g_c, grad_w, grad_bias)
    grad_g_c = grad_g_c.view(b, -1, c).sum(1).view(b, c, *[1] * (x.ndim - 2)).sum_to_size(g_c.shape)
    return grad_x, grad_g_c, grad_w.sum(0).view(weight.shape), grad_bias.sum().view(bias.shape)


_scse_max.register_autograd(_backward, setup_context=_setup_context)


def scse_max_cpu(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The max-out scSE with the fused CPU kernel (check :func:`usable` first); any autograd mode.

    Under ``torch.compile`` a 2D or 3D ``x`` is asked for in channels-last first, the layout inductor gives the
    convolutions around the block on CPU, so that neither the block's input nor its output is transposed for the
    kernel (``docs/performance.md``).
    """
    if torch.compiler.is_compiling():
        x = _channels_last(x)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, g_c, weight, bias)):
        return torch.ops.scse_monai.scse_max(x, g_c, weight, bias)
    out = cpu_kernel.dense_like(x)
    torch.ops.scse_monai.scse_max_out(x, g_c, weight, bias, out)
    return out
