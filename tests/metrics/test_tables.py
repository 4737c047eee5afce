"""Summary, rows, CSV and strict JSON of CHAOS results (``scse-monai evaluate``'s output)."""

from __future__ import annotations

import json
import math

import pytest

from scse_monai.metrics.chaos import chaos_scores, summarise_cases
from scse_monai.metrics.tables import results_to_json, results_to_rows, rows_to_csv


def test_summary_rows_csv_json():
    a = {"liver": chaos_scores({"dice": 0.9, "ravd": 1.0, "assd": 1.5, "mssd": 12.0})}
    a["liver"].update({"dice": 0.9, "ravd": 1.0, "assd": 1.5, "mssd": 12.0})
    a["mean"] = dict(a["liver"])
    b = {"liver": dict(a["liver"], dice=0.7, score=10.0), "spleen": dict(a["liver"], score=30.0)}
    b["mean"] = dict(b["liver"], dice=0.8, score=20.0)
    summary = summarise_cases({"x": a, "y": b})
    assert summary["liver"]["dice"] == pytest.approx(0.8)
    assert summary["spleen"]["score"] == pytest.approx(30.0)  # only where present
    assert summary["mean"]["score"] == pytest.approx((a["mean"]["score"] + 20.0) / 2)
    rows = results_to_rows({"x": a, "y": b})
    assert [(r["case"], r["organ"]) for r in rows][-3:] == [("mean", "liver"), ("mean", "spleen"), ("mean", "mean")]
    text = rows_to_csv(rows)
    assert text.splitlines()[0].startswith("case,organ,dice,ravd,assd,mssd,score_dice")
    assert len(text.splitlines()) == 1 + len(rows)
    assert json.loads(results_to_json({"liver": {"ravd": math.inf}})) == {"liver": {"ravd": None}}
