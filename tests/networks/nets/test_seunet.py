"""SEUNet: exactly MONAI's UNet with se=None, SE placement, shapes, TorchScript and ONNX, parameter overhead."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet
from monai.networks.utils import convert_to_torchscript
from parameterized import parameterized

from scse_monai.networks import count_parameters, count_se_parameters, iter_se_layers
from scse_monai.networks.nets import SEUNet

SPECS = ["scse", "cse", "sse", ("scse", {"aggregation": "add"}), ("scse", {"aggregation": "mul"}),
         ("scse", {"aggregation": "concat", "r": 4})]
SHAPE_CASES = [(dims, nru, spec) for dims in (2, 3) for nru in (0, 2) for spec in SPECS]


def _kwargs(dims: int, nru: int) -> dict:
    return dict(spatial_dims=dims, in_channels=1, out_channels=5, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=nru)


@parameterized.expand([(2, 0), (2, 2), (3, 0), (3, 1)])
def test_se_none_is_monai_unet(dims: int, nru: int) -> None:
    torch.manual_seed(0)
    unet = UNet(**_kwargs(dims, nru))
    torch.manual_seed(0)
    seunet = SEUNet(se=None, **_kwargs(dims, nru))
    assert list(seunet.state_dict()) == list(unet.state_dict())
    for (k, a), b in zip(unet.state_dict().items(), seunet.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(2, 1, *([16] * dims))
    unet.eval(), seunet.eval()
    with torch.no_grad():
        assert torch.equal(unet(x), seunet(x))


def test_se_null_string_is_unet() -> None:
    assert list(SEUNet(se="null", **_kwargs(2, 0)).state_dict()) == list(UNet(**_kwargs(2, 0)).state_dict())


@parameterized.expand(SHAPE_CASES)
def test_output_shape(dims: int, nru: int, spec) -> None:
    net = SEUNet(se=spec, **_kwargs(dims, nru)).eval()
    x = torch.randn(2, 1, *([16] * dims))
    with torch.no_grad():
        assert net(x).shape == (2, 5, *([16] * dims))


def test_placement_default_and_p5() -> None:
    net = SEUNet(se="scse", **_kwargs(2, 0))
    channels = [layer.sse.conv.in_channels for _, layer in iter_se_layers(net)]
    assert channels == [4, 8, 16, 4]  # down 4, down 8, bottleneck 16, up 4 (the top up layer emits logits)
    p5 = SEUNet(se="scse", se_bottleneck=False, **_kwargs(2, 0))
    assert [layer.sse.conv.in_channels for _, layer in iter_se_layers(p5)] == [4, 8, 4]


def test_skip_carries_recalibrated_map() -> None:
    """Configuration 1 (TMI §IV-D): the down layer's SE output is what the skip concatenates."""
    net = SEUNet(se="sse", **_kwargs(2, 0)).eval()
    seen = {}
    first_se = next(layer for _, layer in iter_se_layers(net))
    first_se.register_forward_hook(lambda m, i, o: seen.setdefault("se_out", o))
    skip = net.model[1]  # Sequential(down, SkipConnection(sub), up)
    skip.register_forward_hook(lambda m, i, o: seen.setdefault("skip_out", o))
    with torch.no_grad():
        net(torch.randn(1, 1, 16, 16))
    assert torch.equal(seen["skip_out"][:, :4], seen["se_out"])


def _closed_form(c: int, r: int, kind: str) -> int:
    cse = 2 * c * (c // r) + c // r + c
    sse = c + 1
    return {"cse": cse, "sse": sse, "scse": cse + sse}[kind]


@parameterized.expand([(kind, r, nru) for kind in ("cse", "sse", "scse") for r in (2, 4) for nru in (0, 2)])
def test_count_se_parameters_closed_form(kind: str, r: int, nru: int) -> None:
    channels = (16, 32, 64, 128)
    spec = (kind, {"r": r}) if kind != "sse" else kind
    net = SEUNet(2, 1, 5, channels, (2, 2, 2), se=spec, num_res_units=nru)
    # down layers 16/32/64, bottleneck 128, up layers output 32 and 16 (the top up layer emits logits: no SE)
    se_channels = [16, 32, 64, 128, 32, 16]
    expected = sum(_closed_form(c, r, kind) for c in se_channels)
    assert count_se_parameters(net) == expected
    assert count_parameters(net) - count_parameters(SEUNet(2, 1, 5, channels, (2, 2, 2), se=None,
                                                           num_res_units=nru)) == expected


def test_count_matches_scse_md_worked_example() -> None:
    """SCSE.md §4: channels (16..256), P5 costs 28,023 parameters, P5 + bottleneck 94,200, on 661,149 / 1,626,220."""
    args = (2, 1, 5, (16, 32, 64, 128, 256), (2, 2, 2, 2))
    for nru, base in ((0, 661_149), (2, 1_626_220)):
        assert count_parameters(SEUNet(*args, se=None, num_res_units=nru)) == base
        assert count_se_parameters(SEUNet(*args, se="scse", se_bottleneck=False, num_res_units=nru)) == 28_023
        assert count_se_parameters(SEUNet(*args, se="scse", num_res_units=nru)) == 94_200


def test_weights_only_count_matches_tmi_table_1() -> None:
    """Table I: 8 scSE blocks of 64 channels add 3.3e4 weights (8 * (64^2 + 64) = 33,280; biases excluded)."""
    net = SEUNet(2, 1, 5, (64,) * 5, (2, 2, 2, 2), se="scse")  # 4 down + bottleneck + 3 up = 8 SE layers
    layers = [layer for _, layer in iter_se_layers(net)]
    assert len(layers) == 8
    weights = sum(p.numel() for layer in layers for n, p in layer.named_parameters() if n.endswith("weight"))
    assert weights == 33_280


@parameterized.expand([(2, 0, "scse"), (2, 2, ("scse", {"aggregation": "add"})), (3, 1, "scse"), (3, 0, "sse")])
def test_torchscript_round_trip(dims: int, nru: int, spec) -> None:
    net = SEUNet(se=spec, **_kwargs(dims, nru)).eval()
    x = torch.randn(1, 1, *([16] * dims))
    scripted = convert_to_torchscript(net, verify=True, inputs=[x], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


def test_onnx_export_matches(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = SEUNet(se="scse", **_kwargs(2, 1)).eval()
    x = torch.randn(1, 1, 32, 32)
    path = tmp_path / "seunet.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["pred"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), net(x), rtol=1e-4, atol=1e-5)
