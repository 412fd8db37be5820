"""End-to-end: the Kling operators on a real Airflow (scheduler, triggerer, dag-processor, api-server).

Unlike ``dag.test()``, the trigger here is serialised into the metadata database and run by a
separate triggerer process, tasks run in LocalExecutor workers, and processes can be killed.
The simulator lives in this test process and counts what Airflow sent it.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest

from kling_provider.testing import DEFAULT_API_KEY, RequestRecord, SimulatorServer
from kling_provider.testing.media import mp4_info

from .cluster import AirflowCluster, wait_for

pytestmark = pytest.mark.slow

TASK_ID = "generate"
#: The key the simulator accepts and the connection carries; it must never be stored or logged.
SIM_KEY = DEFAULT_API_KEY
TRIGGER_CLASSPATH = "kling_provider.triggers.kling.KlingTaskTrigger"
#: The keys of the operator's XCom return value (KlingTextToVideoOperator.build_result).
XCOM_KEYS = frozenset(
    {
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
)
#: 5 s at 720p without sound: 5.4 credits/s, $0.075/s (the published price table).
EXPECTED_CREDITS = 27.0
EXPECTED_USD = 0.375
RUN_TIMEOUT = 120.0


# -- helpers ------------------------------------------------------------------------------------


def _marker() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def _conf(marker: str, output: Path) -> dict[str, str]:
    return {"prompt": f"a ceramic coffee mug on a marble table, soft light ({marker})", "output_uri": str(output)}


def _submits(sim_server: SimulatorServer, marker: str) -> list[RequestRecord]:
    """The create calls (POST /v1/videos/generations) whose prompt carries ``marker``."""
    return [
        r
        for r in sim_server.sim.requests
        if r.method == "POST" and r.phase == "submit" and marker in json.dumps(r.json or {})
    ]


def _polls(sim_server: SimulatorServer, task_id: str) -> list[RequestRecord]:
    return [r for r in sim_server.sim.requests if r.method == "GET" and r.phase == "poll" and r.task_id == task_id]


def _created_task_id(sim_server: SimulatorServer, marker: str) -> str:
    """The EvoLink task id of the one successful create call carrying ``marker``."""
    created = [r for r in _submits(sim_server, marker) if r.status == 200 and r.task_id]
    assert len(created) == 1, f"expected one created task, the simulator saw {created!r}"
    return str(created[0].task_id)


def _still_running(cluster: AirflowCluster, dag_id: str, run_id: str) -> Callable[[], None]:
    """A ``wait_for`` check: components alive and the DAG run not over (else fail with the logs)."""

    def check() -> None:
        cluster.check_alive()
        state = cluster.dag_run(dag_id, run_id).get("state")
        if state in ("success", "failed"):
            pytest.fail(f"DAG run {dag_id}/{run_id} ended {state!r} too early:\n{_task_logs(cluster, dag_id, run_id)}")

    return check


def _task_logs(cluster: AirflowCluster, dag_id: str, run_id: str) -> str:
    return "\n".join(
        f"--- try {t['try_number']} ({t['state']}) ---\n"
        + cluster.task_log(dag_id, run_id, TASK_ID, int(t["try_number"]))
        for t in cluster.task_tries(dag_id, run_id, TASK_ID)
    )


def _run_to_end(cluster: AirflowCluster, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    state = cluster.wait_for_run(dag_id, run_id, timeout=timeout)
    if state != "success":
        pytest.fail(f"DAG run {dag_id}/{run_id} ended {state!r}; task logs:\n{_task_logs(cluster, dag_id, run_id)}")
    return state


def _assert_video(
    sim_server: SimulatorServer, output: Path, result: dict[str, Any], task_id: str, *, attempts: int = 1
) -> None:
    """The saved MP4 is complete and the XCom describes it."""
    assert set(result) >= XCOM_KEYS, f"XCom misses {sorted(XCOM_KEYS - set(result))}: {result!r}"
    assert result["id"] == task_id
    assert result["status"] == "completed"
    assert result["model"] == "kling-v3-text-to-video"
    assert (result["duration"], result["quality"], result["sound"]) == (5, "720p", False)
    assert result["credits_reserved"] == pytest.approx(EXPECTED_CREDITS)
    assert result["estimated_credits"] == pytest.approx(EXPECTED_CREDITS)
    assert result["estimated_usd"] == pytest.approx(EXPECTED_USD)
    assert result["expires_at"] and time.time() < _iso_seconds(result["expires_at"])
    saved_at = unquote(urlparse(result["output_uri"]).path) if "://" in result["output_uri"] else result["output_uri"]
    assert Path(saved_at) == output, f"output_uri {result['output_uri']!r} is not {output}"

    assert output.is_file(), f"no video at {output}"
    data = output.read_bytes()
    assert data[4:8] == b"ftyp", f"not an MP4: {data[:16]!r}"
    served = httpx.get(result["video_url"], timeout=30)  # what the simulator serves for this task
    assert served.status_code == 200
    assert len(data) == len(served.content) and data == served.content, "the saved MP4 differs from the served one"
    info = mp4_info(output)
    assert (info.width, info.height) == (1280, 720)
    assert info.duration_s == pytest.approx(5.0, abs=0.1)
    sidecar = output.with_name(output.name + ".kling.json")  # what lets a re-run reuse the video
    assert json.loads(sidecar.read_text())["task_id"] == task_id, f"{sidecar.name} names another task"
    leftovers = [p.name for p in output.parent.iterdir() if p.name not in (output.name, sidecar.name)]
    assert not leftovers, f"partial downloads left behind: {leftovers}"


def _iso_seconds(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _trigger_rows(cluster: AirflowCluster, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Triggers the run's deferred task instance waits on, with decrypted kwargs."""
    rows = cluster.query(
        "SELECT t.id, t.classpath, t.kwargs, t.triggerer_id, ti.state, ti.next_kwargs FROM trigger t "
        "JOIN task_instance ti ON ti.trigger_id = t.id WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ?",
        (dag_id, run_id, TASK_ID),
    )
    for row in rows:
        row["kwargs_plain"] = cluster.decrypt(row["kwargs"])
    return rows


def _trigger_log_files(cluster: AirflowCluster, dag_id: str) -> dict[int, str]:
    """Trigger log files of the DAG's task, by the triggerer job id that wrote them."""
    found = {}
    for path in cluster.task_log_files():
        if f"dag_id={dag_id}" in str(path) and ".log.trigger." in path.name:
            found[int(path.name.rsplit(".trigger.", 1)[1].split(".")[0])] = path.read_text(errors="replace")
    return found


def _triggerer_jobs(cluster: AirflowCluster) -> list[int]:
    return [r["id"] for r in cluster.query("SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id")]


def _assert_no_key_anywhere(cluster: AirflowCluster) -> None:
    """The API key shows up in no component log, no task or trigger log, no database row."""
    for path in [*cluster.logs_dir.glob("*.log"), *cluster.task_log_files()]:
        text = path.read_text(errors="replace")
        assert SIM_KEY not in text, f"the API key appears in {path}"
    rows = [line for line in cluster.dump_database().splitlines() if SIM_KEY in line]
    assert not rows, f"the API key is stored in the metadata database: {rows[:3]}"


# -- tests --------------------------------------------------------------------------------------


def test_deferrable_runs_in_the_triggerer(
    airflow_cluster: AirflowCluster, simulator: SimulatorServer, tmp_path: Path
) -> None:
    """Submit on a worker, wait in the separate triggerer, save the MP4 on a worker again."""
    dag_id, marker, output = "kling_e2e_deferrable", _marker(), tmp_path / "deferred.mp4"
    run_id = airflow_cluster.trigger(dag_id, _conf(marker, output))

    # While the task is deferred, its trigger is a row in the metadata database.
    rows = wait_for(
        "the task deferred on a trigger",
        lambda: [r for r in _trigger_rows(airflow_cluster, dag_id, run_id) if r["state"] == "deferred"] or None,
        timeout=60,
        interval=0.2,
        check=_still_running(airflow_cluster, dag_id, run_id),
    )
    assert len(rows) == 1
    trigger = rows[0]
    assert trigger["classpath"] == TRIGGER_CLASSPATH
    evolink_id = _created_task_id(simulator, marker)
    assert evolink_id in trigger["kwargs_plain"], f"trigger kwargs do not name {evolink_id}: {trigger['kwargs_plain']}"
    assert "kling_default" in trigger["kwargs_plain"]
    for stored in (trigger["kwargs"], trigger["kwargs_plain"], str(trigger["next_kwargs"])):
        assert SIM_KEY not in stored, "the API key was serialised into the trigger / next_kwargs"

    _run_to_end(airflow_cluster, dag_id, run_id)

    assert len(_submits(simulator, marker)) == 1
    result = airflow_cluster.xcom(dag_id, run_id, TASK_ID)
    _assert_video(simulator, output, result, evolink_id)
    assert result["video_url"] == airflow_cluster.xcom(dag_id, run_id, TASK_ID, key="kling_video_url")

    # The trigger ran in the triggerer process: its log file is named after the triggerer job.
    tries = airflow_cluster.task_tries(dag_id, run_id, TASK_ID)
    assert [t["state"] for t in tries] == ["success"], tries
    logs = _trigger_log_files(airflow_cluster, dag_id)
    jobs = sorted(set(logs) & set(_triggerer_jobs(airflow_cluster)))
    assert jobs, f"no trigger log written by a triggerer job: {sorted(logs)}"
    trigger_log = "\n".join(logs[job] for job in jobs)
    assert "starting" in trigger_log and "'status': 'completed'" in trigger_log, trigger_log
    assert evolink_id in trigger_log
    task_log = airflow_cluster.task_log(dag_id, run_id, TASK_ID, 1)
    assert "Pausing task as DEFERRED" in task_log
    assert _polls(simulator, evolink_id), "nobody polled the task"
    _assert_no_key_anywhere(airflow_cluster)


def test_blocking_waits_on_the_worker(
    airflow_cluster: AirflowCluster, simulator: SimulatorServer, tmp_path: Path
) -> None:
    dag_id, marker, output = "kling_e2e_blocking", _marker(), tmp_path / "blocking.mp4"
    simulator.sim.generation_seconds = 3.0
    run_id = airflow_cluster.trigger(dag_id, _conf(marker, output))
    _run_to_end(airflow_cluster, dag_id, run_id)

    assert len(_submits(simulator, marker)) == 1
    evolink_id = _created_task_id(simulator, marker)
    _assert_video(simulator, output, airflow_cluster.xcom(dag_id, run_id, TASK_ID), evolink_id)
    tries = airflow_cluster.task_tries(dag_id, run_id, TASK_ID)
    assert [t["state"] for t in tries] == ["success"], tries
    assert "Pausing task as DEFERRED" not in airflow_cluster.task_log(dag_id, run_id, TASK_ID, 1)
    assert not _trigger_log_files(airflow_cluster, dag_id), "a non-deferrable task used the triggerer"


def test_killed_worker_retry_reattaches(
    airflow_cluster: AirflowCluster, simulator: SimulatorServer, tmp_path: Path
) -> None:
    """SIGKILL the task process mid-wait: the retry finds the stored task id and pays nothing more."""
    dag_id, marker, output = "kling_e2e_worker_retry", _marker(), tmp_path / "retried.mp4"
    simulator.sim.generation_seconds = 20.0
    run_id = airflow_cluster.trigger(dag_id, _conf(marker, output))

    evolink_id = wait_for(
        "the create call",
        lambda: next((str(r.task_id) for r in _submits(simulator, marker) if r.status == 200 and r.task_id), None),
        timeout=60,
        interval=0.2,
        check=_still_running(airflow_cluster, dag_id, run_id),
    )
    # The operator stores the id in Airflow 3.3's task_state_store right after the create call.
    stored = wait_for(
        "the EvoLink task id in task_state_store",
        lambda: (
            airflow_cluster.query(
                "SELECT key, value FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ?",
                (dag_id, run_id, TASK_ID),
            )
            or None
        ),
        timeout=15,
        interval=0.2,
    )
    assert any(evolink_id in row["value"] for row in stored), stored
    ti = airflow_cluster.task_instance(dag_id, run_id, TASK_ID)
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    process = wait_for("the task process", lambda: airflow_cluster.task_process(ti["id"]), timeout=10)
    assert process.pid == ti["pid"], (process, ti)
    assert any(c.raddr and c.raddr.port == simulator.port for c in process.net_connections()), (
        "the task process has no connection to the simulator"
    )
    assert simulator.sim.view(evolink_id).status != "completed", "the kill must land while the task still runs"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    _run_to_end(airflow_cluster, dag_id, run_id, timeout=RUN_TIMEOUT + 30)

    assert len(_submits(simulator, marker)) == 1, "the retry submitted (and paid for) a second generation"
    tries = airflow_cluster.task_tries(dag_id, run_id, TASK_ID)
    assert [t["try_number"] for t in tries] == [1, 2], tries
    assert tries[-1]["state"] == "success"
    assert tries[0]["state"] != "success"
    _assert_video(simulator, output, airflow_cluster.xcom(dag_id, run_id, TASK_ID), evolink_id)
    retry_log = airflow_cluster.task_log(dag_id, run_id, TASK_ID, 2)
    assert f"Re-attaching to EvoLink task {evolink_id}" in retry_log, retry_log[-4000:]
    remaining = airflow_cluster.query(
        "SELECT key FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ?", (dag_id, run_id, TASK_ID)
    )
    assert not remaining, f"the stored task id was not cleared after the video was saved: {remaining}"


def test_triggerer_restart_keeps_waiting(
    airflow_cluster: AirflowCluster, simulator: SimulatorServer, tmp_path: Path
) -> None:
    """SIGKILL the triggerer while a trigger waits; a new triggerer picks the trigger up and finishes."""
    dag_id, marker, output = "kling_e2e_triggerer_restart", _marker(), tmp_path / "restarted.mp4"
    simulator.sim.generation_seconds = 15.0
    run_id = airflow_cluster.trigger(dag_id, _conf(marker, output))

    evolink_id = wait_for(
        "the create call",
        lambda: next((str(r.task_id) for r in _submits(simulator, marker) if r.status == 200 and r.task_id), None),
        timeout=60,
        interval=0.2,
        check=_still_running(airflow_cluster, dag_id, run_id),
    )
    # The first triggerer has the trigger and has polled the task at least once.
    wait_for(
        "the first poll from the triggerer",
        lambda: _polls(simulator, evolink_id) or None,
        timeout=30,
        interval=0.2,
        check=_still_running(airflow_cluster, dag_id, run_id),
    )
    first_jobs = _triggerer_jobs(airflow_cluster)
    assert airflow_cluster.task_instance(dag_id, run_id, TASK_ID)["state"] == "deferred"
    assert simulator.sim.view(evolink_id).status != "completed", "the restart must land while the task still runs"

    airflow_cluster.kill_component("triggerer")
    polls_before = len(_polls(simulator, evolink_id))
    airflow_cluster.restart_component("triggerer")
    new_jobs = [j for j in _triggerer_jobs(airflow_cluster) if j not in first_jobs]
    assert new_jobs, "the restarted triggerer registered no new job"

    _run_to_end(airflow_cluster, dag_id, run_id)

    assert len(_submits(simulator, marker)) == 1
    tries = airflow_cluster.task_tries(dag_id, run_id, TASK_ID)
    assert [t["state"] for t in tries] == ["success"], tries
    _assert_video(simulator, output, airflow_cluster.xcom(dag_id, run_id, TASK_ID), evolink_id)
    assert len(_polls(simulator, evolink_id)) > polls_before, "nobody polled the task after the restart"
    logs = _trigger_log_files(airflow_cluster, dag_id)
    assert set(new_jobs) & set(logs), f"the new triggerer {new_jobs} left no trigger log ({sorted(logs)})"
    _assert_no_key_anywhere(airflow_cluster)
