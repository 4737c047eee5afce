"""Excitation capture with forward hooks: every SE layer, the right shapes and values, hooks removed afterwards."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer

from scse_monai.networks import iter_se_layers
from scse_monai.networks.blocks.squeeze_and_excitation import ChannelSpatialSELayer, SpatialSELayer
from scse_monai.networks.excitation import ExcitationRecorder, capture_excitations
from scse_monai.networks.layers import get_se_layer
from scse_monai.networks.nets import SEUNet


def _inputs_of_se_layers(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each SE layer receives, captured independently with forward pre-hooks."""
    seen: dict[str, torch.Tensor] = {}
    handles = [layer.register_forward_pre_hook(lambda m, a, n=name: seen.__setitem__(n, a[0].detach().clone()))
               for name, layer in iter_se_layers(net)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return seen


def _no_hooks(net: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("se", ["cse", "sse", "scse", ("scse", {"aggregation": "concat"})])
def test_records_every_se_layer_with_the_layers_own_gates(se) -> None:
    torch.manual_seed(0)
    net = SEUNet(spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8, 16), strides=(2, 2), se=se).eval()
    x = torch.randn(2, 1, 32, 32)
    records = capture_excitations(net, x)
    layers = dict(iter_se_layers(net))
    assert list(records) == list(layers) and len(layers) == 4
    inputs = _inputs_of_se_layers(net, x)
    name = se if isinstance(se, str) else se[0]
    for layer_name, rec in records.items():
        layer, u = layers[layer_name], inputs[layer_name]
        b, c = u.shape[:2]
        assert rec.layer_type == type(layer).__name__
        with torch.no_grad():
            if name in ("cse", "scse"):
                assert rec.channel.shape == (b, c)
                assert ((rec.channel > 0) & (rec.channel < 1)).all()
                cse = layer if name == "cse" else layer.cse
                expected = cse.fc(cse.avg_pool(u).view(b, c))
                torch.testing.assert_close(rec.channel, expected)
            else:
                assert rec.channel is None
            if name in ("sse", "scse"):
                assert rec.spatial.shape == (b, 1, *u.shape[2:])
                assert ((rec.spatial > 0) & (rec.spatial < 1)).all()
                sse = layer if name == "sse" else layer.sse
                torch.testing.assert_close(rec.spatial, torch.sigmoid(sse.conv(u)))
            else:
                assert rec.spatial is None
            # the recorded gates are the ones the layer multiplies with
            if name == "cse":
                torch.testing.assert_close(layer(u), u * rec.channel[:, :, None, None])
            if name == "sse":
                torch.testing.assert_close(layer(u), u * rec.spatial)
            if name == "scse" and layer.aggregation == "max":
                ref = torch.maximum(u * rec.channel[:, :, None, None], u * rec.spatial)
                torch.testing.assert_close(layer(u), ref)
        assert not rec.channel.requires_grad if rec.channel is not None else True
        assert (rec.channel if rec.channel is not None else rec.spatial).device.type == "cpu"
    assert _no_hooks(net)


def test_hooks_removed_after_an_exception_and_latest_forward_kept() -> None:
    net = SEUNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), se="scse").eval()
    with pytest.raises(RuntimeError), ExcitationRecorder(net):
        raise RuntimeError("boom")
    assert _no_hooks(net)
    with ExcitationRecorder(net, spatial=False) as rec, torch.no_grad():
        net(torch.randn(3, 1, 16, 16))
        net(torch.randn(1, 1, 16, 16))
        assert all(r.channel.shape[0] == 1 and r.spatial is None for r in rec.records.values())
    assert _no_hooks(net)


def test_works_on_any_network_with_se_layers() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        get_se_layer("scse", spatial_dims=2, in_channels=6),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.Sequential(ChannelSELayer(2, 4, r=2)),
        SpatialSELayer(2, 4),
    ).eval()
    records = capture_excitations(net, torch.randn(2, 1, 8, 8))
    assert list(records) == ["1", "3.0", "4"]
    assert records["1"].channel.shape == (2, 6) and records["1"].spatial.shape == (2, 1, 8, 8)
    assert records["3.0"].channel.shape == (2, 4) and records["3.0"].spatial is None
    assert records["4"].channel is None and records["4"].spatial.shape == (2, 1, 8, 8)
    assert isinstance(net[1], ChannelSpatialSELayer)
    assert capture_excitations(nn.Conv2d(1, 1, 1), torch.randn(1, 1, 4, 4)) == {}


class UserChannelSE(nn.Module):
    """A user's own cSE (no MONAI or scse_monai layer inside) implementing the SEGates protocol."""

    def __init__(self, spatial_dims: int, in_channels: int, r: int = 2) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(in_channels, in_channels // r), nn.ReLU(),
                                nn.Linear(in_channels // r, in_channels), nn.Sigmoid())

    def excitation_gates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"channel": self.fc(x.flatten(2).mean(2))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.excitation_gates(x)["channel"]
        return x * g.view(*g.shape, *([1] * (x.ndim - 2)))


class UserOpaqueSE(nn.Module):
    """A registered block that does not implement the protocol."""

    def __init__(self, spatial_dims: int, in_channels: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.w)


def test_user_registered_block_gates_are_captured(se_registry) -> None:
    torch.manual_seed(0)
    se_registry.add_factory_class("userse", UserChannelSE)
    net = SEUNet(spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8, 16), strides=(2, 2),
                 se=("userse", {"r": 2})).eval()
    x = torch.randn(2, 1, 32, 32)
    records = capture_excitations(net, x)
    inputs = _inputs_of_se_layers(net, x)
    assert len(records) == 4 and all(r.layer_type == "UserChannelSE" for r in records.values())
    layers = dict(iter_se_layers(net))
    for name, rec in records.items():
        u = inputs[name]
        assert rec.channel.shape == u.shape[:2] and rec.spatial is None
        with torch.no_grad():
            # the recorded gate is what the block multiplies its input with
            torch.testing.assert_close(layers[name](u), u * rec.channel[:, :, None, None])
    assert _no_hooks(net)


def test_block_without_the_protocol_warns_and_records_nothing(se_registry) -> None:
    se_registry.add_factory_class("opaquese", UserOpaqueSE)
    net = SEUNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), se="opaquese")
    with pytest.warns(UserWarning, match="excitation_gates"):
        records = capture_excitations(net, torch.randn(1, 1, 16, 16))
    assert records and all(r.channel is None and r.spatial is None for r in records.values())
