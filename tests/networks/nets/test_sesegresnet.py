"""SESegResNet: exactly MONAI's SegResNet with se=None, SE placement and initialisation, training, export, overhead."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import SegResNet
from parameterized import parameterized

from scse_monai.networks import count_parameters, count_se_parameters, iter_se_layers
from scse_monai.networks.nets import SESegResNet

from . import net_checks as checks


def _kwargs(dims: int, init_filters: int = 8, **extra) -> dict:
    kwargs = dict(spatial_dims=dims, init_filters=init_filters, in_channels=1, out_channels=3, blocks_down=(1, 2, 2),
                  blocks_up=(1, 1), norm=("group", {"num_groups": 4}))
    return kwargs | extra


def _input(dims: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 1, *((16, 16) if dims == 2 else (16, 16, 8)))


@parameterized.expand([(2, "nontrainable"), (3, "nontrainable"), (3, "deconv")])
def test_se_none_is_monai_segresnet(dims: int, upsample_mode: str) -> None:
    torch.manual_seed(0)
    baseline = SegResNet(**_kwargs(dims, upsample_mode=upsample_mode))
    torch.manual_seed(0)
    net = SESegResNet(se=None, **_kwargs(dims, upsample_mode=upsample_mode))
    checks.assert_same_network(baseline, net, _input(dims))


def test_segresnet_weights_and_keys_are_kept() -> None:
    """Same backbone weights as SegResNet for the same seed; its checkpoint loads, only SE keys are missing."""
    torch.manual_seed(0)
    baseline = SegResNet(**_kwargs(3))
    torch.manual_seed(0)
    net = SESegResNet(se="scse", **_kwargs(3))
    state = net.state_dict()
    for k, v in baseline.state_dict().items():
        assert torch.equal(state[k], v), k
    result = net.load_state_dict(baseline.state_dict(), strict=False)
    assert not result.unexpected_keys
    se_keys = {f"{name}.{k}" for name, layer in iter_se_layers(net) for k in layer.state_dict()}
    assert set(result.missing_keys) == se_keys


def test_placement_after_every_encoder_and_decoder_stage() -> None:
    net = SESegResNet(se="sse", **_kwargs(2))
    names = [n for n, _ in iter_se_layers(net)]
    assert names == ["down_layers.0.2", "down_layers.1.3", "down_layers.2.3", "up_layers.0.1", "up_layers.1.1"]
    assert [layer.conv.in_channels for _, layer in iter_se_layers(net)] == [8, 16, 32, 16, 8]
    assert not list(iter_se_layers(net.conv_final))


def test_decoder_skip_carries_recalibrated_map() -> None:
    net = SESegResNet(se="sse", **_kwargs(2)).eval()
    seen: dict[str, torch.Tensor] = {}
    net.down_layers[1][-1].register_forward_hook(lambda m, i, o: seen.setdefault("enc", o))
    net.up_samples[0].register_forward_hook(lambda m, i, o: seen.setdefault("up", o))
    net.up_layers[0].register_forward_hook(lambda m, i, o: seen.setdefault("dec_in", i[0]))
    with torch.no_grad():
        net(_input(2))
    torch.testing.assert_close(seen["dec_in"], seen["up"] + seen["enc"])


SPECS = ["scse", "cse", "sse", ("scse", {"aggregation": "concat", "r": 4})]


@parameterized.expand([(dims, spec) for dims in (2, 3) for spec in SPECS])
def test_output_shape(dims: int, spec) -> None:
    net = SESegResNet(se=spec, **_kwargs(dims)).eval()
    x = _input(dims)
    with torch.no_grad():
        assert net(x).shape == (2, 3, *x.shape[2:])


@parameterized.expand([(2, "scse"), (3, "scse"), (3, ("scse", {"aggregation": "add"}))])
def test_training_step_gradients(dims: int, spec) -> None:
    """In-place ReLU and ResBlock's in-place residual add around the SE layers (>= 32 channels, see SEDynUNet's)."""
    torch.manual_seed(1)
    net = SESegResNet(se=spec, **_kwargs(dims, init_filters=32, blocks_down=(1, 1, 1)))
    checks.assert_training_step(net, _input(dims))


@parameterized.expand([(kind, r, dims) for kind in ("cse", "sse", "scse") for r in (2, 4) for dims in (2, 3)])
def test_count_se_parameters_closed_form(kind: str, r: int, dims: int) -> None:
    net = SESegResNet(se=checks.spec_of(kind, r), **_kwargs(dims))
    expected = sum(checks.closed_form(c, r, kind) for c in (8, 16, 32, 16, 8))  # 3 encoder stages, 2 decoder stages
    assert count_se_parameters(net) == expected
    assert count_parameters(net) - count_parameters(SegResNet(**_kwargs(dims))) == expected


@parameterized.expand([(2, "scse"), (3, "scse"), (3, ("scse", {"aggregation": "add"}))])
def test_torchscript_round_trip(dims: int, spec) -> None:
    checks.assert_torchscript_matches(SESegResNet(se=spec, **_kwargs(dims)), _input(dims, batch=1))


def test_onnx_export_matches(tmp_path: Path) -> None:
    checks.assert_onnx_matches(SESegResNet(se="scse", **_kwargs(2)), _input(2, batch=1), tmp_path / "net.onnx")


def test_autocast_training_step() -> None:
    checks.assert_autocast_step(SESegResNet(se="scse", **_kwargs(2)), _input(2))
