"""The SE LayerFactory: names, typo suggestions, specs, user registration (also from a bundle config)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.bundle import ConfigParser
from monai.networks.blocks import ChannelSELayer
from parameterized import parameterized

from scse_monai.errors import InvalidInputError
from scse_monai.networks.blocks import ChannelSpatialSELayer, SpatialSELayer
from scse_monai.networks.layers import SE, SESpecError, get_se_layer, normalize_se_spec


@parameterized.expand([("cse", ChannelSELayer), ("SSE", SpatialSELayer), ("ScSe", ChannelSpatialSELayer)])
def test_lookup_is_case_insensitive(name: str, cls: type) -> None:
    assert SE[name] is cls


def test_attribute_constants() -> None:
    assert SE[SE.SCSE] is ChannelSpatialSELayer
    assert set(SE.names) >= {"CSE", "SSE", "SCSE"}


def test_typo_gets_did_you_mean() -> None:
    with pytest.raises(ValueError, match="did you mean 'SCSE'"):
        SE["scsee"]


@parameterized.expand([(name,) for name in SE.names])
def test_every_registered_layer_keeps_shape(name: str) -> None:
    for dims in (2, 3):
        layer = get_se_layer(name, spatial_dims=dims, in_channels=8)
        x = torch.randn(2, 8, *([4] * dims))
        assert layer(x).shape == x.shape


def test_get_se_layer_specs() -> None:
    assert isinstance(get_se_layer(None, 2, 4), nn.Identity)
    assert isinstance(get_se_layer("", 2, 4), nn.Identity)
    assert isinstance(get_se_layer("null", 2, 4), nn.Identity)  # `--network_def#se null` on a command line
    assert isinstance(get_se_layer("None", 2, 4), nn.Identity)
    layer = get_se_layer(("scse", {"r": 4, "aggregation": "add"}), 3, 16)
    assert isinstance(layer, ChannelSpatialSELayer) and layer.aggregation == "add"
    assert layer.cse.fc[0].out_features == 4
    from_list = get_se_layer(["cse", {"r": 8}], 2, 16)  # what a JSON config gives
    assert isinstance(from_list, ChannelSELayer) and from_list.fc[0].out_features == 2
    assert isinstance(get_se_layer(SpatialSELayer, 2, 4), SpatialSELayer)
    assert isinstance(get_se_layer((SpatialSELayer, {}), 2, 4), SpatialSELayer)


def test_malformed_spec() -> None:
    with pytest.raises(TypeError, match="Layer specifiers"):
        get_se_layer(("scse", "r=2"), 2, 4)


@parameterized.expand(
    [
        ("cse_r_zero", ("cse", {"r": 0}), 2, 8, r"r must be an integer in \[1, in_channels=8\].*got r=0"),
        ("cse_r_too_large", ["cse", {"r": 9}], 2, 8, r"in_channels=8.*got r=9"),
        ("cse_r_float", ("cse", {"r": 2.0}), 2, 8, r"got r=2\.0"),
        ("scse_r_zero", ("scse", {"r": 0}), 2, 8, r"r must be.*got r=0"),
        ("spatial_dims_4", "scse", 4, 8, r"spatial_dims must be 1, 2 or 3 for an SE layer, got 4"),
        ("spatial_dims_0_cse", "cse", 0, 8, r"spatial_dims must be 1, 2 or 3"),
        ("in_channels_0", "sse", 2, 0, r"in_channels must be a positive integer for an SE layer, got 0"),
        ("unknown_name", "scsee", 2, 8, r"se=.scsee.: By .SCSEE., did you mean .SCSE."),
        ("dict_spec", {"name": "scse", "r": 2}, 2, 8, r"se=\{'name': 'scse', 'r': 2\}: a dict is not an SE spec\. "
         r"Write \['scse', \{'r': 2\}\] instead\. Accepted: .*registered names: cse, scse, sse"),
        ("dict_without_name", {"r": 2}, 2, 8, r"a dict is not an SE spec\. Accepted"),
        ("three_elements", ["scse", {"r": 2}, 3], 2, 8, r"se=\['scse', \{'r': 2\}, 3\]: .*Accepted"),
        ("not_a_spec", 5, 2, 8, r"se=5: .*Accepted"),
        ("unknown_argument", ("scse", {"ratio": 2}), 2, 8,
         r"se arguments \{'ratio': 2\} do not fit ChannelSpatialSELayer.*unexpected keyword argument 'ratio'"),
    ]
)
def test_bad_arguments_are_value_errors_naming_the_argument(_: str, spec, dims: int, channels: int, message: str):
    """Issue 25: every bad spec or argument is a ValueError whose message names the argument and what is accepted
    (MONAI's ChannelSELayer would raise ZeroDivisionError for r=0 and build a zero-width MLP for r > C)."""
    with pytest.raises(ValueError, match=message) as caught:
        get_se_layer(spec, spatial_dims=dims, in_channels=channels)
    assert isinstance(caught.value, InvalidInputError)


def test_wrong_form_is_refused_when_a_network_is_built() -> None:
    """The networks check their spec at construction (normalize_se_spec), not at their first SE layer."""
    with pytest.raises(SESpecError, match="a dict is not an SE spec"):
        normalize_se_spec({"name": "scse"})
    assert normalize_se_spec(["scse", {"r": 2}]) == ["scse", {"r": 2}]
    assert normalize_se_spec(" None ") is None


class ToySE(nn.Module):
    """A third-party block following the registry contract (spatial_dims, in_channels, **kwargs)."""

    def __init__(self, spatial_dims: int, in_channels: int, scale: float = 0.5) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, in_channels) + (1,) * spatial_dims, scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_user_registration_usable_from_bundle_config(se_registry) -> None:
    se_registry.add_factory_class("toyse", ToySE)
    config = {
        "network_def": {
            "_target_": "scse_monai.networks.nets.SEUNet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 3,
            "channels": [4, 8, 16],
            "strides": [2, 2],
            "se": ["toyse", {"scale": 0.25}],
        }
    }
    net = ConfigParser(config).get_parsed_content("network_def")
    toys = [m for m in net.modules() if isinstance(m, ToySE)]
    assert len(toys) == 4  # 2 down + bottleneck + 1 non-top up layer
    assert all(float(m.scale.detach().mean()) == 0.25 for m in toys)
    assert net(torch.randn(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def test_se_registry_fixture_restores_the_factory(se_registry) -> None:
    before = SE.names
    se_registry.add_factory_class("leaky", ToySE)
    assert "LEAKY" in SE.names
    # what the fixture's teardown does, checked here (it runs after this test)
    assert "TOYSE" not in before, "an earlier test leaked its registration"
