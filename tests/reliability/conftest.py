"""Print what the reliability tests measured at the end of a run: the fault matrix (``make faults``)
and the hostile-input figures, whenever those tests ran."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .fault_matrix import RESULTS, render
    from .hostile import FIGURES

    if RESULTS:
        terminalreporter.write_sep("=", "Kling fault matrix")
        terminalreporter.write_line(render(RESULTS))
    if FIGURES.tried:
        terminalreporter.write_sep("=", "Kling hostile input")
        terminalreporter.write_line(
            f"inputs tried {FIGURES.tried}: accepted and submitted with a valid body {FIGURES.submitted}, "
            f"rejected by field {FIGURES.rejected_at_parse + FIGURES.rejected_at_execute} "
            f"({FIGURES.rejected_at_parse} when the DAG is parsed, {FIGURES.rejected_at_execute} at execute, "
            f"before any request), undefined connection ids {FIGURES.undefined_connection}, "
            f"other exceptions {FIGURES.crashed - FIGURES.undefined_connection}"
        )
