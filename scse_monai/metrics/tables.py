"""Text table, CSV and JSON of CHAOS results, for ``scse-monai evaluate`` and ``chaos_metrics.json``.

The bundle writes its per-case CSV files with MONAI's ``MetricsSaver``; it has no combined case x organ x metric
layout, prints no table and writes no JSON, which is what is left here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence

from scse_monai.metrics.chaos import METRIC_KEYS, summarise_cases

__all__ = ["results_to_rows", "format_table", "rows_to_csv", "results_to_json"]


def results_to_rows(
    cases: Mapping[str, Mapping[str, Mapping[str, float]]], summary: Mapping[str, Mapping[str, float]] | None = None
) -> list[dict[str, object]]:
    """Flatten results into rows ``{"case", "organ", METRIC_KEYS...}``.

    Every case's organs and mean come first, then the summary's rows under case ``"mean"`` (computed with
    :func:`summarise_cases` if not given and there are several cases).
    """
    rows: list[dict[str, object]] = []
    for case, res in cases.items():
        rows += [{"case": case, "organ": organ, **{k: rec[k] for k in METRIC_KEYS}} for organ, rec in res.items()]
    if summary is None and len(cases) > 1:
        summary = summarise_cases(cases)
    for organ, rec in (summary or {}).items():
        rows.append({"case": "mean", "organ": organ, **{k: rec[k] for k in METRIC_KEYS}})
    return rows


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """A fixed-width text table of rows from :func:`results_to_rows`.

    Precision is the organisers' printed precision plus one digit: DICE/RAVD/ASSD 4 decimals, MSSD and scores 2.
    """
    header = ["case", "organ", "DICE", "RAVD %", "ASSD mm", "MSSD mm", "S_DICE", "S_RAVD", "S_ASSD", "S_MSSD", "score"]
    fmt = ["{}", "{}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}"]
    body = [[f.format(r[k]) for f, k in zip(fmt, ("case", "organ", *METRIC_KEYS), strict=True)] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs)

    lines = [line(header), "  ".join("-" * w for w in widths), *(line(b) for b in body)]
    return "\n".join(lines)


def rows_to_csv(rows: Sequence[Mapping[str, object]]) -> str:
    """CSV text (header ``case,organ,<METRIC_KEYS>``) of rows from :func:`results_to_rows`, full precision."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["case", "organ", *METRIC_KEYS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _finite_or_none(obj: object) -> object:
    # JSON has no inf/nan; RAVD is inf only for an organ absent from the reference, written as null.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    return obj


def results_to_json(results: Mapping[str, object]) -> str:
    """Strict JSON text of a results mapping (non-finite floats become ``null``)."""
    return json.dumps(_finite_or_none(results), indent=2, allow_nan=False) + "\n"
