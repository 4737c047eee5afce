from __future__ import annotations

import pytest
import torch

import scse_monai.networks.blocks.maxout as maxout_mod
from scse_monai.networks.blocks import ChannelSpatialSELayer
from scse_monai.networks.blocks.maxout import maxout_blocked, maxout_recalibrate, maxout_reference
from scse_monai.networks.nets import SEUNet

# (x shape, g_c shape, g_s shape): 2D, 3D, a channel gate shared by the batch, a 1D map.
SHAPES = [
    ((2, 3, 4, 5), (2, 3, 1, 1), (2, 1, 4, 5)),
    ((2, 3, 2, 3, 4), (2, 3, 1, 1, 1), (2, 1, 2, 3, 4)),
    ((3, 4, 5, 2), (1, 4, 1, 1), (3, 1, 5, 2)),
    ((2, 5, 7), (2, 5, 1), (2, 1, 7)),
]


def _inputs(shapes, dtype=torch.float64, ties=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs, cs, ss = shapes
    x = torch.randn(xs, dtype=dtype, generator=gen)
    g_c = torch.rand(cs, dtype=dtype, generator=gen)
    g_s = torch.rand(ss, dtype=dtype, generator=gen)
    if ties:
        x.view(-1)[::4] = 0.0  # x == 0: both products are 0, a tie
        g_s.view(-1)[:2] = g_c.view(-1)[0]  # equal gates: a tie wherever they meet
    return x.requires_grad_(), g_c.requires_grad_(), g_s.requires_grad_()


@pytest.fixture(params=[1, 7, 40, 1 << 20], ids=["block1", "block7", "block40", "default"])
def block(request, monkeypatch):
    """Run with tiny blocks too, so that the blocked loops (several blocks per sample) are exercised."""
    monkeypatch.setattr(maxout_mod, "BLOCK_ELEMENTS", request.param)
    return request.param


@pytest.mark.parametrize("shapes", SHAPES)
def test_blocked_forward_is_bitwise_the_formula(shapes, block):
    x, g_c, g_s = (t.detach() for t in _inputs(shapes))
    assert torch.equal(maxout_blocked(x, g_c, g_s), maxout_reference(x, g_c, g_s))


@pytest.mark.parametrize("shapes", SHAPES)
def test_matches_autograd_of_reference(shapes, block):
    x, g_c, g_s = _inputs(shapes, seed=1)
    out = maxout_recalibrate(x, g_c, g_s)
    ref = maxout_reference(x, g_c, g_s)
    assert torch.equal(out, ref)
    grad = torch.randn_like(ref)
    ours = torch.autograd.grad(out, (x, g_c, g_s), grad)
    theirs = torch.autograd.grad(ref, (x, g_c, g_s), grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_tie_rule_splits_gradient_like_torch_maximum():
    # At x == 0, torch.maximum gives each product half of the gradient: dx = (g_c + g_s) / 2 (computed by hand).
    x = torch.zeros(1, 2, 1, 3, dtype=torch.float64, requires_grad=True)
    g_c = torch.tensor([0.2, 0.9], dtype=torch.float64).view(1, 2, 1, 1).requires_grad_()
    g_s = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64).view(1, 1, 1, 3).requires_grad_()
    maxout_recalibrate(x, g_c, g_s).sum().backward()
    torch.testing.assert_close(x.grad, (g_c + g_s).detach().expand(1, 2, 1, 3) / 2)
    # Without ties the larger product takes all: x > 0 selects max(g_c, g_s), x < 0 min(g_c, g_s).
    x2 = torch.tensor([1.0, -1.0], dtype=torch.float64).view(1, 1, 1, 2).requires_grad_()
    gc2 = torch.tensor([0.3], dtype=torch.float64).view(1, 1, 1, 1)
    gs2 = torch.tensor([0.7, 0.7], dtype=torch.float64).view(1, 1, 1, 2)
    maxout_recalibrate(x2, gc2, gs2).sum().backward()
    torch.testing.assert_close(x2.grad.flatten(), torch.tensor([0.7, 0.3], dtype=torch.float64))


def test_no_grad_forward(block):
    x, g_c, g_s = _inputs(SHAPES[0], dtype=torch.float32, ties=False)
    with torch.no_grad():
        out = maxout_recalibrate(x, g_c, g_s)
    assert not out.requires_grad
    assert torch.equal(out, maxout_reference(x, g_c, g_s).detach())
    with torch.inference_mode():
        assert torch.equal(maxout_recalibrate(x, g_c, g_s), out)


def test_values_are_x_times_selected_gate():
    # Independent form from the paper's note: x * max(g_c, g_s) where x >= 0, x * min(g_c, g_s) where x < 0.
    x, g_c, g_s = (t.detach() for t in _inputs(SHAPES[1], ties=False, seed=3))
    expected = torch.where(x >= 0, x * torch.maximum(g_c, g_s), x * torch.minimum(g_c, g_s))
    torch.testing.assert_close(maxout_recalibrate(x, g_c, g_s), expected)


@pytest.mark.parametrize("x_dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtype_promotion_like_the_formula(x_dtype):
    x, g_c, g_s = (t.detach() for t in _inputs(SHAPES[0], dtype=torch.float32, ties=False))
    x = x.to(x_dtype).requires_grad_()
    g_c.requires_grad_()
    out = maxout_recalibrate(x, g_c, g_s)
    ref = maxout_reference(x, g_c, g_s)
    assert out.dtype == ref.dtype
    assert torch.equal(out, ref)
    gx, gc = torch.autograd.grad(out.sum(), (x, g_c))
    rx, rc = torch.autograd.grad(ref.sum(), (x, g_c))
    assert gx.dtype == x_dtype and gc.dtype == torch.float32
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gc, rc)


def test_bad_gate_shapes():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError):
        maxout_recalibrate(x, torch.rand(2, 3, 1, 1), torch.rand(2, 3, 4, 4))  # spatial gate with C channels
    with pytest.raises(ValueError):
        maxout_recalibrate(x, torch.rand(2, 3, 1), torch.rand(2, 1, 4, 4))  # wrong rank
    with pytest.raises(ValueError):
        maxout_recalibrate(x, torch.rand(2, 5, 1, 1), torch.rand(2, 1, 4, 4))  # not broadcastable


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_layer_memory_efficient_matches_plain(spatial_dims):
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
def test_seunet_scripts_and_traces(spatial_dims):
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


def test_script_function_directly():
    scripted = torch.jit.script(maxout_recalibrate)
    x, g_c, g_s = (t.detach() for t in _inputs(SHAPES[0], ties=False))
    assert torch.equal(scripted(x, g_c, g_s), maxout_reference(x, g_c, g_s))
