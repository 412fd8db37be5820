"""End-to-end: the campaign example (dags_examples/kling_campaign.py) on a real Airflow.

Twenty products fan out into twenty mapped generations: each is submitted by a LocalExecutor
worker, waits in the separate triggerer and is saved by a worker again, and the simulator (in
this test process) sees exactly one create call per product. Clearing the same DAG run then
runs every task again and pays for nothing: no POST reaches the simulator.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pytest

from kling_provider.testing import SimulatorServer

from .cluster import AirflowCluster
from .conftest import running_cluster

pytestmark = pytest.mark.slow

DAG_FILE = Path(__file__).resolve().parents[2] / "dags_examples" / "kling_campaign.py"
DAG_ID = "kling_campaign"
PRODUCTS = 20
#: Seconds each simulated generation takes: long enough that every task really defers.
GENERATION_SECONDS = 3.0
RUN_TIMEOUT = 600.0
#: What a teaser logs when its video is already saved from the same request.
_SKIPPED = "Skipped: already saved at "
#: A structured log line at warning level or above.
_LEVEL = re.compile(r'"level":\s*"(warning|error|critical)"')
#: 5 s at 720p without sound: 27 credits, $0.375 (the published price table).
CREDITS_EACH, USD_EACH = 27.0, 0.375


@dataclass(frozen=True)
class Campaign:
    run_id: str
    marker: str
    folder: Path  # where the run's videos and manifest are
    seconds: float  # wall time of the first run, trigger to end


@pytest.fixture(scope="module")
def campaign_cluster(
    simulator_server: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowCluster]:
    """A real Airflow with the example DAG file as shipped; runs only when triggered (no schedule)."""
    with running_cluster(
        tmp_path_factory.mktemp("airflow-campaign"),
        simulator_server,
        [DAG_FILE],
        [DAG_ID],
        # The DAG is @daily: without this, unpausing it would start a scheduled run too.
        extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def first_run(
    campaign_cluster: AirflowCluster, simulator_server: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Campaign]:
    """One run of the campaign over a 20-product catalogue, to its end."""
    root = tmp_path_factory.mktemp("campaign")
    marker = f"campaign-{uuid.uuid4().hex[:10]}"
    catalogue = root / "catalogue.csv"
    with catalogue.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "product", "scene", "duration"])
        for n in range(PRODUCTS):
            writer.writerow([f"P{n:02d}", f"product {n:02d} ({marker})", "on a marble table", 5])
    sim = simulator_server.sim
    saved = sim.generation_seconds
    sim.generation_seconds = GENERATION_SECONDS
    try:
        started = time.monotonic()
        run_id = campaign_cluster.trigger(DAG_ID, {"catalogue": str(catalogue), "output_dir": str(root / "videos")})
        state = campaign_cluster.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
        seconds = time.monotonic() - started
        if state != "success":
            pytest.fail(f"the campaign run ended {state!r}:\n{_not_succeeded(campaign_cluster, run_id)}")
        [folder] = (root / "videos").iterdir()  # <output_dir>/<run date>/
        yield Campaign(run_id, marker, folder, seconds)
    finally:
        sim.generation_seconds = saved


# -- helpers ------------------------------------------------------------------------------------


def _posts(sim_server: SimulatorServer, since: int = 0) -> list[Any]:
    return [r for r in sim_server.sim.requests[since:] if r.method == "POST"]


def _submitted_prompts(sim_server: SimulatorServer, marker: str) -> list[str]:
    return [
        str(r.json["prompt"]) for r in _posts(sim_server) if r.phase == "submit" and marker in json.dumps(r.json or {})
    ]


def _mapped_tries(cluster: AirflowCluster, run_id: str) -> dict[int, list[dict[str, Any]]]:
    """map index -> the tries of that mapped teaser, oldest first."""
    base = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/teaser"
    return {n: list(cluster.get(f"{base}/{n}/tries")["task_instances"]) for n in range(PRODUCTS)}


def _not_succeeded(cluster: AirflowCluster, run_id: str) -> str:
    """The run's task instances that did not succeed, with their states (for a failure message)."""
    tis = cluster.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]
    return "\n".join(f"{ti['task_id']}[{ti['map_index']}]: {ti['state']}" for ti in tis if ti["state"] != "success")


def _task_logs(cluster: AirflowCluster) -> dict[str, str]:
    """The DAG's task and trigger log files (path -> text), as the workers and triggerer wrote them."""
    return {
        str(path): path.read_text(errors="replace")
        for path in cluster.task_log_files()
        if f"dag_id={DAG_ID}" in str(path)
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(campaign: Campaign) -> dict[str, Any]:
    return dict(json.loads((campaign.folder / "manifest.json").read_text()))


# -- tests --------------------------------------------------------------------------------------


def test_twenty_mapped_generations_each_pay_once_through_the_triggerer(
    campaign_cluster: AirflowCluster, simulator_server: SimulatorServer, first_run: Campaign
) -> None:
    prompts = _submitted_prompts(simulator_server, first_run.marker)
    for n in range(PRODUCTS):
        mine = [p for p in prompts if p.startswith(f"product {n:02d} (")]
        assert len(mine) == 1, f"product {n:02d} was submitted {len(mine)} times"
    assert len(prompts) == PRODUCTS

    # Every mapped task deferred (its trigger logged by a triggerer job) and succeeded (a retry on a
    # loaded machine re-attaches to its task: the POST count above is what proves billing once).
    tries = _mapped_tries(campaign_cluster, first_run.run_id)
    assert all(t[-1]["state"] == "success" for t in tries.values()), tries
    deferred = {
        int(m.group(1))
        for path in _task_logs(campaign_cluster)
        if ".log.trigger." in path
        for m in [re.search(r"map_index=(\d+)/", path)]
        if m
    }
    assert deferred == set(range(PRODUCTS)), f"mapped indexes without a trigger log: {set(range(PRODUCTS)) - deferred}"

    manifest = _manifest(first_run)
    assert manifest["run_id"] == first_run.run_id
    assert [i["sku"] for i in manifest["items"]] == [f"P{n:02d}" for n in range(PRODUCTS)]
    for item in manifest["items"]:
        video = Path(urlparse(item["output_uri"]).path)
        assert video == first_run.folder / f"{item['sku']}.mp4"
        assert video.read_bytes()[4:8] == b"ftyp"
        assert (item["credits"], item["usd"]) == (pytest.approx(CREDITS_EACH), pytest.approx(USD_EACH))
    assert manifest["totals"] == {
        "items": PRODUCTS,
        "credits": pytest.approx(PRODUCTS * CREDITS_EACH),
        "usd": pytest.approx(PRODUCTS * USD_EACH),
        "mismatched": 0,
        "reused": 0,
        "credits_this_run": pytest.approx(PRODUCTS * CREDITS_EACH),
        "usd_this_run": pytest.approx(PRODUCTS * USD_EACH),
    }
    assert not any(item["reused"] for item in manifest["items"])
    print(f"\ncampaign of {PRODUCTS} on a real Airflow: {first_run.seconds:.1f} s from trigger to end")


def test_clearing_the_run_pays_for_nothing_again(
    campaign_cluster: AirflowCluster, simulator_server: SimulatorServer, first_run: Campaign
) -> None:
    before = _manifest(first_run)
    videos = {item["sku"]: _digest(first_run.folder / f"{item['sku']}.mp4") for item in before["items"]}
    requests_before = len(simulator_server.sim.requests)

    # Clear the whole run, as "Clear" on the run in the UI does: every task runs again.
    started = time.monotonic()
    cleared_at = campaign_cluster.clear_run(DAG_ID, first_run.run_id)
    state = campaign_cluster.wait_for_run(DAG_ID, first_run.run_id, timeout=RUN_TIMEOUT, ended_after=cleared_at)
    seconds = time.monotonic() - started
    assert state == "success", _not_succeeded(campaign_cluster, first_run.run_id)
    tries = _mapped_tries(campaign_cluster, first_run.run_id)
    assert all(len(t) >= 2 and t[-1]["state"] == "success" for t in tries.values()), tries

    assert _posts(simulator_server, requests_before) == [], "the re-run sent a POST (a paid create call?)"
    after = _manifest(first_run)
    assert after["run_id"] == first_run.run_id
    assert (first_run.folder / "manifest.json").stat().st_mtime >= cleared_at, "the manifest was not written again"
    assert [i["evolink_task_id"] for i in after["items"]] == [i["evolink_task_id"] for i in before["items"]]
    # The catalogue's videos cost what they did; this run reused every one and paid nothing.
    assert all(item["reused"] for item in after["items"])
    assert after["totals"] == {**before["totals"], "reused": PRODUCTS, "credits_this_run": 0, "usd_this_run": 0}
    assert {sku: _digest(first_run.folder / f"{sku}.mp4") for sku in videos} == videos, "a saved video changed"
    logs = _task_logs(campaign_cluster)
    skipped = {
        n for n in range(PRODUCTS) for path, text in logs.items() if f"map_index={n}/" in path and _SKIPPED in text
    }
    assert skipped == set(range(PRODUCTS)), f"teasers that did not log {_SKIPPED!r}: {set(range(PRODUCTS)) - skipped}"
    # Two healthy runs: not one warning or error in any task or trigger log.
    noisy = [line for text in logs.values() for line in text.splitlines() if _LEVEL.search(line)]
    assert not noisy, "\n".join(noisy[:10])
    print(f"\nre-run of the cleared campaign: {seconds:.1f} s, 0 POSTs")
