"""Summary, rows, CSV and strict JSON of CHAOS results (``scse-monai evaluate``'s output)."""

from __future__ import annotations

import json
import math
import re

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


def test_one_table_writer_for_evaluate_and_the_reports():
    """``evaluate``'s printed table is the reports' markdown table, padded: same cells, aligned columns."""
    import markdown

    from scse_monai.apps import report
    from scse_monai.metrics.tables import format_table, markdown_table

    assert report.markdown_table is markdown_table
    rec = dict(chaos_scores({"dice": 0.9, "ravd": 1.0, "assd": 1.5, "mssd": 12.0}),
               dice=0.9, ravd=1.0, assd=1.5, mssd=12.0)
    rows = results_to_rows({"ct_1": {"liver": rec, "right kidney": dict(rec, ravd=math.inf, mssd=None)}})
    text = format_table(rows)
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # padded: every line as wide as the header
    assert lines[1].startswith("| :---") and lines[1].endswith("---: |")
    html = markdown.markdown(text, extensions=["tables"])
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html)
    assert cells[:3] == ["case", "organ", "DICE"]
    assert cells[11:16] == ["ct_1", "liver", "0.9000", "1.0000", "1.5000"]
    assert cells[22:27] == ["ct_1", "right kidney", "0.9000", "inf", "1.5000"] and cells[27] == "n/a"
    plain = markdown_table(["a", "b"], [["1", "2"]])
    assert plain == "| a | b |\n| :--- | ---: |\n| 1 | 2 |"
