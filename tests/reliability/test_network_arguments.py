"""Corpus round 3, network arguments: the SE factory and the SE networks refuse what they cannot build with a
``ValueError`` naming the argument and the accepted values (never a ZeroDivisionError, IndexError or TypeError from
deep inside), and build what is valid after all (command-line spellings included)."""

from __future__ import annotations

import pytest
from monai.networks.nets import DynUNet

from scse_monai.networks.layers import get_se_layer
from scse_monai.networks.nets import SEDynUNet, SESegResNet, SEUNet

from .corpus import record

DYN = dict(spatial_dims=3, in_channels=1, out_channels=2, kernel_size=[3, 3, 3], strides=[1, 2, 2],
           upsample_kernel_size=[2, 2])
UNET = dict(spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8), strides=(2,))

REFUSED = [
    ("r = 0", lambda: get_se_layer(("cse", {"r": 0}), 2, 8), "r must be an integer in [1, in_channels=8]"),
    ("r > channels", lambda: get_se_layer(("scse", {"r": 16}), 2, 8), "got r=16"),
    ("r negative", lambda: SEDynUNet(**DYN, se=("scse", {"r": -1})), "got r=-1"),
    ("r not an integer", lambda: get_se_layer(("scse", {"r": 2.5}), 2, 8), "got r=2.5"),
    ("r as text", lambda: get_se_layer(("scse", {"r": "two"}), 2, 8), "r must be an integer"),
    ("spatial_dims 4 (layer)", lambda: get_se_layer("scse", 4, 8), "spatial_dims must be 1, 2 or 3"),
    ("spatial_dims 4 (UNet)", lambda: SEUNet(**{**UNET, "spatial_dims": 4}), "spatial_dims must be one of [1, 2, 3]"),
    ("spatial_dims 1 (SegResNet)", lambda: SESegResNet(spatial_dims=1), "spatial_dims must be one of [2, 3]"),
    ("JSON-style dict as se", lambda: SEUNet(**UNET, se={"name": "scse", "r": 2}), "a dict is not an SE spec"),
    ("unknown SE name", lambda: get_se_layer("sce", 2, 8), "se='sce': By 'SCE', did you mean"),
    ("unknown aggregation", lambda: get_se_layer(("scse", {"aggregation": "maxx"}), 2, 8),
     "aggregation='maxx': By 'maxx', did you mean 'max'? Expected one of ['max', 'add', 'mul', 'concat']"),
    ("unknown SE argument", lambda: get_se_layer(("scse", {"bogus": 1}), 2, 8), "se arguments {'bogus': 1} do not fit"),
    ("a number as se", lambda: SEUNet(**UNET, se=5), "se=5"),
    ("unknown placement", lambda: SEUNet(**UNET, placement="P9"), "unknown SE placement 'P9'"),
    ("se_bottleneck not a boolean", lambda: SEUNet(**UNET, se_bottleneck="perhaps"),
     "se_bottleneck: 'perhaps' is not a boolean"),
    ("MONAI boolean not a boolean", lambda: SEDynUNet(**DYN, res_block="off"), "network_def#res_block: 'off' is not"),
]


@pytest.mark.parametrize("case, build, said", REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_network_arguments_are_value_errors_naming_them(case: str, build, said: str) -> None:
    try:
        build()
    except ValueError as e:
        ok = said in str(e)
        record("network arguments", "refused clearly" if ok else "escaped")
        assert ok, str(e)
    except Exception as e:  # noqa: BLE001 -- exactly what the corpus counts as escaped
        record("network arguments", "escaped")
        raise AssertionError(f"{type(e).__name__}: {e}") from e
    else:
        record("network arguments", "silent wrong")
        raise AssertionError(f"{case}: built without complaint")


ACCEPTED = [
    ("se null as typed", lambda: SEUNet(**UNET, se="null"), lambda net: net.se is None),
    ("se_bottleneck 'false' as typed", lambda: SEUNet(**UNET, se_bottleneck="false"),
     lambda net: "bottleneck" not in net.se_parts),
    ("res_block '0' as typed", lambda: SEDynUNet(**DYN, res_block="0", se=None),
     lambda net: list(net.state_dict()) == list(DynUNet(**DYN, res_block=False).state_dict())),
    ("se as a JSON list", lambda: SEUNet(**UNET, se=["scse", {"r": 2, "aggregation": "add"}]),
     lambda net: net.se == ["scse", {"r": 2, "aggregation": "add"}]),
]


@pytest.mark.parametrize("case, build, check", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_command_line_spellings_build_what_they_say(case: str, build, check) -> None:
    ok = bool(check(build()))
    record("network arguments", "correct result" if ok else "silent wrong")
    assert ok, case
