"""The SE blocks against independent re-computations of Roy et al.'s formulas (SCSE.md §1)."""

from __future__ import annotations

import pytest
import torch
from monai.networks.blocks import ChannelSELayer
from parameterized import parameterized

from scse_monai.networks.blocks import ChannelSpatialSELayer, SpatialSELayer


def _spatial_axes(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def formula_cse_gate(x: torch.Tensor, cse: ChannelSELayer) -> torch.Tensor:
    """s = sigmoid(W1 relu(W2 z) + b1), z = spatial mean (TMI eqs. 1-2, with the biases every implementation has)."""
    w2, b2 = cse.fc[0].weight, cse.fc[0].bias  # C -> C // r
    w1, b1 = cse.fc[2].weight, cse.fc[2].bias  # C // r -> C
    z = x.mean(dim=_spatial_axes(x))
    s = torch.sigmoid(torch.relu(z @ w2.T + b2) @ w1.T + b1)
    return s.reshape(*s.shape, *([1] * (x.ndim - 2)))


def formula_sse_gate(x: torch.Tensor, sse: SpatialSELayer) -> torch.Tensor:
    """sigmoid(sum_c w_c u_c + b): a 1x1 convolution C -> 1 written as an explicit channel sum (TMI eq. 3)."""
    w = sse.conv.weight.reshape(-1)
    q = torch.einsum("bc...,c->b...", x, w) + sse.conv.bias
    return torch.sigmoid(q).unsqueeze(1)


CASES = [(dims, agg) for dims in (1, 2, 3) for agg in ("max", "add", "mul", "concat")]


@parameterized.expand(CASES)
def test_scse_equals_formula(dims: int, aggregation: str) -> None:
    torch.manual_seed(0)
    layer = ChannelSpatialSELayer(dims, in_channels=6, r=2, aggregation=aggregation).double()
    x = torch.randn(3, 6, *([5] * dims), dtype=torch.float64)  # negative values too: PReLU outputs can be < 0
    u_c = x * formula_cse_gate(x, layer.cse)
    u_s = x * formula_sse_gate(x, layer.sse)
    if aggregation == "max":
        expected = torch.where(u_c >= u_s, u_c, u_s)
    elif aggregation == "add":
        expected = u_c + u_s
    elif aggregation == "mul":
        expected = u_c * u_s
    else:
        w = layer.project.weight.reshape(6, 12)
        expected = torch.einsum("oc,bc...->bo...", w, torch.cat([u_c, u_s], 1))
        expected = expected + layer.project.bias.reshape(1, 6, *([1] * dims))
    out = layer(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@parameterized.expand([(1,), (2,), (3,)])
def test_sse_equals_formula(dims: int) -> None:
    torch.manual_seed(1)
    layer = SpatialSELayer(dims, in_channels=4).double()
    x = torch.randn(2, 4, *([6] * dims), dtype=torch.float64)
    torch.testing.assert_close(layer(x), x * formula_sse_gate(x, layer), rtol=1e-12, atol=1e-12)


@parameterized.expand([(2,), (3,)])
def test_cse_is_monai_channel_se_and_equals_formula(dims: int) -> None:
    torch.manual_seed(2)
    layer = ChannelSELayer(dims, in_channels=8, r=2).double()
    x = torch.randn(2, 8, *([4] * dims), dtype=torch.float64)
    torch.testing.assert_close(layer(x), x * formula_cse_gate(x, layer), rtol=1e-12, atol=1e-12)


def test_memory_efficient_max_matches_plain_max() -> None:
    torch.manual_seed(3)
    fused = ChannelSpatialSELayer(2, 8, memory_efficient=True)
    plain = ChannelSpatialSELayer(2, 8, memory_efficient=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 8, 9, 7)
    torch.testing.assert_close(fused(x), plain(x))


@parameterized.expand([("max",), ("add",), ("mul",), ("concat",)])
def test_gradients_reach_every_se_parameter(aggregation: str) -> None:
    torch.manual_seed(4)
    layer = ChannelSpatialSELayer(2, in_channels=6, aggregation=aggregation)
    # per-sample channel offsets so that the pooled vector z varies and the ReLU bottleneck is not dead for all
    offsets = 2 * torch.randn(4, 6, 1, 1)
    x = (torch.randn(4, 6, 8, 8) + offsets).requires_grad_()
    (layer(x) ** 2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@parameterized.expand(
    [
        ("r_too_large", dict(spatial_dims=2, in_channels=4, r=5), "r must be an integer in \\[1, in_channels=4\\]"),
        ("r_zero", dict(spatial_dims=2, in_channels=4, r=0), "r must be"),
        ("r_float", dict(spatial_dims=2, in_channels=4, r=1.5), "r must be"),
        ("bad_aggregation", dict(spatial_dims=2, in_channels=4, aggregation="mean"), "mean"),
    ]
)
def test_bad_arguments(_: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChannelSpatialSELayer(**kwargs)


def test_bad_aggregation_suggests_closest() -> None:
    with pytest.raises(ValueError, match="did you mean 'max'"):
        ChannelSpatialSELayer(2, 4, aggregation="maxx")


@parameterized.expand([(ChannelSpatialSELayer,), (SpatialSELayer,)])
def test_wrong_input_rank(cls: type) -> None:
    layer = cls(2, 4)
    with pytest.raises(ValueError, match="expected input of shape \\(batch, channels, 2 spatial dims\\).*got 5"):
        layer(torch.randn(1, 4, 3, 3, 3))


def test_sse_rejects_bad_spatial_dims() -> None:
    with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3"):
        SpatialSELayer(4, 4)
