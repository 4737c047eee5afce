"""CHAOSMetric (a MONAI CumulativeIterationMetric) against the metric functions, on tiny labelled volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate

from scse_monai.errors import InvalidInputError
from scse_monai.metrics import METRIC_KEYS, ORGANS, CHAOSMetric, compute_chaos_metrics, evaluate_label_volumes
from scse_monai.metrics.chaos_metric import case_name, label_map


def volumes() -> tuple[np.ndarray, np.ndarray]:
    """A reference with liver and spleen, and a prediction whose spleen is shifted by one slice."""
    ref = np.zeros((12, 12, 10), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[7:11, 7:11, 4:8] = 4
    pred = ref.copy()
    pred[7:11, 7:11, 4:8] = 0
    pred[7:11, 7:11, 5:9] = 4
    return pred, ref


def affine(spacing) -> torch.Tensor:
    aff = np.diag([-spacing[0], *spacing[1:], 1.0])  # RAS-style flip: distances are unchanged
    aff[:3, 3] = (-50.0, 20.0, 100.0)
    return torch.as_tensor(aff)


def item(labels: np.ndarray, name: str | None, spacing, one_hot: bool = False) -> MetaTensor:
    """A channel-first MetaTensor of ``labels`` (label map or one-hot) with an affine and a file name."""
    t = torch.as_tensor(labels, dtype=torch.long)
    data = torch.nn.functional.one_hot(t, len(ORGANS) + 1).permute(3, 0, 1, 2).float() if one_hot else t[None].float()
    meta = {"filename_or_obj": f"/data/labelsTr/{name}.nii.gz"} if name else {}
    return MetaTensor(data, affine=affine(spacing), meta=meta)


def test_label_map_and_case_name():
    pred, _ = volumes()
    np.testing.assert_array_equal(label_map(item(pred, None, (1, 1, 1), one_hot=True)), pred)
    np.testing.assert_array_equal(label_map(item(pred, None, (1, 1, 1))), pred)
    assert case_name("/a/labelsTr/mr_3_t2spir.nii.gz") == "mr_3_t2spir" and case_name("b/ct_1.nii") == "ct_1"
    with pytest.raises(InvalidInputError, match="channel-first"):
        label_map(np.zeros((4, 4, 4)))


def test_records_equal_the_functions_and_aggregate_is_the_summary_mean():
    pred, ref = volumes()
    spacing = (0.8, 0.8, 2.5)
    ct_ref = (ref == 1).astype(np.uint8)
    ct_pred = ct_ref.copy()
    ct_pred[2:6, 2:6, 6] = 1  # liver one slice too long
    metric = CHAOSMetric()
    metric(y_pred=[item(pred, None, spacing, one_hot=True)], y=[item(ref, "mr_1_t2spir", spacing, one_hot=True)])
    metric(y_pred=[item(ct_pred, None, spacing)], y=[item(ct_ref, "ct_1", spacing)])
    res = metric.results()
    assert list(res["cases"]) == ["mr_1_t2spir", "ct_1"]
    # exactly the organisers' computation: the functional path gives identical floats
    assert res["cases"]["mr_1_t2spir"] == evaluate_label_volumes(pred, ref, affine(spacing).numpy())
    spleen = compute_chaos_metrics(pred == 4, ref == 4, spacing)
    assert res["cases"]["mr_1_t2spir"]["spleen"]["mssd"] == pytest.approx(2.5) == pytest.approx(spleen["mssd"])
    liver_ct = compute_chaos_metrics(ct_pred, ct_ref, spacing)
    assert res["cases"]["ct_1"]["liver"]["ravd"] == pytest.approx(liver_ct["ravd"]) == pytest.approx(25.0)
    # summary: organs over the cases holding them; "mean" over the cases' organ means
    mr_mean = (100.0 + spleen["score"]) / 2
    assert res["mean"]["mean"]["score"] == pytest.approx((mr_mean + liver_ct["score"]) / 2)
    assert res["mean"]["liver"]["score"] == pytest.approx((100.0 + liver_ct["score"]) / 2)
    assert metric.aggregate().item() == pytest.approx(res["mean"]["mean"]["score"])
    # details: (cases, organs) per key, NaN where the reference lacks the organ
    details = metric.details()
    assert list(details) == list(METRIC_KEYS)
    assert details["score"].shape == (2, len(ORGANS))
    assert math.isnan(details["dice"][1, 3]) and details["dice"][1, 0] == pytest.approx(liver_ct["dice"])


def test_metric_name_selects_what_aggregate_reduces():
    pred, ref = volumes()
    metric = CHAOSMetric(metric_name="mssd")
    metric(y_pred=[item(pred, None, (1, 1, 2))], y=[item(ref, "a", (1, 1, 2))])
    assert metric.aggregate().item() == pytest.approx((0.0 + 2.0) / 2)  # liver exact, spleen one 2 mm slice
    with pytest.raises(ValueError, match="hausdorff"):
        CHAOSMetric(metric_name="hausdorff")


def test_batched_tensors_reset_and_duplicate_names():
    pred, ref = volumes()
    batch = list_data_collate([{"p": item(pred, None, (1, 1, 1)), "y": item(ref, "c", (1, 1, 1))}] * 2)
    metric = CHAOSMetric()
    metric(y_pred=batch["p"], y=batch["y"])
    assert list(metric.results()["cases"]) == ["c", "c#2"]
    metric.reset()
    assert metric.results() == {"cases": {}, "mean": {}} and math.isnan(metric.aggregate().item())


def test_cases_without_organs_are_left_out_and_geometry_is_required():
    pred, ref = volumes()
    metric = CHAOSMetric()
    metric(y_pred=[item(pred, None, (1, 1, 1))], y=[item(np.zeros_like(ref), "empty", (1, 1, 1))])
    assert metric.results()["cases"] == {}
    with pytest.raises(InvalidInputError, match="affine"):
        metric(y_pred=[torch.as_tensor(pred[None])], y=[torch.as_tensor(ref[None])])


def test_custom_organs():
    pred, ref = volumes()
    metric = CHAOSMetric(organs={"4": "spleen"})
    metric(y_pred=[item(pred, None, (1, 1, 1))], y=[item(ref, "x", (1, 1, 1))])
    assert set(metric.results()["cases"]["x"]) == {"spleen", "mean"}
