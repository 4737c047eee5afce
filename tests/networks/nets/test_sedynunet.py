"""SEDynUNet: exactly MONAI's DynUNet with se=None, SE placement and initialisation, training, export, overhead."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import DynUNet
from parameterized import parameterized

from scse_monai.networks import count_parameters, count_se_parameters, iter_se_layers
from scse_monai.networks.layers import get_se_layer
from scse_monai.networks.nets import SEDynUNet

from . import net_checks as checks

FILTERS = (4, 8, 16, 16)


def _kwargs(dims: int, res_block: bool, filters=FILTERS, **extra) -> dict:
    """Four levels; in 3D anisotropic (nnU-Net style: no pooling along the last axis at first)."""
    if dims == 2:
        kernels, strides = [3, 3, 3, 3], [1, 2, 2, 2]
    else:
        kernels, strides = [[3, 3, 1], [3, 3, 1], 3, 3], [1, [2, 2, 1], 2, 2]
    return dict(spatial_dims=dims, in_channels=1, out_channels=3, kernel_size=kernels, strides=strides,
                upsample_kernel_size=strides[1:], filters=filters, res_block=res_block, **extra)


def _input(dims: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 1, *((16, 16) if dims == 2 else (16, 16, 8)))


@parameterized.expand([(2, False), (2, True), (3, False), (3, True)])
def test_se_none_is_monai_dynunet(dims: int, res_block: bool) -> None:
    for extra in ({}, {"deep_supervision": True, "deep_supr_num": 2}):
        torch.manual_seed(0)
        baseline = DynUNet(**_kwargs(dims, res_block, **extra))
        torch.manual_seed(0)
        net = SEDynUNet(se=None, **_kwargs(dims, res_block, **extra))
        checks.assert_same_network(baseline, net, _input(dims))


def test_se_null_string_is_dynunet() -> None:
    assert list(SEDynUNet(se="null", **_kwargs(2, True)).state_dict()) == list(DynUNet(**_kwargs(2, True)).state_dict())


def test_backbone_init_equals_dynunet_and_se_keeps_its_own_init() -> None:
    """DynUNet's re-initialisation runs before the SE layers exist: backbone as DynUNet, SE layers as built alone."""
    torch.manual_seed(0)
    baseline = DynUNet(**_kwargs(3, True))
    se_channels = [4, 8, 16, 16, 16, 8, 4]  # input, 2 downsamples, bottleneck, 3 upsamples (deepest first)
    fresh = [get_se_layer("scse", 3, c) for c in se_channels]  # the RNG continues where DynUNet's init left it
    torch.manual_seed(0)
    net = SEDynUNet(se="scse", **_kwargs(3, True))
    se_layers = [layer for _, layer in iter_se_layers(net)]
    se_ids = {id(p) for layer in se_layers for p in layer.parameters()}
    backbone = [p for p in net.parameters() if id(p) not in se_ids]
    assert len(backbone) == len(list(baseline.parameters()))
    for a, b in zip(baseline.parameters(), backbone, strict=True):
        assert torch.equal(a, b)
    assert len(se_layers) == len(fresh)
    for layer, ref in zip(se_layers, fresh, strict=True):
        for (k, a), b in zip(ref.state_dict().items(), layer.state_dict().values(), strict=True):
            assert torch.equal(a, b), k


@parameterized.expand([(False,), (True,)])
def test_placement_after_every_encoder_bottleneck_and_decoder_block(deep_supervision: bool) -> None:
    net = SEDynUNet(se="sse", **_kwargs(2, True, deep_supervision=deep_supervision))
    names = [n for n, _ in iter_se_layers(net)]
    assert names == ["input_block.1", "downsamples.0.1", "downsamples.1.1", "bottleneck.1", "upsamples.0.se",
                     "upsamples.1.se", "upsamples.2.se"]
    assert [layer.conv.in_channels for _, layer in iter_se_layers(net)] == [4, 8, 16, 16, 16, 8, 4]
    # the output block and the deep supervision heads stay plain 1x1 convolutions
    heads = [net.output_block, *(net.deep_supervision_heads if deep_supervision else [])]
    assert not any(list(iter_se_layers(h)) for h in heads)


def test_skip_and_output_block_see_recalibrated_maps() -> None:
    net = SEDynUNet(se="sse", **_kwargs(2, False)).eval()
    seen: dict[str, torch.Tensor] = {}
    net.input_block[1].register_forward_hook(lambda m, i, o: seen.setdefault("enc", o))
    net.upsamples[-1].se.register_forward_hook(lambda m, i, o: seen.setdefault("dec", o))
    net.upsamples[-1].block.register_forward_hook(lambda m, i, o: seen.setdefault("skip", i[1]))
    net.output_block.register_forward_hook(lambda m, i, o: seen.setdefault("head_in", i[0]))
    with torch.no_grad():
        net(_input(2))
    assert torch.equal(seen["skip"], seen["enc"])  # configuration 1: the skip carries the SE output
    assert torch.equal(seen["head_in"], seen["dec"])


SPECS = ["scse", "cse", "sse", ("scse", {"aggregation": "concat", "r": 4})]


@parameterized.expand([(dims, res, spec) for dims in (2, 3) for res in (False, True) for spec in SPECS])
def test_output_shape(dims: int, res_block: bool, spec) -> None:
    net = SEDynUNet(se=spec, **_kwargs(dims, res_block)).eval()
    x = _input(dims)
    with torch.no_grad():
        assert net(x).shape == (2, 3, *x.shape[2:])


def test_deep_supervision_output_shape() -> None:
    net = SEDynUNet(se="scse", **_kwargs(3, True, deep_supervision=True, deep_supr_num=2)).train()
    x = _input(3)
    assert net(x).shape == (2, 3, 3, *x.shape[2:])


@parameterized.expand([(dims, res, "scse") for dims in (2, 3) for res in (False, True)]
                      + [(3, True, ("scse", {"aggregation": "add"})), (2, True, "cse"), (3, True, "sse")])
def test_training_step_gradients(dims: int, res_block: bool, spec) -> None:
    """Default (in-place) LeakyReLU and UnetResBlock's in-place residual add around the SE layers.

    32 channels: with few hidden units (C // r) all ReLUs of a cSE can be dead at initialisation, which
    rightly gives its first FC layer a zero gradient.
    """
    torch.manual_seed(1)
    checks.assert_training_step(SEDynUNet(se=spec, **_kwargs(dims, res_block, filters=(32,) * 4)), _input(dims))


@parameterized.expand([(kind, r, dims) for kind in ("cse", "sse", "scse") for r in (2, 4) for dims in (2, 3)])
def test_count_se_parameters_closed_form(kind: str, r: int, dims: int) -> None:
    net = SEDynUNet(se=checks.spec_of(kind, r), **_kwargs(dims, True))
    # every filter but the last has an encoder and a decoder SE; the last one is the bottleneck's
    expected = 2 * sum(checks.closed_form(c, r, kind) for c in FILTERS[:-1]) + checks.closed_form(FILTERS[-1], r, kind)
    assert count_se_parameters(net) == expected
    assert count_parameters(net) - count_parameters(DynUNet(**_kwargs(dims, True))) == expected


@parameterized.expand([(2, False, "scse"), (3, True, "scse")])
def test_torchscript_round_trip(dims: int, res_block: bool, spec) -> None:
    checks.assert_torchscript_matches(SEDynUNet(se=spec, **_kwargs(dims, res_block)), _input(dims, batch=1))


def test_onnx_export_matches(tmp_path: Path) -> None:
    checks.assert_onnx_matches(SEDynUNet(se="scse", **_kwargs(3, True)), _input(3, batch=1), tmp_path / "net.onnx")


def test_autocast_training_step() -> None:
    checks.assert_autocast_step(SEDynUNet(se="scse", **_kwargs(2, True)), _input(2))
