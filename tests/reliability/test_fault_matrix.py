"""The fault matrix through the operators (``dag.test()``, both modes) against the simulator.

The table and the checks live in :mod:`.fault_matrix`; ``make faults`` runs this module and
prints the matrix (tests/reliability/conftest.py). Every applicable cell is one test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kling_provider.operators.base import _KlingOperatorBase
from kling_provider.testing.media import make_png

from .fault_matrix import (
    APPLICABLE,
    CELLS,
    CLIENT_TIMEOUT,
    MAX_ATTEMPTS,
    PHASES,
    RETRIES,
    ROWS,
    Attempt,
    Cell,
    MatrixEnv,
    NotApplicable,
    register_base_url,
    run_cell,
    uncovered_fault_kinds,
)
from .support import CANARY_KEY, kling_default, load_dag, run_dag_test, simulator_server

pytestmark = pytest.mark.usefixtures("airflow_db")


def _slug(cell: Cell) -> str:
    return re.sub(r"[^a-z0-9]+", "-", cell.id.lower()).strip("-")


@pytest.fixture(scope="module")
def matrix_env(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixEnv]:
    workdir = tmp_path_factory.mktemp("fault-matrix")
    image = workdir / "frame.png"
    image.write_bytes(make_png(1280, 720))
    attempts: list[Attempt] = []
    execute, execute_complete = _KlingOperatorBase.execute, _KlingOperatorBase.execute_complete

    def recorded(method: Any, name: str) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            from airflow_compat import TaskDeferred

            try:
                value = method(self, *args, **kwargs)
            except TaskDeferred:
                attempts.append(Attempt(name, None))
                raise
            except BaseException as err:
                attempts.append(Attempt(name, err))
                raise
            attempts.append(Attempt(name, None))
            return value

        return wrapper

    with simulator_server() as server, kling_default(server.base_url, timeout=CLIENT_TIMEOUT):
        register_base_url(server.sim, server.base_url)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_KlingOperatorBase, "execute", recorded(execute, "execute"))
            patch.setattr(_KlingOperatorBase, "execute_complete", recorded(execute_complete, "execute_complete"))
            yield MatrixEnv(server.sim, run_dag_test, workdir, image, attempts, CANARY_KEY)


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


@pytest.mark.newer_airflow("3.3: each cell reads the task_state_store table")
@pytest.mark.parametrize("cell", APPLICABLE, ids=_slug)
def test_cell(cell: Cell, matrix_env: MatrixEnv) -> None:
    result = run_cell(cell, matrix_env)
    assert result.passed, f"{cell.id}: expected {cell.expected.describe()}: " + "; ".join(result.problems)
