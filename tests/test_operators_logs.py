"""Task logs that tell the story, on real task logs (``dag.test()`` prints them as it runs).

A healthy run logs only info lines: the estimate, the submission (task id, credits reserved,
ETA), and one closing line (outcome, elapsed, credits, dollars, where the result went). A clean
refusal before anything is sent logs Airflow's own failure and nothing else at warning or error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_operators_rerun import run_dag
from test_operators_storage import xcom_value

from kling_provider.testing.media import make_png

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.kling_simulator(generation_seconds=1),
    pytest.mark.newer_airflow("3.0's dag.test() prints another log format, and task errors where capfd misses them"),
]
DAGS = Path(__file__).parent / "dags"
LEVEL = re.compile(r"^\S+Z \[(\w+)\s*\]", re.MULTILINE)


def task_log(out: str) -> str:
    """What the run logged, less ``dag.test()``'s own DAG-bundle sync (it warns about bundles
    other test modules registered in the shared test database, before any task starts)."""
    return "\n".join(line for line in out.splitlines() if "[airflow.dag_processing." not in line)


def levels(log: str) -> list[str]:
    return LEVEL.findall(log)


def kling_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "kling_provider.operators" in line]


@pytest.mark.parametrize("dag_id", ["rerun_skip", "rerun_skip_worker"])
def test_a_healthy_run_tells_the_story_at_info_level(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    video = tmp_path / "kite.mp4"
    run = run_dag(dag_id, output_uri=video)
    assert "success" in run.state
    log = task_log(capfd.readouterr().out)
    assert set(levels(log)) == {"info"}, [line for line in log.splitlines() if "[info" not in line][:10]
    task_id = run.xcom()["id"]
    mine = "\n".join(kling_lines(log))
    assert "Kling kling-v3-text-to-video: estimated 27.0 credits (~$0.375) for 5 s at 720p, sound off" in mine
    assert re.search(rf"Submitted EvoLink task {task_id} \(27\.0 credits reserved, about [\d.]+ s to go\)", mine)
    closing = re.search(
        rf"Done: EvoLink task {task_id} completed in (\d+\.\d) s, 27 credits \(~\$0\.375\); "
        rf"video saved to {re.escape(video.as_uri())}",
        mine,
    )
    assert closing, mine
    assert 0 < float(closing.group(1)) < 120

    again = run_dag(dag_id, output_uri=video)
    assert "success" in again.state
    log = task_log(capfd.readouterr().out)
    assert set(levels(log)) == {"info"}
    assert f"Skipped: already saved at {video.as_uri()} (EvoLink task {task_id}, paid 27 credits on " in log


def test_a_clean_refusal_logs_only_airflows_own_failure(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "theirs.mp4"
    other.write_bytes(b"not ours")
    assert "failed" in run_dag("rerun_fail", output_uri=other).task_state
    log = task_log(capfd.readouterr().out)
    loud = [line for line in log.splitlines() if LEVEL.match(line) and LEVEL.match(line).group(1) != "info"]
    assert len(loud) == 1 and "Task failed with exception" in loud[0], loud


def test_a_created_element_is_named_in_the_closing_line(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_compat import DagBag

    side = tmp_path / "side.png"
    side.write_bytes(make_png(600, 900))
    frame = tmp_path / "beach.png"
    frame.write_bytes(make_png(1280, 720))
    dag = DagBag(str(DAGS / "kling_operator_dags.py")).get_dag("element_then_scene")
    assert dag is not None
    conf = {"frontal": str(side), "side": str(side), "frame": str(frame), "output_uri": str(tmp_path / "s.mp4")}
    run = dag.test(run_conf=conf)
    assert "success" in str(run.state)
    log = task_log(capfd.readouterr().out)
    assert set(levels(log)) == {"info"}, [line for line in log.splitlines() if "[info" not in line][:10]
    element_id = xcom_value("element_then_scene", run.run_id, "return_value", "mascot")["element_id"]
    assert re.search(rf"Done: EvoLink task \S+ completed in [\d.]+ s, .*; created element_id {element_id} \(", log)
