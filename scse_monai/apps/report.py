"""Report tables (markdown) and writing ``report.md`` + ``report.html`` for the demo and the ablation.

The reports are rendered from their ``results.json``; every table goes through the package's one table writer,
:func:`scse_monai.metrics.tables.markdown_table` (with :func:`~scse_monai.metrics.tables.fmt` for the numbers), both
re-exported here. The HTML page is the markdown rendered by the ``markdown`` package (Python-Markdown, with its
``tables`` extension).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scse_monai.apps.stats import MIN_TEST_CASES
from scse_monai.data.labels import ORGANS
from scse_monai.metrics.tables import fmt, markdown_table
from scse_monai.utils.atomic import atomic_write_text

__all__ = [
    "METRIC_COLUMNS",
    "fmt",
    "markdown_table",
    "organ_tables",
    "parameter_table",
    "comparison_table",
    "markdown_to_html",
    "write_report",
]

#: (key in the CHAOS metric records, column title, format) of the per-organ tables.
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("dice", "DICE", "{:.3f}"),
    ("ravd", "RAVD %", "{:.1f}"),
    ("assd", "ASSD mm", "{:.2f}"),
    ("mssd", "MSSD mm", "{:.1f}"),
    ("score", "CHAOS score", "{:.1f}"),
)


def organ_tables(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Per-organ markdown tables, networks side by side: one table per organ (and the mean over organs).

    Args:
        results: ``{network name: chaos_metrics.json "mean" record}``, i.e. ``{organ: {metric: value}}``.
    """
    names = list(results)
    organs = [o for o in (*ORGANS.values(), "mean") if any(o in r for r in results.values())]
    parts = []
    for organ in organs:
        rows = []
        for key, title, spec in METRIC_COLUMNS:
            rows.append([title] + [fmt(results[n].get(organ, {}).get(key), spec) for n in names])
        heading = "mean over organs" if organ == "mean" else organ
        parts.append(f"### {heading}\n\n" + markdown_table(["metric", *names], rows))
    return "\n\n".join(parts)


def parameter_table(
    counts: Mapping[str, tuple[int, int]], epoch_times: Mapping[str, float] | None = None, baseline: str | None = None
) -> str:
    """Parameters, SE parameters, overhead in % of ``baseline`` (default: the first network), seconds per epoch.

    Args:
        counts: ``{network name: (parameters, SE parameters)}``.
        epoch_times: ``{network name: seconds per epoch}`` (optional column).
        baseline: name of the reference network for the overhead.
    """
    names = list(counts)
    base = counts[baseline or names[0]][0]
    header = ["network", "parameters", "SE parameters", "overhead"]
    if epoch_times is not None:
        header.append("s / epoch")
    rows = []
    for n in names:
        total, se = counts[n]
        row = [n, f"{total:,}", f"{se:,}", f"{100.0 * (total - base) / base:+.2f} %"]
        if epoch_times is not None:
            row.append(fmt(epoch_times.get(n), "{:.1f}"))
        rows.append(row)
    return markdown_table(header, rows)


def comparison_table(comparisons: Sequence[Mapping[str, Any]], organs: bool = True) -> str:
    """The paired comparisons of :func:`scse_monai.apps.stats.compare_networks` as a pipe table.

    One row per metric and organ: mean difference (variant - baseline) with its bootstrap 95 % CI, the Wilcoxon
    signed-rank p-value (or why there is none) and the number of paired cases.
    """
    rows = []
    for c in comparisons:
        spec = "{:+.1f}" if c["metric"] == "score" else "{:+.3f}"
        ci = c.get("ci95")
        ci_text = f"[{fmt(ci[0], spec)}, {fmt(ci[1], spec)}]" if ci else "n/a"
        if c.get("p_value") is not None:
            p_text = fmt(c["p_value"], "{:.3g}")
        else:
            p_text = "n/a: too few cases" if c["n_cases"] < MIN_TEST_CASES else "n/a: no differences"
        metric = "CHAOS score" if c["metric"] == "score" else c["metric"].upper()
        rows.append([metric, *([c.get("organ", "")] if organs else []), fmt(c["mean_difference"], spec), ci_text,
                     p_text, str(c["n_cases"])])
    header = ["metric", *(["organ"] if organs else []), "mean difference", "95 % CI", "p (Wilcoxon)", "cases"]
    return markdown_table(header, rows)


def markdown_to_html(markdown_text: str, title: str = "report") -> str:
    """A standalone HTML page from a report's markdown (rendered by the ``markdown`` package)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{style}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(out_dir: str | os.PathLike, markdown: str, name: str = "report", title: str = "report") -> Path:
    """Write ``<out_dir>/<name>.md`` and ``<name>.html`` atomically; returns the markdown path."""
    out_dir = Path(out_dir)
    md_path = out_dir / f"{name}.md"
    atomic_write_text(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    atomic_write_text(out_dir / f"{name}.html", markdown_to_html(markdown, title=title))
    return md_path
