"""A batch budget on real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_operators_dag import DAGS

from kling_provider.testing.media import mp4_info

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


def run_dag(dag_id: str, **conf: Any) -> dict[str, Any]:
    """``dag.test()`` a DAG of tests/dags: {task_id: state} and {"task_id[i]": state} for mapped ones."""
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS / "kling_budget_dags.py")).get_dag(dag_id)
    assert dag is not None
    run = dag.test(run_conf={k: str(v) for k, v in conf.items()})
    out: dict[str, Any] = {"_run_state": str(run.state)}
    for ti in run.get_task_instances():
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        out[name] = {"state": str(ti.state), "try_number": ti.try_number}
    return out


def test_an_over_budget_batch_sends_nothing(kling_connection: Any, tmp_path: Path) -> None:
    result = run_dag("batch_over_budget", out=tmp_path)
    assert "failed" in result["budget"]["state"], result
    assert result["budget"]["try_number"] == 1
    assert "upstream_failed" in result["teaser"]["state"], result
    assert kling_connection.sim.requests == []  # not one POST, not even an upload
    assert list(tmp_path.iterdir()) == []


def test_an_in_budget_batch_runs(kling_connection: Any, tmp_path: Path) -> None:
    result = run_dag("batch_in_budget", out=tmp_path)
    assert "success" in result["_run_state"], result
    assert kling_connection.sim.count(method="POST", phase="submit") == 3
    videos = ["boat.mp4", "kite.mp4", "lamp.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(videos + [v + ".kling.json" for v in videos])
    assert mp4_info(tmp_path / "boat.mp4").duration_s == pytest.approx(10, abs=0.05)
    assert kling_connection.sim.credits_spent == pytest.approx(108)


def test_rows_from_a_mapped_task_are_totalled_too(kling_connection: Any, tmp_path: Path) -> None:
    result = run_dag("batch_from_mapped_rows", out=tmp_path)
    assert "success" in result["_run_state"], result
    assert kling_connection.sim.count(method="POST", phase="submit") == 2  # 2 x 16.2 credits <= 40
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["cup.mp4", "cup.mp4.kling.json", "pen.mp4", "pen.mp4.kling.json"]


@pytest.mark.parametrize(
    ("budget", "state", "posts"),
    [("40", "success", 2), ("30", "failed", 0), ("plenty", "failed", 0), ("-5", "failed", 0)],
)
def test_a_templated_limit_is_rendered_before_the_batch_is_totalled(
    kling_connection: Any, tmp_path: Path, budget: str, state: str, posts: int
) -> None:
    result = run_dag("batch_templated_limit", out=tmp_path, budget=budget)  # 2 x 16.2 credits
    assert state in result["budget"]["state"] and result["budget"]["try_number"] == 1, result
    assert kling_connection.sim.count(method="POST", phase="submit") == posts
