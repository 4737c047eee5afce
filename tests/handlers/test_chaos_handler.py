"""CHAOSMetricHandler on a tiny ignite Engine, saved by MONAI's MetricsSaver."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from ignite.engine import Engine
from monai.handlers import MetricsSaver, from_engine

from scse_monai.handlers import CHAOSMetricHandler, organ_dice_metrics
from scse_monai.metrics import METRIC_KEYS, ORGANS, evaluate_label_volumes

from ..metrics.test_chaos_metric import affine, item, volumes


def _engine(tmp_path):
    engine = Engine(lambda eng, batch: batch)
    CHAOSMetricHandler(output_transform=from_engine(["pred", "label"])).attach(engine, "val_chaos_score")
    for name, handler in organ_dice_metrics().items():
        handler.attach(engine, name)
    MetricsSaver(
        save_dir=str(tmp_path),
        metric_details=[f"chaos_{k}" for k in METRIC_KEYS],
        summary_ops=["mean", "notnans"],
        batch_transform=lambda batch: [{"filename_or_obj": i["label"].meta["filename_or_obj"]} for i in batch],
    ).attach(engine)
    return engine


def test_engine_metric_details_and_metrics_saver(tmp_path):
    pred, ref = volumes()
    ct_ref = (ref == 1).astype(np.uint8)
    batches = [
        [{"pred": item(pred, None, (1, 1, 2), one_hot=True), "label": item(ref, "mr_1", (1, 1, 2), one_hot=True)}],
        [{"pred": item(ct_ref, None, (1, 1, 2), one_hot=True), "label": item(ct_ref, "ct_1", (1, 1, 2), True)}],
    ]
    engine = _engine(tmp_path)
    engine.run(batches, max_epochs=2)  # the second epoch starts afresh: two cases, not four
    mr = evaluate_label_volumes(pred, ref, affine((1, 1, 2)).numpy())
    assert engine.state.metrics["val_chaos_score"] == pytest.approx((mr["mean"]["score"] + 100.0) / 2)
    assert engine.state.metrics["val_dice_spleen"] == pytest.approx(mr["spleen"]["dice"])
    assert "val_chaos_score" not in engine.state.metric_details  # replaced by 2-D tables
    with open(tmp_path / "chaos_mssd_raw.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["filename"] for r in rows] == ["/data/labelsTr/mr_1.nii.gz", "/data/labelsTr/ct_1.nii.gz"]
    assert list(rows[0])[1:] == [f"class{i}" for i in range(len(ORGANS))] + ["mean"]
    assert float(rows[0]["class3"]) == pytest.approx(mr["spleen"]["mssd"], abs=1e-4)  # class3 = spleen (label 4)
    assert math.isnan(float(rows[1]["class3"])) and float(rows[1]["class0"]) == 0.0
    with open(tmp_path / "chaos_score_summary.csv", newline="") as f:
        summary = {r["class"]: r for r in csv.DictReader(f)}
    assert float(summary["mean"]["mean"]) == pytest.approx(engine.state.metrics["val_chaos_score"], abs=1e-4)
    assert float(summary["class0"]["notnans"]) == 2 and float(summary["class1"]["notnans"]) == 0
