"""Drop-in signatures: every call that builds MONAI's UNet / DynUNet / SegResNet builds ours the same way.

The cases follow MONAI's own parameterised tests (``tests/networks/nets/test_unet.py``, ``test_dynunet.py``,
``test_segresnet.py`` in Project-MONAI/MONAI: the same argument structures, positional and by keyword, with smaller
inputs and filters to stay fast). With ``se=None`` ours is MONAI's network (same ``state_dict`` keys and values for
the same seed, same outputs); with ``se="scse"`` the same call builds a network of the same output shape with SE
layers. Ours are keyword-only after MONAI's parameters.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from monai.networks.nets import DynUNet, SegResNet, UNet

from scse_monai.networks import count_se_parameters
from scse_monai.networks.nets import SEDynUNet, SESegResNet, SEUNet
from scse_monai.networks.nets.signatures import network_definition

from . import net_checks as checks

LEAKY = ("leakyrelu", {"inplace": True, "negative_slope": 0.2})

#: (MONAI class, ours, positional args, keyword args, input shape)
CASES = [
    # the example: UNet's kernel_size, up_kernel_size and num_res_units given positionally
    (UNet, SEUNet, (2, 1, 3, (16, 32, 64), (2, 2), 3, 3, 1), {}, (2, 1, 32, 32)),
    # every UNet parameter positional
    (UNet, SEUNet, (2, 1, 3, (8, 16), (2,), 3, 3, 0, "RELU", "BATCH", 0.1, False, "NA"), {}, (2, 1, 16, 16)),
    (UNet, SEUNet, (1, 2, 2, (4, 8, 16), (2, 2)), {"num_res_units": 2}, (2, 2, 32)),
    # MONAI test_unet TEST_CASE_0, 4, 5 and 6 (keywords)
    (UNet, SEUNet, (), dict(spatial_dims=2, in_channels=1, out_channels=3, channels=(16, 32, 64), strides=(2, 2),
                            num_res_units=0), (2, 1, 32, 32)),
    (UNet, SEUNet, (), dict(spatial_dims=3, in_channels=4, out_channels=3, channels=(8, 16, 32), strides=(2, 2),
                            num_res_units=1, norm="batch"), (2, 4, 16, 8, 16)),
    (UNet, SEUNet, (), dict(spatial_dims=3, in_channels=4, out_channels=3, channels=(8, 16, 32), strides=(2, 2),
                            num_res_units=1, act=("leakyrelu", {"negative_slope": 0.2}), adn_ordering="NA"),
     (2, 4, 16, 8, 16)),
    (UNet, SEUNet, (3, 4, 3), dict(channels=(8, 16, 32), strides=(2, 2), num_res_units=1,
                                   act=(torch.nn.LeakyReLU, {"negative_slope": 0.2})), (2, 4, 16, 8, 16)),
    # MONAI test_dynunet 2D cases: every parameter positional, then by keyword
    (DynUNet, SEDynUNet, (2, 2, 2, (3, 3, 3, 1), (2, 2, 2, 1), (2, 2, 1), (8, 16, 32, 32), None, "batch", LEAKY,
                          False, 1, True, False), {}, (1, 2, 32, 32)),
    (DynUNet, SEDynUNet, (), dict(spatial_dims=2, in_channels=3, out_channels=2,
                                  kernel_size=((3, 1), 1, (3, 3), (1, 1)), strides=(1, 1, 1, 1),
                                  upsample_kernel_size=(1, 1, 1), filters=(8, 16, 16, 32), norm_name="batch",
                                  act_name=LEAKY, deep_supervision=False, res_block=False, dropout=None),
     (1, 3, 16, 16)),
    # test_dynunet 3D (anisotropic kernels and strides, deep supervision, alpha dropout) and deep supervision cases
    (DynUNet, SEDynUNet, (3, 1, 3, (3, (1, 1, 3), 3, 3), ((1, 2, 1), 2, 2, 1), (2, 2, 1)),
     dict(filters=(8, 16, 32, 48), norm_name=("INSTANCE", {"affine": True}), deep_supervision=True, res_block=True,
          dropout=("alphadropout", {"p": 0.25})), (1, 1, 16, 16, 16)),
    (DynUNet, SEDynUNet, (), dict(spatial_dims=2, in_channels=1, out_channels=2, kernel_size=[3] * 5,
                                  strides=(2, 1, 1, 2, 2), upsample_kernel_size=(1, 1, 2, 2),
                                  norm_name=("group", {"num_groups": 16}), deep_supervision=True, deep_supr_num=2,
                                  res_block=False), (1, 1, 32, 32)),
    # MONAI test_segresnet: defaults, positional, every parameter positional, keywords
    (SegResNet, SESegResNet, (), {}, (1, 1, 16, 16, 16)),
    (SegResNet, SESegResNet, (2, 8, 1, 2), {}, (2, 1, 16, 16)),
    (SegResNet, SESegResNet, (3, 8, 1, 3, 0.2, ("RELU", {"inplace": True}), ("GROUP", {"num_groups": 8}), "", 8,
                              False, (1, 2, 2), (1, 1), "deconv"), {}, (2, 1, 16, 16, 8)),
    (SegResNet, SESegResNet, (), dict(spatial_dims=2, init_filters=16, out_channels=2, dropout_prob=0.2,
                                      norm=("batch", {"track_running_stats": False}), upsample_mode="pixelshuffle"),
     (2, 1, 16, 16)),
]
IDS = [f"{base.__name__}-{i}" for i, (base, *_) in enumerate(CASES)]


@pytest.mark.parametrize("base, ours, args, kwargs, shape", CASES, ids=IDS)
def test_se_none_is_monai_network_for_the_same_call(base, ours, args, kwargs, shape) -> None:
    torch.manual_seed(0)
    baseline = base(*args, **kwargs)
    torch.manual_seed(0)
    net = ours(*args, se=None, **kwargs)
    checks.assert_same_network(baseline, net, torch.randn(shape))


@pytest.mark.parametrize("base, ours, args, kwargs, shape", CASES, ids=IDS)
def test_the_same_call_builds_the_se_network(base, ours, args, kwargs, shape) -> None:
    x = torch.randn(shape)
    net = ours(*args, se="scse", **kwargs).eval()
    with torch.no_grad():
        expected = base(*args, **kwargs).eval()(x).shape
        assert net(x).shape == expected
    assert count_se_parameters(net) > 0


@pytest.mark.parametrize("base, ours", [(UNet, SEUNet), (DynUNet, SEDynUNet), (SegResNet, SESegResNet)])
def test_signature_is_monai_then_ours_keyword_only(base, ours) -> None:
    monai_params = list(inspect.signature(base).parameters.values())
    params = list(inspect.signature(ours).parameters.values())
    assert params[: len(monai_params)] == monai_params
    extra = params[len(monai_params):]
    assert extra and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)
    assert extra[0].name == "se" and extra[0].default == "scse"


def test_default_se_is_scse() -> None:
    net = SEUNet(2, 1, 3, (4, 8), (2,))
    assert net.se == "scse" and count_se_parameters(net) > 0


@pytest.mark.parametrize("call, accepted", [
    (lambda: SEUNet(4, 1, 3, (4, 8), (2,)), "[1, 2, 3]"),
    (lambda: SEUNet(spatial_dims="2", in_channels=1, out_channels=3, channels=(4, 8), strides=(2,)), "[1, 2, 3]"),
    (lambda: SEDynUNet(4, 1, 3, [3, 3], [1, 2], [2]), "[1, 2, 3]"),
    (lambda: SEDynUNet(True, 1, 3, [3, 3], [1, 2], [2]), "[1, 2, 3]"),
    (lambda: SESegResNet(4), "[2, 3]"),
    (lambda: SESegResNet(spatial_dims=1), "[2, 3]"),
])
def test_spatial_dims_out_of_range_is_a_value_error_naming_it(call, accepted) -> None:
    with pytest.raises(ValueError, match=re.escape(f"spatial_dims must be one of {accepted}, got")):
        call()


@pytest.mark.parametrize("kwargs, message", [
    ({"placement": "P9"}, "unknown SE placement 'P9'; expected one of"),
    ({"placement": 5}, "placement must be a name or a list of parts, got 5"),
    ({"placement": []}, r"no part in SE placement \[\]"),
    ({"placement": ["encoder", "skip"]}, r"unknown UNet parts \['skip'\]"),
    ({"se_bottleneck": "no"}, r"se_bottleneck: 'no' is not a boolean; expected true/false/True/False/1/0 or null/None"),
    ({"se_bottleneck": 2}, r"se_bottleneck: 2 is not a boolean; expected true/false/True/False/1/0 or null/None"),
])
def test_bad_seunet_arguments_are_value_errors_naming_them(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SEUNet(2, 1, 3, (4, 8), (2,), **kwargs)


def test_command_line_spellings_of_null_and_booleans() -> None:
    """``--network_def#se_bottleneck false`` / ``#placement null`` arrive as strings from the bundle's command line."""
    assert SEUNet(2, 1, 3, (4, 8), (2,), se="sse", se_bottleneck="false").se_parts == {"encoder", "decoder"}
    assert SEUNet(2, 1, 3, (4, 8), (2,), se="sse", placement="null").se_parts == {"encoder", "decoder", "bottleneck"}


@pytest.mark.parametrize("ours, args", [
    (SEUNet, (2, 1, 3, (4, 8), (2,))),
    (SEDynUNet, (2, 1, 3, [3, 3], [1, 2], [2])),
    (SESegResNet, (2,)),
])
def test_json_style_dict_as_se_is_refused_before_anything_is_built(ours, args) -> None:
    """``{"name": "scse", "r": 4}`` is not a spec: the networks hand ``se`` to the factory's check
    (``normalize_se_spec``) first, so the error names ``se`` and no layer is built (the RNG is untouched)."""
    state = torch.random.get_rng_state()
    with pytest.raises(ValueError, match=re.escape("se={'name': 'scse', 'r': 4}: a dict is not an SE spec")):
        ours(*args, se={"name": "scse", "r": 4})
    assert torch.equal(torch.random.get_rng_state(), state)


def test_unknown_or_missing_argument_is_monai_s_type_error_naming_our_class() -> None:
    with pytest.raises(TypeError, match="SEUNet: missing a required argument: 'strides'"):
        SEUNet(2, 1, 3, (4, 8))
    with pytest.raises(TypeError, match=r"SEDynUNet: got an unexpected keyword argument 'sE'.*\['se'\]"):
        SEDynUNet(2, 1, 3, [3, 3], [1, 2], [2], sE="scse")
    with pytest.raises(TypeError):
        UNet(2, 1, 3, (4, 8))


@pytest.mark.parametrize("typed, expected", [("false", False), ("False", False), ("0", False), ("true", True)])
def test_monai_boolean_arguments_typed_on_a_command_line_mean_what_they_say(typed: str, expected: bool) -> None:
    """`--network_def#res_block false` hands DynUNet the string "false", which MONAI would take as true."""
    kwargs = dict(spatial_dims=2, in_channels=1, out_channels=2, kernel_size=[3, 3, 3], strides=[1, 2, 2],
                  upsample_kernel_size=[2, 2])
    ours = SEDynUNet(**kwargs, res_block=typed, se=None)
    reference = DynUNet(**kwargs, res_block=expected)
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert ours.init_arguments["res_block"] is expected
    with pytest.raises(ValueError, match=r"network_def#res_block: 'off' is not a boolean"):
        SEDynUNet(**kwargs, res_block="off")


def test_the_networks_record_their_resolved_definition() -> None:
    net = SEUNet(2, 1, 3, (4, 8), (2,), 3, 3, 1, se="null", se_bottleneck="true")
    definition = network_definition(net)
    assert definition["_target_"] == "scse_monai.networks.nets.seunet.SEUNet"
    assert definition["channels"] == (4, 8) and definition["num_res_units"] == 1 and definition["se"] is None
    assert definition["se_bottleneck"] is True and definition["placement"] is None
    assert network_definition(UNet(2, 1, 3, (4, 8), (2,))) is None
    torch.jit.script(net)  # the recorded arguments stay out of TorchScript's way
