"""Report tables and the HTML page (the markdown package)."""

from __future__ import annotations

from html.parser import HTMLParser

from scse_monai.apps.report import (
    comparison_table,
    fmt,
    markdown_table,
    markdown_to_html,
    organ_tables,
    parameter_table,
    write_report,
)
from scse_monai.apps.stats import paired_comparison


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
        "# Title &lt;x&gt;",
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


def test_comparison_table_rows() -> None:
    base = {f"c{i}": 0.5 for i in range(6)}
    tested = paired_comparison(base, {c: 0.6 for c in base}, "dice")
    few = paired_comparison({"a": 50.0, "b": 60.0}, {"a": 55.0, "b": 58.0}, "score")
    text = comparison_table([{"organ": "liver", **tested}, {"organ": "overall", **few}])
    lines = text.splitlines()
    assert lines[0] == "| metric | organ | mean difference | 95 % CI | p (Wilcoxon) | cases |"
    assert lines[2] == f"| DICE | liver | +0.100 | [+0.100, +0.100] | {tested['p_value']:.3g} | 6 |"
    assert lines[3].startswith("| CHAOS score | overall | +1.5 | [") and lines[3].endswith("| n/a: too few cases | 2 |")
