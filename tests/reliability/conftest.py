"""Print the fault matrix at the end of a run that tried any of its cells (``make faults``)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .fault_matrix import RESULTS, render

    if RESULTS:
        terminalreporter.write_sep("=", "Kling fault matrix")
        terminalreporter.write_line(render(RESULTS))
