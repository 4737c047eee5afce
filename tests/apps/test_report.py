"""Report tables and the small markdown -> HTML writer."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np
import pytest

from scse_monai.apps.report import (
    fmt,
    markdown_table,
    markdown_to_html,
    mean_sd,
    organ_tables,
    parameter_table,
    write_report,
)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_cell = tag in ("td", "th")
        if self._in_cell:
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data


def test_fmt_handles_missing_and_infinite_values() -> None:
    assert fmt(None) == "n/a" and fmt(float("nan")) == "n/a" and fmt(float("inf")) == "inf"
    assert fmt(0.12345) == "0.123" and fmt(2, "{:.1f}") == "2.0" and fmt("x") == "x"


def test_mean_sd_matches_numpy_and_skips_non_finite() -> None:
    values = [0.5, 0.7, 0.9, float("nan"), None]
    m, sd = mean_sd(values)
    assert m == pytest.approx(np.mean([0.5, 0.7, 0.9])) and sd == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert mean_sd([0.3]) == (0.3, 0.0)
    assert all(math.isnan(v) for v in mean_sd([None]))


def test_organ_tables_side_by_side() -> None:
    rec = {"dice": 0.9, "ravd": 5.0, "assd": 1.5, "mssd": 10.0, "score": 80.0}
    text = organ_tables({"UNet": {"liver": rec, "mean": rec}, "SEUNet": {"liver": dict(rec, dice=0.95)}})
    assert "### liver" in text and "### mean over organs" in text and "right kidney" not in text
    liver = text.split("### liver")[1].split("###")[0]
    assert "| DICE | 0.900 | 0.950 |" in liver
    mean = text.split("### mean over organs")[1]
    assert "| DICE | 0.900 | n/a |" in mean


def test_parameter_table_overhead() -> None:
    text = parameter_table({"UNet": (1000, 0), "SEUNet": (1057, 57)}, {"UNet": 2.0, "SEUNet": 2.25})
    assert "| SEUNet | 1,057 | 57 | +5.70 % | 2.2 |" in text or "| SEUNet | 1,057 | 57 | +5.70 % | 2.3 |" in text
    assert "| UNet | 1,000 | 0 | +0.00 % | 2.0 |" in text


def test_markdown_to_html_renders_tables_images_and_escapes(tmp_path) -> None:
    md = "\n".join([
        "# Title <x>",
        "",
        "Some **bold** and `code` text",
        "continued.",
        "",
        "- item one",
        "- item [two](b.html)",
        "",
        markdown_table(["a", "b"], [["1", "2 < 3"], ["4", "5"]]),
        "",
        "![alt text](fig.png)",
    ])
    page = markdown_to_html(md, title="t")
    parser = _Collect()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert tags.count("h1") == 1 and tags.count("li") == 2 and tags.count("table") == 1 and tags.count("tr") == 3
    assert parser.cells == ["a", "b", "1", "2 < 3", "4", "5"]
    assert ("img", {"src": "fig.png", "alt": "alt text"}) in parser.tags
    assert ("a", {"href": "b.html"}) in parser.tags
    assert "<strong>bold</strong>" in page and "<code>code</code>" in page and "Title &lt;x&gt;" in page
    path = write_report(tmp_path, md, name="r")
    assert path == tmp_path / "r.md" and path.read_text().startswith("# Title")
    assert (tmp_path / "r.html").read_text() == page.replace("<title>t</title>", "<title>report</title>")
