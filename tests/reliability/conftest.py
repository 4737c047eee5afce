"""Print the reliability figures (bad inputs tried/escaped, fuzz cases, kill/resume cycles, peak memory)."""

from __future__ import annotations

from .reliability_data import STATS


def pytest_terminal_summary(terminalreporter) -> None:
    if STATS:
        terminalreporter.section("reliability figures")
        for key in sorted(STATS):
            terminalreporter.write_line(f"{key}: {STATS[key]}")
