"""Report tables (markdown) and writing ``report.md`` + ``report.html`` for the demo and the ablation.

The HTML is produced by :func:`markdown_to_html`, a converter for the small markdown subset these reports use
(headings, paragraphs, ``-`` lists, pipe tables, images, links, ``**bold**``, ```code```): written here rather than
adding a markdown package as a dependency for one page.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from scse_monai.metrics.chaos import ORGANS
from scse_monai.utils.io import atomic_write_text

__all__ = [
    "METRIC_COLUMNS",
    "fmt",
    "markdown_table",
    "organ_tables",
    "parameter_table",
    "mean_sd",
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


def fmt(value: object, spec: str = "{:.3f}") -> str:
    """Format a number for a table; ``None``/NaN -> ``"n/a"``, infinity -> ``"inf"``."""
    if value is None:
        return "n/a"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "inf"
    return spec.format(number)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A pipe table; ``align`` per column ``l``/``r`` (default: first left, the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


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


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of the finite values; NaN if none."""
    import numpy as np

    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img src="\2" alt="\1">'),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
]


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(markdown: str, title: str = "report") -> str:
    """A standalone HTML page from the markdown subset used by the reports (see the module docstring)."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,6})\s+(.*)$", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            header, body = _cells(block[0]), [_cells(b) for b in block[2:]]
            rule = _cells(block[1]) if len(block) > 1 else []
            aligns = ["right" if r.endswith(":") and not r.startswith(":") else "left" for r in rule]
            aligns += ["left"] * (len(header) - len(aligns))
            rows = ["<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>"]
            for cells in body:
                rows.append("<tr>" + "".join(f'<td style="text-align:{a}">{_inline(c)}</td>'
                                             for c, a in zip(cells, aligns, strict=False)) + "</tr>")
            out.append("<table>\n" + "\n".join(rows) + "\n</table>")
        elif re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                item = re.sub(r"^\s*[-*]\s+", "", lines[i])
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                    item += " " + lines[i].strip()
                    i += 1
                items.append(f"<li>{_inline(item)}</li>")
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||```|\s*[-*]\s)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(out) + "\n</body>\n</html>\n"
    )


def write_report(out_dir: str | os.PathLike, markdown: str, name: str = "report", title: str = "report") -> Path:
    """Write ``<out_dir>/<name>.md`` and ``<name>.html`` atomically; returns the markdown path."""
    out_dir = Path(out_dir)
    md_path = out_dir / f"{name}.md"
    atomic_write_text(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    atomic_write_text(out_dir / f"{name}.html", markdown_to_html(markdown, title=title))
    return md_path
