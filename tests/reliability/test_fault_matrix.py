"""The fault matrix through the operators (``dag.test()``, both modes) against the simulator.

The table and the checks live in :mod:`.fault_matrix`; ``make faults`` runs this module and
prints the matrix (tests/reliability/conftest.py). Every applicable cell is one test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fault_matrix import (
    APPLICABLE,
    CELLS,
    MAX_ATTEMPTS,
    PHASES,
    RETRIES,
    ROWS,
    Cell,
    MatrixEnv,
    NotApplicable,
    matrix_environment,
    run_cell,
    uncovered_fault_kinds,
)
from .support import load_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


def _slug(cell: Cell) -> str:
    return re.sub(r"[^a-z0-9]+", "-", cell.id.lower()).strip("-")


@pytest.fixture(scope="module")
def matrix_env(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixEnv]:
    with matrix_environment(tmp_path_factory.mktemp("fault-matrix")) as env:
        yield env


def test_the_matrix_covers_every_fault_kind_and_phase() -> None:
    assert not uncovered_fault_kinds(), f"fault kinds without a row: {uncovered_fault_kinds()}"
    for row in ROWS:
        assert set(row.outcomes) == set(PHASES), f"{row.name} does not say what happens in every phase"
    assert len({c.id for c in CELLS}) == len(CELLS)
    na = [c for c in CELLS if isinstance(c.expected, NotApplicable)]
    assert all(c.expected.reason for c in na if isinstance(c.expected, NotApplicable))
    assert len(APPLICABLE) + len(na) == len(CELLS) == len(ROWS) * len(PHASES) * 2


def test_the_dag_mirrors_the_matrix_settings() -> None:
    (task,) = load_dag("reliability_matrix_worker").tasks
    assert task.http_retry_policy["max_attempts"] == MAX_ATTEMPTS
    assert task.retries == RETRIES


@pytest.mark.parametrize("cell", APPLICABLE, ids=_slug)
def test_cell(cell: Cell, matrix_env: MatrixEnv) -> None:
    result = run_cell(cell, matrix_env)
    assert result.passed, f"{cell.id}: expected {cell.expected.describe()}: " + "; ".join(result.problems)
