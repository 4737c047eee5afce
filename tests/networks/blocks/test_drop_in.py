"""The SE layers as drop-in modules: every ordinary PyTorch use gives the plain formula's values and gradients.

The reference is an independent re-computation of Roy et al.'s formulas (TMI 2019, eqs. 1-7) from the layer's
parameters with plain torch ops, differentiated by autograd.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jacrev, vmap

from scse_monai.networks.blocks import ChannelSpatialSELayer, SpatialSELayer
from scse_monai.networks.layers import get_se_layer

SPECS = {
    "scse_max": ("scse", {}),
    "scse_max_plain": ("scse", {"memory_efficient": False}),
    "scse_add": ("scse", {"aggregation": "add"}),
    "scse_mul": ("scse", {"aggregation": "mul"}),
    "scse_concat": ("scse", {"aggregation": "concat"}),
    "sse": ("sse", {}),
    "cse": ("cse", {}),
}


def formula(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's output recomputed from its parameters with plain torch ops."""
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.ndim]

    def channel_gate(cse):
        z = x.flatten(2).mean(2)
        h = torch.relu(F.linear(z, cse.fc[0].weight, cse.fc[0].bias))
        return torch.sigmoid(F.linear(h, cse.fc[2].weight, cse.fc[2].bias)).view(*x.shape[:2], *[1] * (x.ndim - 2))

    def spatial_gate(sse):
        return torch.sigmoid(conv(x, sse.conv.weight, sse.conv.bias))

    if isinstance(layer, SpatialSELayer):
        return x * spatial_gate(layer)
    if not isinstance(layer, ChannelSpatialSELayer):
        return x * channel_gate(layer)
    u_c, u_s = x * channel_gate(layer.cse), x * spatial_gate(layer.sse)
    if layer.aggregation == "max":
        return torch.maximum(u_c, u_s)
    if layer.aggregation == "add":
        return u_c + u_s
    if layer.aggregation == "mul":
        return u_c * u_s
    return conv(torch.cat([u_c, u_s], 1), layer.project.weight, layer.project.bias)


class _Formula(nn.Module):
    """The same parameters, the formula as forward."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return formula(self.layer, x)


def _layer(name: str, dims: int, channels: int, dtype=torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_se_layer(SPECS[name], dims, channels).to(dtype)


def _saturate(layer: nn.Module, value: float) -> None:
    """Push both gates to exactly 0 (value < 0) or 1 (value > 0) on half of the channels / everywhere."""
    with torch.no_grad():
        for module in layer.modules():
            if isinstance(module, SpatialSELayer):
                module.conv.bias.fill_(value)
            if hasattr(module, "fc"):
                module.fc[2].bias[::2] = value


class InplaceAfter(nn.Module):
    """conv -> SE -> in-place ReLU -> conv, and a SE-ResNet residual ``out += identity`` (in place)."""

    def __init__(self, se: nn.Module, dims: int, channels: int) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.conv1, self.se, self.conv2 = conv(channels, channels, 3, padding=1), se, conv(channels, channels, 1)

    def forward(self, x):
        h = self.conv1(x)
        out = self.se(h)
        out += h  # residual add in place on the SE output (MONAI's UnetResBlock / ResBlock do this)
        out = F.leaky_relu(out, 0.01, inplace=True)
        return self.conv2(F.relu(self.se(out), inplace=True))


def _compare_modules(a: nn.Module, b: nn.Module, x: torch.Tensor, **tol) -> None:
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = a(xa), b(xb)
    torch.testing.assert_close(ya, yb, **tol)
    up = torch.randn_like(yb)
    ga = torch.autograd.grad(ya, [xa, *a.parameters()], up)
    gb = torch.autograd.grad(yb, [xb, *b.parameters()], up)
    names = ["input"] + [n for n, _ in a.named_parameters()]
    for name, u, v in zip(names, ga, gb, strict=True):
        torch.testing.assert_close(u, v, msg=lambda m, n=name: f"gradient of {n}: {m}", **tol)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("regime", ["normal", "saturated_zero", "saturated_one"])
def test_inplace_ops_and_residual_after_the_block(name, dims, regime) -> None:
    layer = _layer(name, dims, 6)
    if regime != "normal":
        _saturate(layer, -800.0 if regime == "saturated_zero" else 800.0)
    ours = InplaceAfter(layer, dims, 6).double()
    ref = InplaceAfter(_Formula(layer), dims, 6).double()
    ref.load_state_dict(ours.state_dict(), strict=False)
    ref.conv1, ref.conv2 = ours.conv1, ours.conv2
    x = torch.randn(2, 6, *[5] * dims, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _compare_modules(ours, ref, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_saturated_gates_in_low_precision(dtype) -> None:
    """float32 gates that underflow to exactly 0, and a pure-float16 model at pre-activations of -12, with x < 0."""
    layer = _layer("scse_max", 2, 4, dtype=torch.float64)
    _saturate(layer, -200.0 if dtype == torch.float32 else -12.0)
    x = -torch.rand(2, 4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) - 0.05
    low = _layer("scse_max", 2, 4, dtype=dtype)
    low.load_state_dict(layer.state_dict())
    x_low = x.to(dtype).requires_grad_()
    y = low(x_low)
    assert y.dtype == dtype
    # float64 formula on the same rounded inputs and parameters
    exact = _layer("scse_max", 2, 4, dtype=torch.float64)
    exact.load_state_dict(low.state_dict())
    x_exact = x_low.detach().double().requires_grad_()
    y_exact = formula(exact, x_exact)
    torch.testing.assert_close(y.double(), y_exact, rtol=2e-3, atol=2e-3)
    up = torch.ones_like(y_exact)
    got = torch.autograd.grad(y, [x_low, *low.parameters()], up.to(dtype))
    want = torch.autograd.grad(y_exact, [x_exact, *exact.parameters()], up)
    for u, v in zip(got, want, strict=True):
        scale = max(1.0, v.abs().max().item())
        torch.testing.assert_close(u.double() / scale, v / scale, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("name", ["scse_max", "scse_add", "scse_concat", "sse"])
def test_cpu_autocast_gates_in_float32_output_in_autocast_dtype(name) -> None:
    layer = _layer(name, 2, 8, dtype=torch.float32)
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    exact = _layer(name, 2, 8, dtype=torch.float64)
    exact.load_state_dict(layer.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_bf = x.to(torch.bfloat16).requires_grad_()
        gate = layer.sse.gate(x_bf) if hasattr(layer, "sse") else layer.gate(x_bf)
        assert gate.dtype == torch.float32
        if hasattr(layer, "channel_gate"):
            assert layer.channel_gate(x_bf).dtype == torch.float32
        y = layer(x_bf)
    assert y.dtype == torch.bfloat16
    x_exact = x_bf.detach().double().requires_grad_()
    y_exact = formula(exact, x_exact)
    torch.testing.assert_close(y.double(), y_exact, rtol=2e-2, atol=2e-2)
    (gx,) = torch.autograd.grad(y.float().sum(), x_bf)
    (gx_exact,) = torch.autograd.grad(y_exact.sum(), x_exact)
    torch.testing.assert_close(gx.double(), gx_exact, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("train", [False, True])
def test_torchscript_equals_eager(name, train) -> None:
    layer = _layer(name, 3, 4, dtype=torch.float32).train(train)
    scripted = torch.jit.script(layer)
    x = torch.randn(2, 4, 3, 4, 5)
    torch.testing.assert_close(scripted(x), layer(x))


class _AllLayers(nn.Module):
    """Every layer of SPECS in turn, each followed by in-place ops (``InplaceAfter``): one model, one export."""

    def __init__(self, dims: int, channels: int = 4) -> None:
        super().__init__()
        self.units = nn.ModuleList(
            InplaceAfter(_layer(name, dims, channels, torch.float32, seed=i), dims, channels)
            for i, name in enumerate(SPECS)
        )

    def forward(self, x):
        for unit in self.units:
            x = unit(x)
        return x


def test_onnx_export_equals_eager(tmp_path) -> None:
    """Every layer (one model holding them all, each followed by in-place ops), through onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _AllLayers(2).eval()
    x = torch.randn(1, 4, 8, 8)
    path = tmp_path / "all_layers.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"])
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), model(x), rtol=1e-5, atol=1e-6)


def test_torch_compile_one_graph_and_eager_gradients() -> None:
    """The max-out (the one layer with a compiled path of its own), compiled in training: one graph, no break;
    eager's values and every gradient."""
    torch._dynamo.reset()
    layer = _layer("scse_max", 2, 4, dtype=torch.float32)
    model = InplaceAfter(layer, 2, 4)
    x = torch.randn(2, 4, 6, 6)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    _compare_modules(torch.compile(model), model, x, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


def test_torch_compile_inference_one_graph_and_eager_values() -> None:
    """Without grad, torch.compile sees the same formula as in training (one graph), with eager's values."""
    torch._dynamo.reset()
    layer = _layer("scse_max", 3, 4, dtype=torch.float32).eval()
    x = torch.randn(2, 4, 5, 6, 3)
    with torch.no_grad():
        explanation = torch._dynamo.explain(layer)(x)
        assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
        torch.testing.assert_close(torch.compile(layer)(x), layer(x), rtol=1e-5, atol=1e-6)
    torch._dynamo.reset()


@pytest.mark.parametrize("name", list(SPECS))
def test_double_backward_equals_the_formula(name) -> None:
    """The gradient of a gradient norm (as in a gradient penalty), through the block, equals the formula's."""
    layer = _layer(name, 2, 4)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    x[:, :, ::2] = 0.0  # ties of the max-out

    def second_order(module: nn.Module) -> tuple[torch.Tensor, ...]:
        xi = x.clone().requires_grad_()
        inputs = [xi, *module.parameters()]
        grads = torch.autograd.grad(module(xi).square().sum(), inputs, create_graph=True)
        return torch.autograd.grad(sum(g.square().sum() for g in grads), inputs)

    for a, b in zip(second_order(layer), second_order(_Formula(layer)), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", list(SPECS))
def test_torch_func_on_the_block_equals_the_formula(name) -> None:
    """``jacrev`` over the input and the parameters, ``vmap`` over samples, through ``functional_call``."""
    layer = _layer(name, 2, 3)
    params = dict(layer.named_parameters())
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def ours(p, xi):
        return functional_call(layer, p, (xi,))

    def ref(p, xi):
        return functional_call(_Formula(layer), {f"layer.{k}": v for k, v in p.items()}, (xi,))

    (jac_params, jac_x), (ref_params, ref_x) = (jacrev(f, argnums=(0, 1))(params, x) for f in (ours, ref))
    assert set(jac_params) == set(params) == set(ref_params)
    torch.testing.assert_close(jac_params, ref_params)
    torch.testing.assert_close(jac_x, ref_x)
    batched = vmap(lambda xi: ours(params, xi[None])[0])(x)
    torch.testing.assert_close(batched, formula(layer, x))


class _ResidualUnit(nn.Module):
    """conv -> BN -> PReLU, plus a 1 x 1 residual convolution, then ``se``, then a convolution: MONAI's
    ``ResidualUnit`` followed by the next layer, as in SEUNet."""

    def __init__(self, se: nn.Module, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm, self.act = nn.BatchNorm2d(channels), nn.PReLU()
        self.residual, self.se = nn.Conv2d(channels, channels, 1), se
        self.out = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.out(self.se(self.act(self.norm(self.conv(x))) + self.residual(x)))


def test_torch_compile_keeps_no_extra_activation_for_backward() -> None:
    """Compiled, the scSE layer costs no full-size tensor saved for backward over the same unit without it.

    Its formula runs in a non-reentrant checkpoint region, so inductor's partitioner keeps the region's input x
    and recomputes the rest, including the block's output that the next convolution needs (without the region it
    kept x and |x| and the output: ``docs/performance.md``).
    """
    x = torch.randn(2, 4, 16, 16)
    counts = {}
    for name, se in (("scse", _layer("scse_max", 2, 4, dtype=torch.float32)), ("none", nn.Identity())):
        torch._dynamo.reset()
        torch.manual_seed(0)
        compiled = torch.compile(_ResidualUnit(se))
        compiled(x).sum().backward()  # compile the training graphs first
        storages = set()

        def pack(t: torch.Tensor, storages: set = storages) -> torch.Tensor:
            if t.shape == x.shape:
                storages.add(t.untyped_storage().data_ptr())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            compiled(x)
        counts[name] = len(storages)
    torch._dynamo.reset()
    assert counts["none"] > 0
    assert counts["scse"] <= counts["none"], counts


def test_ddp_gradients_equal_single_process(tmp_path) -> None:
    """DistributedDataParallel (gloo, one process, a file store: no network) gives the module's gradients, for
    every layer."""
    assert not dist.is_initialized()
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        for name in SPECS:
            _check_ddp_gradients(name)
    finally:
        dist.destroy_process_group()


def _check_ddp_gradients(name: str) -> None:
    model = InplaceAfter(_layer(name, 2, 4, dtype=torch.float32), 2, 4)
    ddp = nn.parallel.DistributedDataParallel(InplaceAfter(_layer(name, 2, 4, torch.float32), 2, 4))
    try:
        ddp.module.load_state_dict(model.state_dict())
        x = torch.randn(2, 4, 6, 6)
        ddp(x).square().sum().backward()
        model(x).square().sum().backward()
        for (param, a), b in zip(ddp.module.named_parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, msg=lambda m, n=f"{name}.{param}": f"{n}: {m}")
    finally:
        # The DDP wrapper (its Reducer holds the process group) must go before destroy_process_group: released
        # after it, gloo's destructor joins a worker thread that never returns (the whole test run hung once).
        del ddp


@pytest.mark.parametrize("name", ["scse", "cse"])
def test_r_larger_than_channels_is_a_clear_error(name) -> None:
    with pytest.raises(ValueError, match="r"):
        get_se_layer((name, {"r": 16}), 2, 8)
