"""scse_max's three paths against the plain formula (``scse_max_reference``).

The training path (SCSEMaxFunction): every case compares the values and *all* gradients (x, the channel gate, the sSE
weight and bias) with ``torch.autograd`` on ``max(x * g_c, x * sigmoid(conv1x1(x)))``: ties, x == 0, negative x,
saturated gates, NaN, double backward and ``torch.func``. The no-grad path: bitwise the formula's values. The graph
path: TorchScript and tracing see the formula (compile, ONNX and DDP: ``test_drop_in.py``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, jacrev, vmap

from scse_monai.networks.blocks import ChannelSpatialSELayer, fused_scse
from scse_monai.networks.blocks.fused_scse import (
    SCSEMaxFunction,
    _spatial_squeeze_reduction,
    scse_max,
    scse_max_reference,
    spatial_squeeze,
)
from scse_monai.networks.nets import SEUNet

SHAPES = [(2, 4, 7), (2, 4, 5, 6), (1, 3, 4, 4, 3)]


def _inputs(shape, case: str = "random", dtype=torch.float64, seed: int = 0):
    """x, g_c, w, b for one case; ``case`` picks the regime of the gates and inputs."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    g_c = torch.rand(shape[0], shape[1], *[1] * (len(shape) - 2), generator=gen, dtype=torch.float64)
    w = 0.3 * torch.randn(1, shape[1], *[1] * (len(shape) - 2), generator=gen, dtype=torch.float64)
    b = torch.randn(1, generator=gen, dtype=torch.float64)
    if case == "x_zero":  # both products are 0: a tie
        x.view(-1)[::3] = 0.0
    elif case == "negative":
        x = -x.abs() - 0.1
    elif case == "equal_gates":  # w = 0, b = 0: g_s = 0.5 everywhere; g_c = 0.5 for some channels
        w.zero_()
        b.zero_()
        g_c[:, ::2] = 0.5
    elif case == "saturated_zero":  # sigmoid(-800) == 0 exactly; g_c 0 on some channels
        b.fill_(-800.0)
        g_c[:, ::2] = 0.0
    elif case == "saturated_one":  # sigmoid(+800) == 1 exactly; g_c 1 on some channels
        b.fill_(800.0)
        g_c[:, ::2] = 1.0
    return [t.to(dtype).requires_grad_() for t in (x, g_c, w, b)]


CASES = ["random", "x_zero", "negative", "equal_gates", "saturated_zero", "saturated_one"]


def _assert_same_grads(fn_a, fn_b, inputs, upstream=None, **tol):
    out_a, out_b = fn_a(*inputs), fn_b(*inputs)
    torch.testing.assert_close(out_a, out_b, **tol)
    upstream = torch.randn_like(out_b) if upstream is None else upstream
    ga = torch.autograd.grad(out_a, inputs, upstream)
    gb = torch.autograd.grad(out_b, inputs, upstream)
    for name, a, b in zip(("x", "g_c", "weight", "bias"), ga, gb, strict=True):
        torch.testing.assert_close(a, b, msg=lambda m, n=name: f"gradient of {n}: {m}", **tol)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck_and_gradgradcheck(shape) -> None:
    inputs = _inputs(shape)
    assert torch.autograd.gradcheck(scse_max, inputs)
    assert torch.autograd.gradgradcheck(scse_max, inputs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_values_and_all_gradients_equal_the_plain_formula(shape, case) -> None:
    inputs = _inputs(shape, case)
    assert torch.equal(scse_max(*inputs), scse_max_reference(*inputs))  # forward is bitwise the formula
    _assert_same_grads(scse_max, scse_max_reference, inputs)


def test_tie_rule_by_hand() -> None:
    # x == 0 and equal gates: torch.maximum gives each product half, so dx = (g_c + g_s) / 2 = 0.5 here; x > 0 with
    # g_c = 0.3 < g_s = 0.5 gives dx = 0.5 and dg_c = 0; x < 0 takes the smaller gate: dx = 0.3, dg_c = x.
    x = torch.tensor([[[0.0, 2.0, -2.0]]], dtype=torch.float64, requires_grad=True)
    g_c = torch.full((1, 1, 1), 0.3, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(1, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    gx, gc, _, _ = torch.autograd.grad(scse_max(x, g_c, w, b).sum(), (x, g_c, w, b))
    torch.testing.assert_close(gx.flatten(), torch.tensor([0.4, 0.5, 0.3], dtype=torch.float64))
    torch.testing.assert_close(gc.flatten(), torch.tensor([-2.0], dtype=torch.float64))


@pytest.mark.parametrize("case", ["random", "x_zero", "saturated_zero"])
def test_double_backward_equals_the_plain_formula(case) -> None:
    inputs = _inputs((2, 4, 5, 6), case)

    def grad_norm(fn):
        gs = torch.autograd.grad(fn(*inputs).square().sum(), inputs, create_graph=True)
        return torch.autograd.grad(sum(g.square().sum() for g in gs), inputs)

    for a, b in zip(grad_norm(scse_max), grad_norm(scse_max_reference), strict=True):
        torch.testing.assert_close(a, b)


def test_torch_func_jacrev_vmap_grad() -> None:
    x, g_c, w, b = (t.detach() for t in _inputs((2, 3, 4, 5), "x_zero"))
    for a, r in zip(jacrev(scse_max, argnums=(0, 1, 2, 3))(x, g_c, w, b),
                    jacrev(scse_max_reference, argnums=(0, 1, 2, 3))(x, g_c, w, b), strict=True):
        torch.testing.assert_close(a, r)
    batched = vmap(scse_max, in_dims=(0, 0, None, None))(x[:, None], g_c[:, None], w, b)[:, 0]
    torch.testing.assert_close(batched, scse_max_reference(x, g_c, w, b))
    per_sample = vmap(grad(lambda xi: scse_max(xi, g_c[:1], w, b).sum()))(x[:, None])
    expected = vmap(grad(lambda xi: scse_max_reference(xi, g_c[:1], w, b).sum()))(x[:, None])
    torch.testing.assert_close(per_sample, expected)


def test_saves_its_input_not_products_or_output() -> None:
    x, g_c, w, b = _inputs((2, 4, 8, 8), dtype=torch.float32)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = scse_max(x, g_c, w, b)
    assert out.grad_fn.name().startswith("SCSEMaxFunction")
    full = [t for t in saved if t.numel() == x.numel()]
    assert len(full) == 1 and full[0].data_ptr() == x.data_ptr()  # only the input, shared with the sSE conv
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        scse_max_reference(x, g_c, w, b)
    assert len({t.data_ptr() for t in saved if t.numel() == x.numel()}) == 3  # x and both products


@pytest.mark.parametrize(
    "dtype, tol",
    [(torch.float32, dict(rtol=1e-5, atol=1e-5)), (torch.bfloat16, dict(rtol=2e-2, atol=2e-2)),
     (torch.float16, dict(rtol=2e-3, atol=2e-3))],
)
@pytest.mark.parametrize("case", ["random", "x_zero", "negative", "saturated_zero", "saturated_one"])
def test_low_precision_against_float64(dtype, tol, case) -> None:
    """Values and gradients in float32/bfloat16/float16 (all inputs in that dtype) against the float64 formula."""
    ref_inputs = _inputs((2, 4, 5, 6), case)
    low = [t.detach().to(dtype).requires_grad_() for t in ref_inputs]
    exact = [t.detach().to(dtype).double().requires_grad_() for t in ref_inputs]  # the same rounded inputs
    up = torch.randn(2, 4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = scse_max(*low)
    assert out.dtype == dtype
    ref = scse_max_reference(*exact)
    torch.testing.assert_close(out.double(), ref, **tol)
    got = torch.autograd.grad(out, low, up.to(dtype))
    want = torch.autograd.grad(ref, exact, up.to(dtype).double())
    for a, r in zip(got, want, strict=True):
        assert a.dtype == dtype
        scale = max(1.0, r.abs().max().item())  # sums over space accumulate the dtype's rounding
        torch.testing.assert_close(a.double() / scale, r / scale, **tol)


def test_function_is_the_default_training_path() -> None:
    x, g_c, w, b = _inputs((1, 2, 3, 3))
    assert isinstance(scse_max(x, g_c, w, b).grad_fn, torch.autograd.function.BackwardCFunction)
    assert SCSEMaxFunction.generate_vmap_rule


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_compiled_squeeze_is_the_1x1_convolution(shape, with_bias) -> None:
    """What torch.compile sees of the sSE squeeze (a reduction over channels) is the 1 x 1 convolution's value."""
    x, _, w, b = (t.detach() for t in _inputs(shape))
    b = b if with_bias else None
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[len(shape)]
    torch.testing.assert_close(_spatial_squeeze_reduction(x, w, b), conv(x, w, b), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(spatial_squeeze(x, w, b), conv(x, w, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_upstream_gradients_follow_torch_maximums_rule(value) -> None:
    """A NaN or infinite upstream gradient where maximum zeroes it (the other product is larger) gives 0 there, as
    the plain formula does, not NaN (inf * 0)."""
    inputs = _inputs((2, 3, 4, 4))
    up = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    up.view(-1)[::5] = value
    out, ref = scse_max(*inputs), scse_max_reference(*inputs)
    ga = torch.autograd.grad(out, inputs, up)
    gb = torch.autograd.grad(ref, inputs, up)
    for name, a, b in zip(("x", "g_c", "weight", "bias"), ga, gb, strict=True):
        torch.testing.assert_close(a, b, equal_nan=True, msg=lambda m, n=name: f"gradient of {n}: {m}")


def test_cpu_backward_takes_the_in_place_path_unless_a_nan_appears(monkeypatch) -> None:
    """The regime tests above exercise the in-place CPU path: the general path runs only when a NaN shows up."""
    general = []
    original = fused_scse._maximum_grads
    monkeypatch.setattr(fused_scse, "_maximum_grads", lambda *a: general.append(1) or original(*a))
    inputs = _inputs((2, 3, 4, 4), "x_zero")
    torch.autograd.grad(scse_max(*inputs), inputs, torch.randn(2, 3, 4, 4, dtype=torch.float64))
    assert general == []
    up = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    up[0, 0, 0, 0] = float("nan")
    torch.autograd.grad(scse_max(*inputs), inputs, up)
    assert general == [1]


def test_nan_and_inf_inputs_follow_torch_maximums_rule() -> None:
    x, g_c, w, b = (t.detach() for t in _inputs((1, 3, 4, 4)))
    x[0, 0, 0, 0], x[0, 1, 1, 1], x[0, 2, 2, 2] = float("nan"), float("inf"), -float("inf")
    inputs = [t.requires_grad_() for t in (x, g_c, w, b)]
    out, ref = scse_max(*inputs), scse_max_reference(*inputs)
    torch.testing.assert_close(out, ref, equal_nan=True)
    up = torch.ones_like(ref)
    for a, r in zip(torch.autograd.grad(out, inputs, up), torch.autograd.grad(ref, inputs, up), strict=True):
        torch.testing.assert_close(a, r, equal_nan=True)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_no_grad_path_is_bitwise_the_formula(shape, case, dtype) -> None:
    x, g_c, w, b = (t.detach() for t in _inputs(shape, case))
    x = x.to(dtype)
    with torch.no_grad():
        out = scse_max(x, g_c, w, b)
    assert out.dtype == dtype and not out.requires_grad
    assert torch.equal(out, scse_max_reference(x, g_c, w, b))
    with torch.inference_mode():
        assert torch.equal(scse_max(x, g_c, w, b), out)


def test_values_are_x_times_the_selected_gate() -> None:
    # Independent form (the gates lie in (0, 1)): x * max(g_c, g_s) where x >= 0, x * min(g_c, g_s) where x < 0.
    x, g_c, w, b = (t.detach() for t in _inputs((2, 3, 4, 5), seed=3))
    g_s = torch.sigmoid(F.conv2d(x, w, b))
    expected = torch.where(x >= 0, x * torch.maximum(g_c, g_s), x * torch.minimum(g_c, g_s))
    for grad_mode in (False, True):
        with torch.set_grad_enabled(grad_mode):
            torch.testing.assert_close(scse_max(x, g_c, w.requires_grad_(grad_mode), b), expected)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_layer_memory_efficient_matches_plain(spatial_dims) -> None:
    torch.manual_seed(0)
    plain = ChannelSpatialSELayer(spatial_dims, 8, memory_efficient=False).double()
    fused = ChannelSpatialSELayer(spatial_dims, 8, memory_efficient=True).double()
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, *([6] * spatial_dims), dtype=torch.float64, requires_grad=True)
    y_plain, y_fused = plain(x), fused(x)
    assert torch.equal(y_plain, y_fused)
    grad = torch.randn_like(y_plain)
    g_plain = torch.autograd.grad(y_plain, [x, *plain.parameters()], grad)
    g_fused = torch.autograd.grad(y_fused, [x, *fused.parameters()], grad)
    for a, b in zip(g_plain, g_fused, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_seunet_scripts_and_traces(spatial_dims) -> None:
    torch.manual_seed(0)
    net = SEUNet(spatial_dims, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, se="scse").eval()
    x = torch.randn(1, 1, *([16] * spatial_dims))
    with torch.no_grad():
        expected = net(x)
        scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted(x), expected)
        traced = torch.jit.trace(net, x)
        torch.testing.assert_close(traced(x), expected)
    # the traced graph holds the plain formula, not the Python autograd.Function
    assert "PythonOp" not in str(traced.graph)


def test_script_function_directly() -> None:
    scripted = torch.jit.script(scse_max)
    x, g_c, w, b = (t.detach() for t in _inputs((2, 4, 5, 6), "x_zero"))
    assert torch.equal(scripted(x, g_c, w, b), scse_max_reference(x, g_c, w, b))
