"""Load with faults: one DAG run maps a hundred image-to-video generations on a real Airflow while
about 5 % of the requests of every phase fail transiently.

Faults (seeded): on the create call 429s and 503s with EvoLink's error body (refused before any
task exists, so retried in the hook); on uploads, polls and downloads 5xx answers, dropped
connections and proxy pages. The run must end with a hundred videos saved, a hundred tasks
created (one per generation: the refused create calls created none), and every task instance
successful without a manual rerun (an automatic Airflow retry may re-attach; it never pays again).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from kling_provider.testing import Fault, SimulatorServer
from kling_provider.testing.media import make_png

from .cluster_support import ReliabilityCluster, sim_of, wait_for
from .support import CANARY_KEY, dag_constants

pytestmark = pytest.mark.slow

LOAD_DAG = "reliability_load"


def _faults() -> list[Fault]:
    """About 5 % of each phase's requests fail, spread over the kinds of failure seen there: each
    kind once at a fixed request (so every kind is met on every run), then at a seeded rate."""
    kinds: list[dict[str, object]] = [
        {"phase": "submit", "kind": "status", "status": 429},
        {"phase": "submit", "kind": "status", "status": 503},
        {"phase": "upload", "kind": "status", "status": 502},
        {"phase": "upload", "kind": "drop"},
        {"phase": "poll", "kind": "status", "status": 503},
        {"phase": "poll", "kind": "drop"},
        {"phase": "poll", "kind": "malformed", "malformed": "html"},
        {"phase": "download", "kind": "drop"},
        {"phase": "download", "kind": "status", "status": 503},
    ]
    per_phase = {k["phase"]: sum(1 for other in kinds if other["phase"] == k["phase"]) for k in kinds}
    once = [Fault(**k, times=1, after=7 + 11 * i) for i, k in enumerate(kinds)]  # type: ignore[arg-type]
    rated = [Fault(**k, rate=0.045 / per_phase[str(k["phase"])]) for k in kinds]  # type: ignore[arg-type]
    return once + rated


#: The whole run, submit to last save, on two cores.
BUDGET_SECONDS = 300


def test_a_hundred_generations_through_transient_faults(
    cluster: ReliabilityCluster, reliability_server: SimulatorServer, tmp_path: Path
) -> None:
    hundred = dag_constants().HUNDRED
    sim = sim_of(reliability_server)
    sim.generation_seconds = 8.0
    image = tmp_path / "frame.png"
    image.write_bytes(make_png(1280, 720))
    out_dir = tmp_path / "videos"
    marker = f"load-{int(time.time())}"
    first_request = len(sim.requests)
    faults = [sim.faults.add(fault) for fault in _faults()]

    started = time.monotonic()
    run_id = cluster.trigger(LOAD_DAG, {"marker": marker, "out_dir": str(out_dir), "image": str(image)})
    state = cluster.wait_for_run(LOAD_DAG, run_id, timeout=BUDGET_SECONDS)
    elapsed = time.monotonic() - started
    sim.faults.clear()

    requests = sim.requests[first_request:]
    ours = [r for r in requests if r.phase != "submit" or marker in json.dumps(r.json)]
    submits = [r for r in ours if r.phase == "submit" and r.method == "POST"]
    created = [str(r.task_id) for r in submits if r.status == 200 and r.task_id]
    injected = sum(f.hits for f in faults)
    by_phase = {p: sum(1 for r in ours if r.phase == p) for p in ("upload", "submit", "poll", "download")}
    failed_by_phase = {p: sum(f.hits for f in faults if f.phase == p) for p in by_phase}
    states = cluster.task_states(LOAD_DAG, run_id)
    tries = {
        i: len(cluster.get(cluster._ti_path(LOAD_DAG, run_id, "generate") + f"/{i}/tries")["task_instances"])
        for i in range(hundred)
    }
    print(
        f"\nload: {hundred} generations in {elapsed:.0f} s; requests {by_phase}, failed by injection "
        f"{failed_by_phase} ({injected} in all, {100 * injected / max(1, sum(by_phase.values())):.1f} %); "
        f"create calls {len(submits)}, tasks created {len(created)}; "
        f"task instances retried by Airflow {sum(1 for n in tries.values() if n > 1)}"
    )

    assert state == "success", f"run ended {state}: {states}"
    assert elapsed < BUDGET_SECONDS
    assert set(states.values()) == {"success"} and len(states) == hundred, states
    assert len(created) == len(set(created)) == hundred, "one task per generation"
    assert len(submits) == hundred + sum(f.hits for f in faults if f.phase == "submit"), (
        "every create call beyond one per generation is one the API refused before creating a task"
    )
    for fault in faults:
        if fault.rate is None:
            assert fault.hits == 1, f"{fault.kind}/{fault.phase} never fired: the run did not meet that fault"
    for phase, total in by_phase.items():
        assert 0 < failed_by_phase[phase] <= 0.12 * total, (phase, failed_by_phase[phase], total)
    assert 0.03 <= injected / sum(by_phase.values()) <= 0.09, "about 5 % of all requests failed"
    saved = sorted(p.name for p in out_dir.iterdir())
    expected = sorted(f"video-{i}.mp4{sidecar}" for i in range(hundred) for sidecar in ("", ".kling.json"))
    assert saved == expected, f"missing or extra files: {saved[:10]}..."
    served = {}
    for task_id in created:
        view = httpx.get(
            f"{reliability_server.base_url}/v1/tasks/{task_id}",
            headers={"Authorization": f"Bearer {CANARY_KEY}"},
            timeout=30,
        ).json()
        assert view["status"] == "completed"
        served[task_id] = httpx.get(view["results"][0], timeout=30).content
    videos = {(out_dir / name).read_bytes() for name in saved if name.endswith(".mp4")}
    assert videos <= set(served.values()), "a saved file is not a video EvoLink served"
    for name in saved:  # each sidecar names the task whose video lies beside it
        if name.endswith(".kling.json"):
            task_id = json.loads((out_dir / name).read_text())["task_id"]
            assert (out_dir / name.removesuffix(".kling.json")).read_bytes() == served[task_id], name
    wait_for("nothing left deferred", lambda: not cluster.trigger_rows(LOAD_DAG, run_id) or None, timeout=30)
