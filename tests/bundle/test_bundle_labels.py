"""The bundle's label space derives from (configs) or is checked against (metadata) scse_monai's one definition."""

from __future__ import annotations

import json

from monai.bundle import ConfigParser

from scse_monai.apps.chaos.labels import LABELS, NUM_CLASSES, ORGANS

from ..conftest import BUNDLE

CONFIGS = BUNDLE / "configs"


def test_metadata_channel_def_matches_the_label_space() -> None:
    # MONAI Label reads the label names from metadata.json as data, so they are written there; this keeps them equal.
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"] == {str(value): name for name, value in LABELS.items()}
    assert pred["num_channels"] == NUM_CLASSES
    described = ", ".join(f"{value} {name}" for name, value in LABELS.items())
    assert meta["label_classes"] == meta["pred_classes"] == described


def test_configs_derive_the_class_count() -> None:
    merged = (["train.json"], ["inference.json"], ["train.json", "evaluate.json"],
              ["train.json", "multi_gpu_train.json"])
    for files in merged:
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / f) for f in files])
        assert parser.get_parsed_content("num_classes") == NUM_CLASSES, files
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    assert len(parser.get_parsed_content("sample_ratios")) == NUM_CLASSES
    metrics = parser.get_parsed_content("validate#additional_metrics")
    assert set(metrics) == {"val_chaos_score", *(f"val_dice_{o.replace(' ', '_')}" for o in ORGANS.values())}
