"""Process faults on a real Airflow (scheduler, triggerer(s), LocalExecutor), started by the tests.

tests/e2e already kills a worker mid-wait (the retry re-attaches, one POST) and restarts the only
triggerer under one waiting generation; these extend that:

* two triggerers, the one holding the trigger killed mid-wait: the other takes the trigger over;
  one event, one download, one POST;
* the triggerer killed while fifty generations wait, and a probe whose deadline passes while no
  triggerer runs: all fifty complete, and the probe times out at its original deadline;
* the task process killed mid-download (a slow answer, or half the video already on disk): no
  file at ``output``, and the retry saves the whole video without paying again.

Every wait polls with a deadline; the simulator lives in this process and counts what Airflow sent.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kling_provider.testing import EvoLinkSimulator, Fault, RequestRecord, SimulatorServer

from .cluster_support import ReliabilityCluster, StallingDownloads, sim_of, wait_for
from .support import dag_constants

pytestmark = pytest.mark.slow

DEFERRED, WORKER = "reliability_cluster_deferred", "reliability_cluster_worker"
FIFTY_DAG, PROBE_DAG = "reliability_fifty", "reliability_deadline_probe"
TASK = "generate"
DAG_CONSTANTS = dag_constants()


def _marker() -> str:
    return f"rel-{uuid.uuid4().hex[:10]}"


def _posts(sim: EvoLinkSimulator, marker: str) -> list[RequestRecord]:
    return [r for r in sim.requests if r.phase == "submit" and r.method == "POST" and marker in json.dumps(r.json)]


def _created(sim: EvoLinkSimulator, marker: str) -> list[str]:
    return [str(r.task_id) for r in _posts(sim, marker) if r.status == 200 and r.task_id]


def _downloads(sim: EvoLinkSimulator, task_id: str) -> list[RequestRecord]:
    return [r for r in sim.requests if r.phase == "download" and r.task_id == task_id and r.method == "GET"]


def _polls(sim: EvoLinkSimulator, task_id: str) -> list[RequestRecord]:
    return [r for r in sim.requests if r.phase == "poll" and r.task_id == task_id]


def _served_video(server: SimulatorServer, sim: EvoLinkSimulator, task_id: str) -> bytes:
    from .support import CANARY_KEY

    task = httpx.get(
        f"{server.base_url}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {CANARY_KEY}"}, timeout=30
    ).json()
    return httpx.get(task["results"][0], timeout=30).content


def _still_running(cluster: ReliabilityCluster, dag_id: str, run_id: str) -> Any:
    def check() -> None:
        cluster.check_alive()
        state = cluster.dag_run(dag_id, run_id).get("state")
        if state in ("success", "failed"):
            pytest.fail(f"{dag_id}/{run_id} ended {state!r} too early:\n{_logs(cluster, dag_id, run_id)}")

    return check


def _logs(cluster: ReliabilityCluster, dag_id: str, run_id: str, map_index: int = -1) -> str:
    path = cluster._ti_path(dag_id, run_id, TASK) + (f"/{map_index}" if map_index >= 0 else "")
    tries = cluster.get(path + "/tries")["task_instances"]
    return "\n".join(
        f"--- try {t['try_number']} ({t['state']}) ---\n" + _try_log(cluster, path, int(t["try_number"])) for t in tries
    )


def _try_log(cluster: ReliabilityCluster, ti_path: str, try_number: int) -> str:
    response = cluster.api.get(
        f"{ti_path}/logs/{try_number}", params={"full_content": "true"}, headers={"Accept": "application/json"}
    )
    content = response.json().get("content") if response.status_code == 200 else response.text
    if isinstance(content, list):
        return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in content)
    return str(content)


def _tries(cluster: ReliabilityCluster, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return list(cluster.task_tries(dag_id, run_id, TASK))


def _assert_saved(server: SimulatorServer, sim: EvoLinkSimulator, output: Path, task_id: str) -> None:
    assert output.is_file(), f"no video at {output}"
    assert output.read_bytes() == _served_video(server, sim, task_id), "the saved video differs from EvoLink's"


def _trigger_logs(cluster: ReliabilityCluster, dag_id: str, run_id: str) -> dict[int, str]:
    """Trigger log files of the run's task, by the triggerer job that wrote them."""
    found = {}
    for path in cluster.task_log_files():
        if f"dag_id={dag_id}" in str(path) and f"run_id={run_id}" in str(path) and ".log.trigger." in path.name:
            found[int(path.name.rsplit(".trigger.", 1)[1].split(".")[0])] = path.read_text(errors="replace")
    return found


# -- two triggerers ---------------------------------------------------------------------------------


def test_killing_the_triggerer_that_holds_the_trigger_hands_it_to_the_other(
    cluster: ReliabilityCluster, reliability_server: SimulatorServer, tmp_path: Path
) -> None:
    sim = sim_of(reliability_server)
    sim.generation_seconds = 45.0
    cluster.start_triggerer_with_job("triggerer-2")
    jobs = {name: cluster.job_of[name] for name in ("triggerer", "triggerer-2")}
    marker, output = _marker(), tmp_path / "two-triggerers.mp4"
    run_id = cluster.trigger(DEFERRED, {"prompt": f"two triggerers ({marker})", "output_uri": str(output)})
    check = _still_running(cluster, DEFERRED, run_id)

    (task_id,) = wait_for("the create call", lambda: _created(sim, marker) or None, timeout=90, check=check)
    holder_job = wait_for(
        "a triggerer holding the trigger",
        lambda: next((r["triggerer_id"] for r in cluster.trigger_rows(DEFERRED, run_id) if r["triggerer_id"]), None),
        timeout=60,
        check=check,
    )
    wait_for("a poll from the holder", lambda: _polls(sim, task_id) or None, timeout=60, check=check)
    (trigger_before,) = cluster.trigger_rows(DEFERRED, run_id)
    holder = next(name for name, job in jobs.items() if job == holder_job)
    other = next(name for name in jobs if name != holder)
    assert sim.view(task_id).status != "completed", "the kill must land while the generation runs"

    cluster.kill_triggerer(holder)
    killed_at = time.time()
    takeover = wait_for(
        f"{other} (job {jobs[other]}) taking over the trigger",
        lambda: next(
            (r for r in cluster.trigger_rows(DEFERRED, run_id) if r["triggerer_id"] == jobs[other]),
            None,
        ),
        timeout=120,
        check=cluster.check_alive,
    )
    polls_before_takeover = len(_polls(sim, task_id))
    assert takeover["trigger_id"] == trigger_before["trigger_id"], "the same trigger row, not a new one"
    assert takeover["kwargs_plain"] == trigger_before["kwargs_plain"], "kwargs (deadline included) kept"
    wait_for(
        "a poll from the new holder", lambda: len(_polls(sim, task_id)) > polls_before_takeover or None, timeout=60
    )
    sim.clock.advance(sim.generation_seconds or 0)  # finish the generation now: nothing more to prove by waiting

    assert cluster.wait_for_run(DEFERRED, run_id, timeout=180) == "success", _logs(cluster, DEFERRED, run_id)
    assert len(_posts(sim, marker)) == 1, "one create call"
    assert len(_downloads(sim, task_id)) == 1, "one download"
    assert [t["state"] for t in _tries(cluster, DEFERRED, run_id)] == ["success"]
    _assert_saved(reliability_server, sim, output, task_id)
    # Exactly one event: the task resumed once, and only the new holder's trigger log shows one.
    task_log = _logs(cluster, DEFERRED, run_id)
    assert task_log.count(f"Saved {output.as_uri()}") == 1, task_log[-3000:]
    trigger_logs = _trigger_logs(cluster, DEFERRED, run_id)
    events = {job: text.count("'status': 'completed'") for job, text in trigger_logs.items()}
    fired = {job: n for job, n in events.items() if n}
    assert list(fired) == [jobs[other]], f"events by triggerer job: {events}"
    assert fired[jobs[other]] >= 1
    assert time.time() - killed_at < 180


# -- a restart while fifty generations (and a deadline) wait ---------------------------------------


def test_triggerer_restart_with_fifty_waiting_keeps_every_wait_and_the_original_deadlines(
    cluster: ReliabilityCluster, reliability_server: SimulatorServer, tmp_path: Path
) -> None:
    fifty, probe_timeout = DAG_CONSTANTS.FIFTY, DAG_CONSTANTS.PROBE_TIMEOUT
    sim = sim_of(reliability_server)
    sim.generation_seconds = 600.0  # nothing completes until the clock is moved on, after the restart
    marker = _marker()
    run_id = cluster.trigger(FIFTY_DAG, {"marker": marker, "out_dir": str(tmp_path)})
    check = _still_running(cluster, FIFTY_DAG, run_id)
    wait_for(
        f"all {fifty} generations deferred",
        lambda: (sum(s == "deferred" for s in cluster.task_states(FIFTY_DAG, run_id).values()) == fifty) or None,
        timeout=300,
        interval=1,
        check=check,
    )
    probe_marker = _marker()
    before_probe = time.time()
    probe_run = cluster.trigger(PROBE_DAG, {"prompt": f"deadline probe ({probe_marker})"})
    (probe,) = wait_for(
        "the probe deferred",
        lambda: [r for r in cluster.trigger_rows(PROBE_DAG, probe_run) if r["state"] == "deferred"] or None,
        timeout=120,
        check=_still_running(cluster, PROBE_DAG, probe_run),
    )
    deadline = _deadline(probe["kwargs_plain"])
    (probe_task,) = _created(sim, probe_marker)
    # Wall-clock bounds (the simulator's clock may run ahead: earlier tests move it on).
    assert before_probe + probe_timeout <= deadline <= time.time() + probe_timeout, "deadline = submit + timeout"
    before = {(r["map_index"]): r["kwargs_plain"] for r in cluster.trigger_rows(FIFTY_DAG, run_id)}
    assert len(before) == fifty

    cluster.kill_triggerer("triggerer")
    assert time.time() < deadline, "the triggerer must go down before the probe's deadline"
    wait_for("the probe's deadline to pass", lambda: (time.time() > deadline + 1) or None, timeout=probe_timeout + 30)
    restarted = time.time()
    cluster.start_triggerer_with_job("triggerer")

    # The probe times out at once, at the deadline it was given: not probe_timeout after the restart.
    assert cluster.wait_for_run(PROBE_DAG, probe_run, timeout=120) == "failed"
    ended = _end_date(cluster.task_instance(PROBE_DAG, probe_run, TASK))
    assert ended - restarted < probe_timeout / 2, f"timed out {ended - restarted:.0f} s after the restart"
    probe_log = _logs(cluster, PROBE_DAG, probe_run)
    assert "was still running at the deadline" in probe_log, probe_log[-3000:]
    assert f"({_iso_utc(deadline)})" in probe_log, f"the timeout names another deadline: {probe_log[-3000:]}"
    assert len(_posts(sim, probe_marker)) == 1 and sim.view(probe_task).status != "completed"

    after = {(r["map_index"]): r["kwargs_plain"] for r in cluster.trigger_rows(FIFTY_DAG, run_id)}
    assert after == before, "the fifty triggers were picked up unchanged (same deadlines)"
    sim.clock.advance(sim.generation_seconds or 0)
    assert cluster.wait_for_run(FIFTY_DAG, run_id, timeout=300) == "success"
    created = _created(sim, marker)
    assert len(created) == len(_posts(sim, marker)) == fifty, "one create call per generation"
    states = cluster.task_states(FIFTY_DAG, run_id)
    assert set(states.values()) == {"success"} and len(states) == fifty
    for i in range(fifty):
        data = (tmp_path / f"video-{i}.mp4").read_bytes()
        assert data[4:8] == b"ftyp"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"video-{i}.mp4{sidecar}" for i in range(fifty) for sidecar in ("", ".kling.json")
    )
    for task_id in created:
        assert len(_downloads(sim, task_id)) == 1


def _deadline(kwargs_plain: str) -> float:
    match = re.search(r"\"deadline\":\s*([0-9.]+)", kwargs_plain)
    assert match, kwargs_plain
    return float(match.group(1))


def _end_date(ti: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(ti["end_date"]).replace("Z", "+00:00")).timestamp()


def _iso_utc(ts: float) -> str:
    from datetime import timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


# -- killed mid-download ------------------------------------------------------------------------------


@pytest.mark.parametrize("hold", ["slow answer", "half the video sent"])
def test_task_killed_mid_download_leaves_no_file_and_the_retry_saves_it(
    cluster: ReliabilityCluster, reliability_server: SimulatorServer, tmp_path: Path, hold: str
) -> None:
    sim = sim_of(reliability_server)
    stalling = reliability_server.sim
    assert isinstance(stalling, StallingDownloads)
    sim.generation_seconds = 2.0
    marker, output = _marker(), tmp_path / "out" / "video.mp4"
    if hold == "slow answer":
        sim.faults.add(Fault(phase="download", kind="slow", delay=600, times=1))
    else:
        stalling.arm()
    run_id = cluster.trigger(WORKER, {"prompt": f"killed mid-download ({marker})", "output_uri": str(output)})
    check = _still_running(cluster, WORKER, run_id)
    try:
        if hold == "slow answer":
            wait_for(
                "the held download",
                lambda: [r for r in sim.requests if r.phase == "download" and r.fault == "slow"] or None,
                timeout=90,
                check=check,
            )
        else:
            wait_for("the held download", lambda: stalling.stalled.is_set() or None, timeout=90, check=check)
        ti = cluster.task_instance(WORKER, run_id, TASK)
        assert ti["state"] == "running" and ti["try_number"] == 1, ti
        process = wait_for("the task process", lambda: cluster.task_process(ti["id"]), timeout=20)
        parts = list(output.parent.glob(f".{output.name}.part-*")) if output.parent.exists() else []
        if hold == "half the video sent":
            assert parts, "the download had started writing its part file"
        assert not output.exists(), "nothing at output while the download is held"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)
        assert not output.exists(), "the kill left nothing at output"
    finally:
        stalling.release()
        sim.faults.clear()

    assert cluster.wait_for_run(WORKER, run_id, timeout=180) == "success", _logs(cluster, WORKER, run_id)
    (task_id,) = _created(sim, marker)
    assert len(_posts(sim, marker)) == 1, "the retry saved the video it had paid for, without a new task"
    tries = _tries(cluster, WORKER, run_id)
    assert [t["state"] for t in tries][-1] == "success" and len(tries) == 2, tries
    _assert_saved(reliability_server, sim, output, task_id)
    leftovers = sorted(
        p.name for p in output.parent.iterdir() if p.name not in (output.name, output.name + ".kling.json")
    )
    assert not leftovers, f"partial downloads left beside the video: {leftovers}"
    retry_log = _try_log(cluster, cluster._ti_path(WORKER, run_id, TASK), 2)
    assert "already completed on an earlier try" in retry_log, retry_log[-3000:]


# -- killed inside the create call ----------------------------------------------------------------


def test_task_killed_inside_its_create_call_fails_for_good_and_a_clear_submits_anew(
    cluster: ReliabilityCluster, reliability_server: SimulatorServer, tmp_path: Path
) -> None:
    """EvoLink has created (and billed) the task but not answered yet when the worker dies: the
    retry must not pay again. It fails for good, saying what to look for; clearing the task after
    looking in the console submits anew."""
    sim = sim_of(reliability_server)
    sim.generation_seconds = 2.0
    marker, output = _marker(), tmp_path / "out" / "video.mp4"
    sim.faults.add(Fault(phase="submit", kind="slow", delay=600, times=1))
    run_id = cluster.trigger(WORKER, {"prompt": f"killed inside its create call ({marker})", "output_uri": str(output)})
    check = _still_running(cluster, WORKER, run_id)
    try:
        wait_for(
            "the held create call",
            lambda: [r for r in _posts(sim, marker) if r.fault == "slow"] or None,
            timeout=90,
            check=check,
        )
        ti = cluster.task_instance(WORKER, run_id, TASK)
        assert ti["state"] == "running" and ti["try_number"] == 1, ti
        process = wait_for("the task process", lambda: cluster.task_process(ti["id"]), timeout=20)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)
    finally:
        sim.faults.clear()

    assert cluster.wait_for_run(WORKER, run_id, timeout=180) == "failed", _logs(cluster, WORKER, run_id)
    mine = [t for t in sim.tasks if marker in str(t.body.get("prompt"))]
    assert len(mine) == 1 and len(_posts(sim, marker)) == 1, "the retry sent no second create call"
    tries = _tries(cluster, WORKER, run_id)
    assert [t["state"] for t in tries] == ["failed", "failed"], tries
    second = _try_log(cluster, cluster._ti_path(WORKER, run_id, TASK), 2)
    assert "An earlier try stopped while asking EvoLink to create a kling-v3-text-to-video task" in second, second[
        -3000:
    ]
    assert marker in second and "clear this task to submit again" in second
    assert not output.exists()

    # Someone looked, found nothing to reuse, and cleared the task: the next try submits anew.
    cleared_at = cluster.clear_run(WORKER, run_id)
    assert cluster.wait_for_run(WORKER, run_id, timeout=180, ended_after=cleared_at) == "success", _logs(
        cluster, WORKER, run_id
    )
    posts = _posts(sim, marker)
    assert len(posts) == 2 and posts[1].status == 200
    third = _try_log(cluster, cluster._ti_path(WORKER, run_id, TASK), 3)
    assert "reported by an earlier try; this try comes after it: submitting anew" in third, third[-3000:]
    _assert_saved(reliability_server, sim, output, str(posts[1].task_id))
