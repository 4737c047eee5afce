"""Tables, CSV and JSON of CHAOS results, for ``scse-monai evaluate``, ``chaos_metrics.json`` and the reports.

The bundle writes its per-case CSV files with MONAI's ``MetricsSaver``; it has no combined case x organ x metric
layout, prints no table and writes no JSON, which is what is left here. :func:`markdown_table` is the package's one
table writer: ``evaluate``'s printed table (padded, so it reads as text too) and the demo and ablation reports
(:mod:`scse_monai.apps.report`) all go through it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence

from scse_monai.metrics.chaos import METRIC_KEYS, summarise_cases

__all__ = ["fmt", "markdown_table", "results_to_rows", "format_table", "rows_to_csv", "results_to_json"]


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


def fmt(value: object, spec: str = "{:.3f}") -> str:
    """Format a number for a table; ``None``/NaN -> ``"n/a"``, infinity -> ``"inf"``, anything else as text."""
    if value is None:
        return "n/a"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return spec.format(number)


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None, pad: bool = False
) -> str:
    """A markdown pipe table.

    Args:
        header: column titles.
        rows: cells (``str()`` of each).
        align: per column ``l`` or ``r``; default: first left, the rest right.
        pad: pad every cell to its column's width, so the table also reads as aligned text (same markdown).
    """
    align = align or "l" + "r" * (len(header) - 1)
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(4, *(len(r[i]) for r in cells)) if pad else 4 for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        if pad:
            row = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align, strict=True)]
        return "| " + " | ".join(row) + " |"

    rule = ["-" * (w - 1) + ":" if a == "r" else ":" + "-" * (w - 1) for w, a in zip(widths, align, strict=True)]
    return "\n".join([line(cells[0]), line(rule), *(line(r) for r in cells[1:])])


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """The printed table of rows from :func:`results_to_rows`: a padded :func:`markdown_table`.

    Precision is the organisers' printed precision plus one digit: DICE/RAVD/ASSD 4 decimals, MSSD and scores 2.
    """
    header = ["case", "organ", "DICE", "RAVD %", "ASSD mm", "MSSD mm", "S_DICE", "S_RAVD", "S_ASSD", "S_MSSD", "score"]
    specs = ["{:.4f}", "{:.4f}", "{:.4f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}"]
    body = [[str(r["case"]), str(r["organ"]), *(fmt(r[k], f) for f, k in zip(specs, METRIC_KEYS, strict=True))]
            for r in rows]
    return markdown_table(header, body, align="ll" + "r" * len(METRIC_KEYS), pad=True)


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
