"""CHAOSMetricsSaver on a tiny ignite Engine that returns decollated MONAI-style outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor, list_data_collate

from scse_monai.metrics.chaos import compute_chaos_metrics
from scse_monai.metrics.handler import CHAOSMetricsSaver, label_map


def _volumes():
    ref = np.zeros((12, 12, 10), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[7:11, 7:11, 4:8] = 4
    pred = ref.copy()
    pred[7:11, 7:11, 4:8] = 0
    pred[7:11, 7:11, 5:9] = 4  # spleen shifted by one slice
    return pred, ref


def _affine(spacing):
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = (-50.0, 20.0, 100.0)
    aff[0, 0] *= -1  # RAS-style flip: distances are unchanged
    return aff


def _item(pred, ref, name, spacing, one_hot):
    aff = torch.as_tensor(_affine(spacing))
    meta = {"filename_or_obj": f"/data/labelsTr/{name}.nii.gz"}
    if one_hot:
        p = torch.nn.functional.one_hot(torch.as_tensor(pred, dtype=torch.long), 5).permute(3, 0, 1, 2).float()
    else:
        p = torch.as_tensor(pred[None], dtype=torch.float32)
    return {
        "pred": MetaTensor(p, affine=aff, meta=dict(meta)),
        "label": MetaTensor(torch.as_tensor(ref[None]), affine=aff, meta=dict(meta)),
    }


def test_label_map_one_hot_and_labels():
    pred, _ = _volumes()
    one_hot = np.eye(5, dtype=np.float32)[pred].transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(label_map(one_hot), pred)
    np.testing.assert_array_equal(label_map(torch.as_tensor(pred[None], dtype=torch.float32)), pred)


def test_handler_writes_csv_and_json(tmp_path):
    pred, ref = _volumes()
    spacing = (0.8, 0.8, 2.5)
    ct_pred, ct_ref = (pred == 1).astype(np.uint8), (ref == 1).astype(np.uint8)
    ct_pred[2:6, 2:6, 6] = 1  # liver one slice too long
    batches = [
        [_item(pred, ref, "mr_1_t2spir", spacing, one_hot=True)],
        [_item(ct_pred, ct_ref, "ct_1", spacing, one_hot=False)],
    ]
    engine = Engine(lambda eng, batch: batch)
    saver = CHAOSMetricsSaver(output_dir=str(tmp_path / "eval"))
    saver.attach(engine)
    engine.run(batches, max_epochs=1)

    data = json.loads((tmp_path / "eval" / "chaos_metrics.json").read_text())
    assert set(data["cases"]) == {"mr_1_t2spir", "ct_1"}
    assert set(data["cases"]["mr_1_t2spir"]) == {"liver", "spleen", "mean"}
    spleen = compute_chaos_metrics(pred == 4, ref == 4, spacing)
    for k, v in spleen.items():
        assert data["cases"]["mr_1_t2spir"]["spleen"][k] == pytest.approx(v)
    assert spleen["mssd"] == pytest.approx(2.5)  # one slice at 2.5 mm: the affine's spacing was used
    liver_ct = compute_chaos_metrics(ct_pred, ct_ref, spacing)
    assert data["cases"]["ct_1"]["liver"]["ravd"] == pytest.approx(liver_ct["ravd"]) == pytest.approx(25.0)
    mr_mean = (100.0 + spleen["score"]) / 2
    assert data["mean"]["mean"]["score"] == pytest.approx((mr_mean + liver_ct["score"]) / 2)
    assert data["mean"]["liver"]["score"] == pytest.approx((100.0 + liver_ct["score"]) / 2)

    with open(tmp_path / "eval" / "chaos_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [(r["case"], r["organ"]) for r in rows]
    assert keys == [
        ("mr_1_t2spir", "liver"),
        ("mr_1_t2spir", "spleen"),
        ("mr_1_t2spir", "mean"),
        ("ct_1", "liver"),
        ("ct_1", "mean"),
        ("mean", "liver"),
        ("mean", "spleen"),
        ("mean", "mean"),
    ]
    assert float(rows[-1]["score"]) == pytest.approx(data["mean"]["mean"]["score"])


def test_handler_resets_each_epoch_and_accepts_batched_dict(tmp_path):
    pred, ref = _volumes()
    item = _item(pred, ref, "mr_2_t2spir", (1.0, 1.0, 1.0), one_hot=False)
    batch = list_data_collate([item])  # collated form: decollated by the handler
    engine = Engine(lambda eng, b: b)
    CHAOSMetricsSaver(output_dir=str(tmp_path)).attach(engine)
    engine.run([batch], max_epochs=2)
    data = json.loads((tmp_path / "chaos_metrics.json").read_text())
    assert list(data["cases"]) == ["mr_2_t2spir"]  # not duplicated by the second epoch
