"""SE anywhere (add_se) on MONAI's and a user's networks, and SEUNet's named placements (TMI 2019, Table IV)."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
from monai.bundle import ConfigParser
from monai.networks.nets import AttentionUnet, BasicUNet, DynUNet, FlexibleUNet
from monai.networks.nets.attentionunet import ConvBlock
from monai.networks.nets.basic_unet import TwoConv
from parameterized import parameterized

from scse_monai.networks import (
    PLACEMENT_VARIANTS,
    add_se,
    count_parameters,
    count_se_parameters,
    iter_se_layers,
    select_modules,
)
from scse_monai.networks.blocks.squeeze_and_excitation import SpatialSELayer
from scse_monai.networks.nets import PAPER_POSITIONS, SEUNET_PLACEMENTS, SEUNet

from ..conftest import BUNDLE
from .nets.net_checks import assert_torchscript_matches, assert_training_step, closed_form

FEATURES = (4, 8, 8, 16, 16, 4)  # BasicUNet: conv_0, down_1..4, upcat_1's output
BASIC_PATTERN = r"conv_0|down_\d|upcat_\d"


def _basic_unet(dims: int, features=FEATURES) -> BasicUNet:
    return BasicUNet(spatial_dims=dims, in_channels=1, out_channels=3, features=features)


def _shape(dims: int) -> tuple[int, ...]:
    return (1, 1, *([32] * dims))


def _se_channels(net: nn.Module) -> list[int]:
    return [layer.sse.conv.in_channels if hasattr(layer, "sse") else layer.conv.in_channels
            for _, layer in iter_se_layers(net)]


@parameterized.expand([(2,), (3,)])
def test_basic_unet_encoder_and_decoder_blocks(dims: int) -> None:
    torch.manual_seed(0)
    plain = _basic_unet(dims)
    torch.manual_seed(0)
    net = add_se(_basic_unet(dims), BASIC_PATTERN, _shape(dims))
    assert [n for n, _ in iter_se_layers(net)] == ["conv_0.1", "down_1.1", "down_2.1", "down_3.1", "down_4.1",
                                                   "upcat_4.se", "upcat_3.se", "upcat_2.se", "upcat_1.se"]
    # channels measured by the dry run: encoders 4, 8, 8, 16, 16; UpCat outputs 16, 8, 8, 4 (upcat_1: features[5])
    assert _se_channels(net) == [4, 8, 8, 16, 16, 16, 8, 8, 4]
    expected = sum(closed_form(c, 2, "scse") for c in _se_channels(net))
    assert count_se_parameters(net) == expected == count_parameters(net) - count_parameters(plain)
    # the original modules keep their weights, under the wrapper's first child
    for name, module in plain.named_children():
        if name != "final_conv":
            inner = getattr(net, name)[0] if name.startswith(("conv", "down")) else getattr(net, name).block
            for a, b in zip(module.state_dict().values(), inner.state_dict().values(), strict=True):
                assert torch.equal(a, b), name
    x = torch.randn(2, *_shape(dims)[1:])
    assert net.eval()(x).shape == (2, 3, *x.shape[2:])


def test_basic_unet_by_type_trains_and_scripts() -> None:
    torch.manual_seed(0)
    net = add_se(_basic_unet(2, features=(32, 32, 32, 32, 32, 32)), TwoConv, _shape(2))
    # TwoConv: conv_0 and the second conv of every Down and UpCat (the outermost TwoConv inside them)
    assert len(list(iter_se_layers(net))) == 9
    assert_training_step(net, torch.randn(2, 1, 32, 32))
    assert_torchscript_matches(net, torch.randn(1, 1, 32, 32))


class _UserNet(nn.Module):
    """A user's own encoder-decoder with a block called as block(x, skip)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.enc2 = nn.Sequential(nn.Conv3d(8, 16, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.up = _UpBlock(16, 8)
        self.head = nn.Conv3d(12, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        return self.head(self.up(self.enc2(e1), e1))


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_skip: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(c_in, 4, 2, stride=2)
        self.c_out = 4 + c_skip  # emits a concatenation: no out_channels attribute to trust

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.relu_(torch.cat([self.up(x), skip], dim=1))


def test_user_network_by_predicate_with_two_input_block() -> None:
    net = add_se(_UserNet(), lambda name, m: name in ("enc1", "enc2", "up"), (1, 1, 8, 8, 8), se="sse")
    assert [n for n, _ in iter_se_layers(net)] == ["enc1.1", "enc2.1", "up.se"]
    assert _se_channels(net) == [8, 16, 12]
    assert count_se_parameters(net) == sum(closed_form(c, 2, "sse") for c in (8, 16, 12))
    torch.manual_seed(0)
    net = add_se(_UserNet(), r"enc\d|up", torch.zeros(1, 1, 8, 8, 8))
    assert_training_step(net, torch.randn(2, 1, 8, 8, 8))
    assert_torchscript_matches(net, torch.randn(1, 1, 8, 8, 8))


def test_attention_unet_by_type() -> None:
    net = add_se(AttentionUnet(2, 1, 3, channels=(4, 8, 16), strides=(2, 2)), ConvBlock, (1, 1, 32, 32))
    assert _se_channels(net) == [4, 8, 16]
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_flexible_unet_decoder_blocks() -> None:
    """FlexibleUNet's decoder calls its UpCat blocks as block(x, skip), the last ones with skip None."""
    net = FlexibleUNet(in_channels=1, out_channels=3, backbone="resnet10", spatial_dims=2)
    add_se(net, r"decoder\.blocks\.\d", (1, 1, 64, 64))
    assert [n for n, _ in iter_se_layers(net)] == [f"decoder.blocks.{i}.se" for i in range(5)]
    assert _se_channels(net) == list(net.decoder.blocks[i].block.convs.conv_1.conv.out_channels for i in range(5))
    assert net(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_se_none_and_existing_se_layers_are_left_alone() -> None:
    net = _basic_unet(2)
    keys = list(net.state_dict())
    assert add_se(net, BASIC_PATTERN, _shape(2), se=None) is net
    assert list(net.state_dict()) == keys
    seunet = SEUNet(2, 1, 3, (4, 8, 16), (2, 2), se="sse")
    se_names = [n for n, _ in iter_se_layers(seunet)]
    assert select_modules(seunet, SpatialSELayer) == []
    convs = select_modules(seunet, nn.Conv2d)
    assert convs and not any(c.startswith(tuple(se_names)) for c in convs)  # no conv inside an SE layer


def test_errors_name_the_module_and_leave_the_network_unchanged() -> None:
    with pytest.raises(ValueError, match="selects no module"):
        add_se(_basic_unet(2), "encoder", _shape(2))
    dynunet = DynUNet(2, 1, 3, [3, 3, 3], [1, 2, 2], [2, 2], filters=[4, 8, 16])
    keys = list(dynunet.state_dict())
    with pytest.raises(ValueError, match="does not reach the SE layers after \\['input_block'\\].*SEDynUNet"):
        add_se(dynunet, "input_block", (1, 1, 16, 16))
    assert list(dynunet.state_dict()) == keys and not list(iter_se_layers(dynunet))
    twice = nn.Sequential(nn.Conv2d(1, 4, 1))
    twice.forward = lambda x: twice[0](twice[0](x)[:, :1])  # a module reused within one forward pass
    with pytest.raises(ValueError, match="'0' \\(Conv2d\\) is called 2 times"):
        add_se(twice, nn.Conv2d, (1, 1, 8, 8))


# --- SEUNet's named placements: the paper's placement study -------------------------------------------------------

CHANNELS, STRIDES = (16, 32, 64, 128), (2, 2, 2)
# SE channels per part for CHANNELS: down layers 16/32/64, bottleneck 128, up layers 32/16, logits (5 classes)
EXPECTED = {
    "encoder": [16, 32, 64],
    "decoder": [32, 16],
    "bottleneck": [128],
    "classifier": [5],
    "encoder_decoder": [16, 32, 64, 32, 16],
    "encoder_decoder_bottleneck": [16, 32, 64, 128, 32, 16],
    "all": [16, 32, 64, 128, 32, 16, 5],
}


@parameterized.expand(list(EXPECTED.items()))
def test_seunet_placements(name: str, channels: list[int]) -> None:
    net = SEUNet(2, 1, 5, CHANNELS, STRIDES, se="sse", placement=name)
    assert _se_channels(net) == channels
    assert count_se_parameters(net) == sum(closed_form(c, 2, "sse") for c in channels)
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 5, 32, 32)


def test_paper_positions_and_defaults() -> None:
    assert set(SEUNET_PLACEMENTS) == set(EXPECTED)
    for label, name in PAPER_POSITIONS.items():
        assert _se_channels(SEUNet(2, 1, 5, CHANNELS, STRIDES, se="sse", placement=label)) == EXPECTED[name]
    default = SEUNet(2, 1, 5, CHANNELS, STRIDES, se="sse")
    assert _se_channels(default) == EXPECTED["encoder_decoder_bottleneck"]
    p5 = SEUNet(2, 1, 5, CHANNELS, STRIDES, se="sse", se_bottleneck=False)
    assert _se_channels(p5) == EXPECTED["encoder_decoder"]
    parts = SEUNet(2, 1, 5, CHANNELS, STRIDES, se="sse", placement=["bottleneck", "classifier"])
    assert _se_channels(parts) == [128, 5]


def test_placement_errors() -> None:
    with pytest.raises(ValueError, match="unknown SE placement 'P7'"):
        SEUNet(2, 1, 5, CHANNELS, STRIDES, placement="P7")
    with pytest.raises(ValueError, match="unknown UNet parts \\['skip'\\]"):
        SEUNet(2, 1, 5, CHANNELS, STRIDES, placement=["encoder", "skip"])
    with pytest.raises(ValueError, match="se_bottleneck=True contradicts placement='encoder'"):
        SEUNet(2, 1, 5, CHANNELS, STRIDES, placement="encoder", se_bottleneck=True)


@parameterized.expand(list(EXPECTED))
def test_placement_variants_apply_to_the_bundle_network(name: str) -> None:
    """The overrides that ``scse-monai ablate`` merges onto train.json give the named placement."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update({"network_def#channels": list(CHANNELS), "network_def#strides": list(STRIDES),
                   "network_def#se": "sse", **PLACEMENT_VARIANTS[name]})
    net = parser.get_parsed_content("network_def")
    assert _se_channels(net) == EXPECTED[name]


def test_readme_section_examples_run() -> None:
    """The code of README.md's "scSE in your network" section, as written."""
    section = (BUNDLE.parent / "README.md").read_text().split("## scSE in your network", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.S))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the project's own README
    assert len(list(iter_se_layers(scope["dyn"]))) == 7 and len(list(iter_se_layers(scope["seg"]))) == 7
    assert _se_channels(scope["p1"]) == [16, 32, 64]
    assert [n for n, _ in iter_se_layers(scope["net"])][-1] == "upcat_1.se"
