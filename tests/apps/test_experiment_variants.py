"""Ablation variants: SE kinds and the paper's placements map to bundle overrides that build the right network."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from scse_monai.apps.experiment import SE_VARIANTS, ablation_variants, variant_overrides
from scse_monai.bundle_paths import bundle_config
from scse_monai.errors import InvalidInputError
from scse_monai.networks import PLACEMENT_VARIANTS, iter_se_layers

SMALL = {"network_def#channels": [4, 8, 16, 32], "network_def#strides": [2, 2, 2], "network_def#num_res_units": 0}


def _se_count(variant: str) -> int:
    parser = ConfigParser()
    parser.read_config(str(bundle_config("train")))
    parser.update({**SMALL, **variant_overrides(variant)})
    return len(list(iter_se_layers(parser.get_parsed_content("network_def"))))


def test_every_variant_name_is_known_and_builds() -> None:
    names = ablation_variants()
    assert names[: len(SE_VARIANTS)] == list(SE_VARIANTS)
    assert {f"placement_{p}" for p in PLACEMENT_VARIANTS} <= set(names)
    assert variant_overrides("scse") == {"network_def#se": SE_VARIANTS["scse"]}
    assert variant_overrides("placement_encoder") == {"network_def#se": SE_VARIANTS["scse"],
                                                      **PLACEMENT_VARIANTS["encoder"]}


@pytest.mark.parametrize(
    "variant, count",
    [("none", 0), ("scse", 6),  # the bundle's default: 3 down + bottleneck + 2 up (the top up layer emits logits)
     ("placement_encoder", 3), ("placement_decoder", 2), ("placement_bottleneck", 1),
     ("placement_encoder_decoder", 5), ("placement_all", 7)],
)
def test_placements_give_the_papers_se_counts(variant: str, count: int) -> None:
    # P6 ("all") adds the classifier's SE on the logits: encoder 3 + bottleneck 1 + decoder 2 + classifier 1
    assert _se_count(variant) == count


def test_unknown_variant_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInputError, match="placement_encoder"):
        variant_overrides("placement_nowhere")
