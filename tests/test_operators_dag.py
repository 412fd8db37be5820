"""The operators on real Airflow (``dag.test()``) against the simulator over loopback HTTP.

``dag.test()`` runs the trigger in-line; the separate-triggerer proof lives in tests/e2e.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kling_provider.testing import Fault
from kling_provider.testing.media import make_png, mp4_info

DAGS = Path(__file__).parent / "dags"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]

RESULT_KEYS = {
    "id",
    "model",
    "status",
    "video_url",
    "expires_at",
    "output_uri",
    "duration",
    "quality",
    "sound",
    "credits_reserved",
    "estimated_credits",
    "estimated_usd",
    "video",
    "poster_uri",
    "reused",
}


def run_dag(dag_id: str, **conf: Any) -> dict[str, Any]:
    """Run a DAG from tests/dags with ``dag.test()``; return {task_id: {state, try_number, xcom}}."""
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS)).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {DAGS}"
    run = dag.test(run_conf={k: str(v) for k, v in conf.items()})
    out: dict[str, Any] = {"_run_state": str(run.state)}
    for ti in run.get_task_instances():
        out[ti.task_id] = {"state": str(ti.state), "try_number": ti.try_number, "xcom": _return_value(ti)}
    return out


def _return_value(ti: Any) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, key="return_value")
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def posts(sim: Any) -> int:
    return int(sim.count(method="POST", phase="submit"))


@pytest.mark.parametrize("dag_id", ["t2v_deferred", "t2v_worker"])
def test_text_to_video_saves_a_real_video_once(kling_connection: Any, tmp_path: Path, dag_id: str) -> None:
    target = tmp_path / "out" / "teaser.mp4"
    result = run_dag(dag_id, output_uri=target)
    assert "success" in result["_run_state"], result
    xcom = result["teaser"]["xcom"]
    assert set(xcom) == RESULT_KEYS
    assert xcom["output_uri"] == target.as_uri()
    assert xcom["status"] == "completed" and xcom["duration"] == 4 and xcom["quality"] == "720p"
    assert xcom["estimated_credits"] == pytest.approx(21.6) and xcom["credits_reserved"] == pytest.approx(21.6)
    datetime.fromisoformat(xcom["expires_at"])
    info = mp4_info(target)
    assert (info.width, info.height) == (720, 1280) and info.duration_s == pytest.approx(4, abs=0.05)
    assert posts(kling_connection.sim) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, target.name + ".kling.json"], (
        "the video and its sidecar, no part files left behind"
    )


def test_rendered_values_are_validated_before_anything_is_sent(kling_connection: Any) -> None:
    result = run_dag("t2v_rendered_too_long")
    assert "failed" in result["too_long"]["state"]
    assert kling_connection.sim.requests == []


def test_non_retryable_remote_failure_does_not_burn_retries(kling_connection: Any, tmp_path: Path) -> None:
    kling_connection.sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation"))
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")
    assert "failed" in result["video"]["state"]
    assert result["video"]["try_number"] == 1
    assert posts(kling_connection.sim) == 1


def test_transient_remote_failure_is_resubmitted_on_retry(kling_connection: Any, tmp_path: Path) -> None:
    kling_connection.sim.faults.add(Fault(kind="fail_task", error_code="generation_timeout", times=1))
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")
    assert "success" in result["video"]["state"], result
    assert result["video"]["try_number"] == 2
    assert posts(kling_connection.sim) == 2
    assert mp4_info(tmp_path / "v.mp4").frame_count > 0


def test_retry_after_a_failed_download_saves_without_resubmitting(kling_connection: Any, tmp_path: Path) -> None:
    # Every download attempt of the first try is dropped; the retry finds the task completed.
    kling_connection.sim.faults.add(Fault(phase="download", kind="drop", times=5))
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")
    assert "success" in result["video"]["state"], result
    assert result["video"]["try_number"] == 2
    assert posts(kling_connection.sim) == 1
    assert mp4_info(tmp_path / "v.mp4").frame_count > 0


def test_ambiguous_submit_fails_without_resubmitting(kling_connection: Any, tmp_path: Path) -> None:
    kling_connection.sim.faults.add(Fault(phase="submit", kind="lost_submit_response", times=1))
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")
    assert "failed" in result["video"]["state"]
    assert result["video"]["try_number"] == 1
    assert posts(kling_connection.sim) == 1
    assert len(kling_connection.sim.tasks) == 1


def _recorded_stores(monkeypatch: pytest.MonkeyPatch, *, fail_first_id: bool = False) -> list[Any]:
    """What every try does to its task-state store, in order (records, and "clear"). With
    ``fail_first_id``, storing the first created task's id fails, as when the worker dies (or
    Airflow's API is down) right after EvoLink answered the create call."""
    from kling_provider.operators import state

    original = state.state_store_for
    calls: list[Any] = []

    class Recording:
        def __init__(self, store: Any) -> None:
            self.store = store

        def load(self) -> Any:
            return self.store.load()

        def clear(self) -> None:
            calls.append("clear")
            self.store.clear()

        def save(self, record: Any) -> None:
            first_id = isinstance(record, state.RemoteTask) and not any(isinstance(c, state.RemoteTask) for c in calls)
            calls.append(record)
            if fail_first_id and first_id:
                raise RuntimeError("the worker stopped here")
            self.store.save(record)

    monkeypatch.setattr(state, "state_store_for", lambda context: Recording(original(context)))
    return calls


def test_try_stopped_between_create_and_storing_the_id_is_never_submitted_again(
    kling_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kling_provider.operators.state import PendingSubmit, RemoteTask

    calls = _recorded_stores(monkeypatch, fail_first_id=True)
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")
    # Try 1 created the task and stopped; try 2 found the open bracket and failed for good (no try 3).
    assert "failed" in result["video"]["state"] and result["video"]["try_number"] == 2, result
    assert posts(kling_connection.sim) == 1 and len(kling_connection.sim.tasks) == 1
    assert [type(c) for c in calls] == [PendingSubmit, RemoteTask, PendingSubmit], calls
    assert calls[2].reported and not calls[0].reported and calls[2].sent_at == calls[0].sent_at
    assert calls[0].model == "kling-v3-text-to-video" and "prompt 'something'" in calls[0].summary
    assert not (tmp_path / "v.mp4").exists()


def test_a_create_call_answered_with_an_error_closes_its_bracket(
    kling_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused with 503 until the retries ran out: nothing was created, so the retry submits."""
    from kling_provider.operators.state import PendingSubmit, RemoteTask

    calls = _recorded_stores(monkeypatch)
    kling_connection.sim.faults.add(Fault(phase="submit", kind="status", status=503, times=2))
    result = run_dag("t2v_retrying_briefly", output_uri=tmp_path / "v.mp4")
    assert "success" in result["video"]["state"] and result["video"]["try_number"] == 2, result
    assert len(kling_connection.sim.tasks) == 1
    expected = [PendingSubmit, "clear", PendingSubmit, RemoteTask, "clear"]
    assert [c if c == "clear" else type(c) for c in calls] == expected


def test_element_then_scene_with_local_images(kling_connection: Any, tmp_path: Path) -> None:
    frame = tmp_path / "beach.png"
    frame.write_bytes(make_png(1280, 720))
    side = tmp_path / "side.png"
    side.write_bytes(make_png(600, 900))
    result = run_dag("element_then_scene", frontal=side, side=side, frame=frame, output_uri=tmp_path / "scene.mp4")
    assert "success" in result["_run_state"], result
    element_id = result["mascot"]["xcom"]["element_id"]
    assert element_id
    bodies = [r.json for r in kling_connection.sim.requests if r.phase == "submit"]
    assert bodies[1]["model_params"]["element_list"] == [{"element_id": element_id}]
    assert bodies[1]["image_start"].startswith(kling_connection.base_url)
    assert kling_connection.sim.count(phase="upload") == 3
    assert mp4_info(tmp_path / "scene.mp4").width > 0


def test_bad_local_image_fails_before_any_request(kling_connection: Any, tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    small.write_bytes(make_png(200, 200))
    result = run_dag("i2v_image", frame=small)
    assert "failed" in result["animate"]["state"]
    assert kling_connection.sim.requests == []


def test_variable_store_resumes_on_airflow_without_task_state_store(
    kling_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow < 3.3 has no task_state_store: the Variable fallback must give the same bill-once resume."""
    from kling_provider.operators import state

    original = state.state_store_for
    used: list[Any] = []

    def without_task_state_store(context: Any) -> Any:
        store = original({k: v for k, v in context.items() if k != "task_state_store"})
        used.append(store)
        return store

    monkeypatch.setattr(state, "state_store_for", without_task_state_store)
    kling_connection.sim.faults.add(Fault(phase="download", kind="drop", times=5))
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")
    assert "success" in result["video"]["state"], result
    assert result["video"]["try_number"] == 2
    assert posts(kling_connection.sim) == 1
    assert {type(store).__name__ for store in used} == {"_VariableTaskStateStore"}

    from airflow.models.variable import Variable as VariableModel
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = {store.key for store in used}  # this run's: other tests' failed tasks may keep theirs
        leftovers = session.query(VariableModel).filter(VariableModel.key.in_(keys)).all()
    assert leftovers == [], "the Variable is deleted once the video is saved"
