"""The fused max-out scSE Function against autograd of the plain formula."""

from __future__ import annotations

import pytest
import torch

from scse_monai.networks.blocks import ChannelSpatialSELayer
from scse_monai.networks.blocks.fused_scse import scse_max_fused, scse_max_reference


def _inputs(shape, ties: bool = False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    g_c = torch.rand(shape[0], shape[1], *[1] * (len(shape) - 2), generator=g, dtype=torch.float64)
    w = 0.3 * torch.randn(1, shape[1], *[1] * (len(shape) - 2), generator=g, dtype=torch.float64)
    b = torch.randn(1, generator=g, dtype=torch.float64)
    if ties:
        x.view(-1)[::7] = 0.0  # x == 0: both products are 0
    return [t.requires_grad_() for t in (x, g_c, w, b)]


@pytest.mark.parametrize("shape", [(2, 4, 7), (2, 4, 5, 6), (1, 3, 4, 4, 3)])
@pytest.mark.parametrize("ties", [False, True])
def test_gradcheck_and_autograd_equivalence(shape, ties) -> None:
    inputs = _inputs(shape, ties)
    if not ties:  # at x == 0 the max is not differentiable: finite differences cannot check the tie rule
        assert torch.autograd.gradcheck(scse_max_fused, inputs)
    out, ref = scse_max_fused(*inputs), scse_max_reference(*inputs)
    assert torch.equal(out, ref)
    upstream = torch.randn_like(ref)
    grads = torch.autograd.grad(out, inputs, upstream)
    expected = torch.autograd.grad(ref, inputs, upstream)  # torch.maximum's tie rule: half each
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_equal_gates_tie_splits_gradient() -> None:
    x = torch.tensor([[[1.0, -2.0, 0.5]]], dtype=torch.float64, requires_grad=True)
    g_c = torch.full((1, 1, 1), 0.5, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(1, 1, 1, dtype=torch.float64, requires_grad=True)  # sigmoid(0) = 0.5 = g_c everywhere
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    args = (x, g_c, w, b)
    for got, want in zip(torch.autograd.grad(scse_max_fused(*args).sum(), args),
                         torch.autograd.grad(scse_max_reference(*args).sum(), args), strict=True):
        torch.testing.assert_close(got, want)


def test_saves_no_copy_of_the_input() -> None:
    x, g_c, w, b = _inputs((2, 4, 8, 8))
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = scse_max_fused(x, g_c, w, b)
    assert not any(t.data_ptr() == x.data_ptr() for t in saved)
    assert any(t.data_ptr() == out.data_ptr() for t in saved)  # the output, which the next layer keeps anyway
    full = [t for t in saved if t.numel() == x.numel()]
    assert len(full) == 1


def test_layer_gradients_match_plain_layer() -> None:
    torch.manual_seed(0)
    plain = ChannelSpatialSELayer(2, 6, memory_efficient=False)
    fused = ChannelSpatialSELayer(2, 6, memory_efficient=True)
    fused.load_state_dict(plain.state_dict())
    x = (torch.randn(3, 6, 9, 9) + 2 * torch.randn(3, 6, 1, 1)).requires_grad_()
    y_p, y_f = plain(x), fused(x)
    assert y_f.grad_fn.name().startswith("_FusedSCSEMax")
    torch.testing.assert_close(y_f, y_p)
    up = torch.randn_like(y_p)
    for a, b in zip(torch.autograd.grad(y_f, [x, *fused.parameters()], up),
                    torch.autograd.grad(y_p, [x, *plain.parameters()], up), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
