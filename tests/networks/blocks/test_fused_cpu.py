"""The fused CPU kernel's operators: the plain formula's values and every gradient, in every layout it reads.

The reference is ``torch.maximum(x * g_c, x * sigmoid(conv1x1(x)))`` with plain torch ops on the same float32
inputs, differentiated by autograd (so ``torch.maximum``'s tie and NaN rules are the reference's).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scse_monai.networks.blocks import cpu_kernel, fused_cpu
from scse_monai.networks.blocks.fused_cpu import scse_max_cpu


@pytest.fixture(autouse=True)
def _kernel() -> None:
    if cpu_kernel.load() is None:
        pytest.skip("no C compiler to build the fused CPU kernel")


def reference(x: torch.Tensor, g_c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.ndim]
    return torch.maximum(x * g_c, x * torch.sigmoid(conv(x, weight, bias)))


def _memory_format(ndim: int) -> torch.memory_format:
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def arrange(t: torch.Tensor, how: str) -> torch.Tensor:
    """``t``'s values in another memory layout: the layouts a compiled graph hands the kernel, and others."""
    if how == "contiguous":
        return t.contiguous()
    if how == "channels_last":
        return t.contiguous(memory_format=_memory_format(t.ndim))
    if how == "slice_of_channels_last":  # a decoder's SE input or gradient: channels of a concatenation
        wide = torch.cat([torch.randn_like(t[:, :1]), t, torch.randn_like(t[:, :2])], dim=1)
        return wide.contiguous(memory_format=_memory_format(t.ndim))[:, 1 : 1 + t.shape[1]]
    if how == "slice_of_contiguous":
        return torch.cat([t, torch.randn_like(t[:, :3])], dim=1)[:, : t.shape[1]]
    assert how == "transposed"  # neither layout: the operator copies it
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)


def inputs(shape: tuple[int, ...], case: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    b, c = shape[:2]
    ones = [1] * (len(shape) - 2)
    x = torch.randn(shape, generator=gen)
    x.view(-1)[::7] = 0.0  # ties of the two products at x == 0
    g_c = torch.rand(b, c, *ones, generator=gen)
    weight = torch.randn(1, c, *ones, generator=gen)
    bias = torch.randn(1, generator=gen)
    if case == "gate_zero":  # saturated gates in float32: g_c exactly 0, sigmoid(-200) exactly 0
        g_c[:, 0] = 0.0
        weight.zero_()
        bias.fill_(-200.0)
    elif case == "gate_one":  # g_c and g_s both exactly 1: every product ties
        g_c.fill_(1.0)
        weight.zero_()
        bias.fill_(200.0)
    elif case == "shared_gate":  # one channel gate for the whole batch
        g_c = g_c[:1]
    return x, g_c, weight, bias


def _check(shape, case, x_layout, grad_layout) -> None:
    x, g_c, weight, bias = inputs(shape, case)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ours = [arrange(x.clone(), x_layout).requires_grad_()] + [t.clone().requires_grad_() for t in (g_c, weight, bias)]
    ref = [t.detach().clone().requires_grad_() for t in (x, g_c, weight, bias)]
    out, expected = scse_max_cpu(*ours), reference(*ref)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    out.backward(arrange(grad, grad_layout))
    expected.backward(grad)
    for name, a, e in zip(("x", "g_c", "weight", "bias"), ours, ref, strict=True):
        torch.testing.assert_close(a.grad, e.grad, rtol=1e-4, atol=1e-4, msg=lambda m, name=name: f"d/d{name}: {m}")


@pytest.mark.parametrize("shape", [(2, 5, 40), (2, 6, 9, 11), (2, 3, 4, 5, 6), (1, 70, 3, 2)])
@pytest.mark.parametrize("case", ["normal", "gate_zero", "gate_one", "shared_gate"])
def test_values_and_all_gradients_equal_the_plain_formula(shape, case) -> None:
    _check(shape, case, "channels_last" if len(shape) > 3 else "contiguous", "contiguous")


@pytest.mark.parametrize(
    "x_layout", ["contiguous", "channels_last", "slice_of_channels_last", "slice_of_contiguous", "transposed"]
)
@pytest.mark.parametrize("grad_layout", ["contiguous", "channels_last", "slice_of_channels_last"])
@pytest.mark.parametrize("shape", [(2, 6, 9, 11), (2, 3, 4, 5, 6)])
def test_every_memory_layout(shape, x_layout, grad_layout) -> None:
    _check(shape, "normal", x_layout, grad_layout)


def test_output_is_dense_in_the_input_layout() -> None:
    """The operators return what their fake (meta) functions promise: dense, in x's layout, so inductor plans it."""
    x, g_c, weight, bias = inputs((2, 6, 5, 7), "normal")
    for how, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        with torch.no_grad():
            out = scse_max_cpu(arrange(x, how), g_c, weight, bias)
        assert out.is_contiguous(memory_format=fmt)
    out = scse_max_cpu(arrange(x, "slice_of_channels_last").requires_grad_(), g_c, weight, bias)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_nan_and_inf_follow_torch_maximum() -> None:
    x, g_c, weight, bias = inputs((2, 4, 6, 5), "normal")
    x[0, 1, 2, 3], x[1, 0, 0, 0], x[1, 2, 4, 4] = float("nan"), float("inf"), -float("inf")
    ours = [t.clone().requires_grad_() for t in (x, g_c, weight, bias)]
    ref = [t.detach().clone().requires_grad_() for t in (x, g_c, weight, bias)]
    out, expected = scse_max_cpu(*ours), reference(*ref)
    torch.testing.assert_close(out, expected, equal_nan=True)
    out.sum().backward()
    expected.sum().backward()
    for a, e in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, e.grad, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_operator_registrations_pass_opcheck() -> None:
    """Schema, fake (meta) functions, autograd registration and dispatch of the three operators."""
    x, g_c, weight, bias = inputs((2, 6, 5, 7), "normal")
    x = x.contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.scse_monai.scse_max.default, (x.requires_grad_(), g_c, weight, bias))
    out = torch.empty_like(x)
    torch.library.opcheck(torch.ops.scse_monai.scse_max_out.default, (x.detach(), g_c, weight, bias, out))
    items = cpu_kernel.work_items(x, "nhwc")
    buffers = (torch.empty_like(x), torch.empty(items, 6), torch.empty(items, 6), torch.empty(items))
    args = (torch.randn_like(x), x.detach(), g_c, weight, bias, *buffers)
    torch.library.opcheck(torch.ops.scse_monai.scse_max_backward_out.default, args)


def test_out_buffer_in_the_wrong_layout_is_a_clear_error() -> None:
    x, g_c, weight, bias = inputs((2, 6, 5, 7), "normal")
    with pytest.raises(ValueError, match="out must be dense in x's layout"):
        torch.ops.scse_monai.scse_max_out(x.contiguous(memory_format=torch.channels_last), g_c, weight, bias, x.clone())


def test_other_dtypes_are_a_clear_error() -> None:
    x, g_c, weight, bias = inputs((2, 6, 5, 7), "normal")
    with pytest.raises(ValueError, match="takes float32 CPU tensors, got x torch.float64"):
        torch.ops.scse_monai.scse_max_out(x.double(), g_c, weight, bias, x.double())


@pytest.mark.parametrize(
    ("change", "expected"),
    [({}, True), ({"dtype": torch.float64}, False), ({"bias": None}, False), ({"ndim": 2}, False)],
)
def test_usable_only_for_cpu_float32_with_a_bias(change, expected) -> None:
    x, g_c, weight, bias = inputs((2, 6, 5, 7), "normal")
    if "dtype" in change:
        x = x.to(change["dtype"])
    if "ndim" in change:
        x = x.flatten(1)
    assert fused_cpu.usable(x, g_c, weight, change.get("bias", bias)) is expected


def test_uses_torchs_thread_count() -> None:
    """The kernel's OpenMP threads follow torch.set_num_threads, and a single thread gives the same values."""
    x, g_c, weight, bias = inputs((4, 8, 33, 17), "normal")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            single = scse_max_cpu(x, g_c, weight, bias)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        torch.testing.assert_close(scse_max_cpu(x, g_c, weight, bias), single, rtol=0, atol=0)


def test_compiled_with_dynamic_shapes_equals_eager() -> None:
    """Under ``torch.compile(dynamic=True)`` (batch and image sizes change, e.g. a last partial batch) the operators'
    fake functions and partial-sum counts work on symbolic sizes: eager's values and gradients for every shape."""
    from scse_monai.networks.layers import get_se_layer

    torch._dynamo.reset()
    torch.manual_seed(0)
    conv_in, conv_out = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 2, 1)
    model = torch.nn.Sequential(conv_in, get_se_layer("scse", 2, 8), conv_out)
    compiled = torch.compile(model, dynamic=True)
    try:
        for shape in [(2, 3, 12, 10), (3, 3, 9, 16)]:
            x = torch.randn(shape)
            out, expected = compiled(x), model(x)
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
            grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
            want = torch.autograd.grad(expected.square().sum(), list(model.parameters()))
            for g, w in zip(grads, want, strict=True):
                torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
    finally:
        torch._dynamo.reset()
