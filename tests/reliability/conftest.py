"""Print the reliability figures (bad inputs tried/escaped, fuzz cases, kill/resume cycles, peak memory)."""

from __future__ import annotations

from .reliability_data import STATS


def pytest_terminal_summary(terminalreporter) -> None:
    if STATS:
        terminalreporter.section("reliability figures")
        for key in sorted(STATS):
            terminalreporter.write_line(f"{key}: {STATS[key]}")
        _corpus_table(terminalreporter)


def _corpus_table(terminalreporter) -> None:
    """The round-2 corpus per category and in total: tried / refused clearly / correct result / escaped / ..."""
    from .corpus import OUTCOMES

    categories = sorted({k[len("corpus "):].rsplit(": ", 1)[0] for k in STATS if k.startswith("corpus ")})
    if not categories:
        return
    columns = ("tried", *OUTCOMES)
    terminalreporter.write_line("corpus figures: " + " / ".join(columns))
    totals = dict.fromkeys(columns, 0)
    for cat in categories:
        row = [STATS.get(f"corpus {cat}: {c}", 0) for c in columns]
        for c, v in zip(columns, row, strict=True):
            totals[c] += v
        terminalreporter.write_line(f"  {cat}: " + " / ".join(map(str, row)))
    terminalreporter.write_line("  TOTAL: " + " / ".join(str(totals[c]) for c in columns))
