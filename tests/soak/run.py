"""Run a soak: N generations on a production-shaped Airflow through faults and kills, then judge.

The cluster is tests/e2e's harness on PostgreSQL + Redis + Celery (two workers, two triggerers,
scheduler, dag-processor, api-server); the simulator runs in its own process (soak.simproc).
After start-up the simulator begins failing about ``fault_rate`` of the requests of every phase
(429s and 503s on create calls, as EvoLink answers them; 5xx, dropped connections and proxy pages
on uploads, polls and downloads; expired result links; a few generations failing on EvoLink's
side), the DAG runs are triggered together, and the chaos loop kills a component every
``kill_every`` seconds until every run has ended. Then the checks in soak.checks read the
simulator's request log, the metadata database and the videos on disk.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from e2e.cluster import AirflowCluster, component_kind
from e2e.services import production_cluster

from kling_provider.testing.media import make_png

from .chaos import Chaos
from .checks import Generation, Verdict, history, judge

__all__ = ["SoakConfig", "SoakResult", "run_soak"]

TESTS = Path(__file__).resolve().parents[1]
DAG_FILE = TESTS / "dags" / "kling_soak_dags.py"
DAG_ID = "kling_soak"
SOAK_KEY = "sk-kling-soak-3b9e61d04c7a"


@dataclass
class SoakConfig:
    generations: int = 1000
    per_run: int = 50
    #: Share of the requests of every phase that fail (spread over the kinds seen in that phase).
    fault_rate: float = 0.05
    kill_every: tuple[float, float] = (30.0, 90.0)
    pause: tuple[float, float] = (5.0, 15.0)
    #: Mean generation length on the simulator (+/- 30 %).
    generation_seconds: float = 20.0
    #: Give up waiting for the runs after this long (the verdict then shows what was missing).
    budget_seconds: float = 4 * 3600.0
    worker_concurrency: int = 6
    rate_limit_rpm: int = 1200
    seed: int = 13
    #: Whole-run budget of the reduced soak is what CI can afford; print progress this often.
    progress_every: float = 60.0


@dataclass
class SoakResult:
    config: SoakConfig
    verdict: Verdict
    chaos: Chaos
    wall_seconds: float
    run_seconds: float
    peak_rss: dict[str, float]
    settings: dict[str, str]
    database_version: str = ""
    details: list[str] = field(default_factory=list)

    def table(self) -> str:
        return render_table(self)


# -- the simulator in its own process -----------------------------------------------------------


class SimulatorProcess:
    """``python -m soak.simproc`` with the soak's key, and its control API."""

    def __init__(self, config: SoakConfig, log_path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "soak.simproc", "--api-key", SOAK_KEY, "--seed", str(config.seed)),
                *("--generation-seconds", str(config.generation_seconds), "--duration-jitter", "0.3"),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the simulator did not start (said {self.base_url!r}); see {log_path}")
        self.client = httpx.Client(base_url=self.base_url, timeout=120)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(method, f"/_soak/{path}", json=body)
        response.raise_for_status()
        return response.json()

    def served(self, task_id: str) -> bytes:
        """The video EvoLink serves for a completed task (its current link)."""
        headers = {"Authorization": f"Bearer {SOAK_KEY}"}
        task = self.client.get(f"/v1/tasks/{task_id}", headers=headers).json()
        return self.client.get(task["results"][0]).content

    def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def soak_faults(rate: float) -> list[dict[str, Any]]:
    """About ``rate`` of each phase's requests fail, spread over the kinds of failure seen there,
    each kind also once at a fixed request so that every kind is met even in a short soak.
    Create calls fail only as EvoLink refuses them (429/503/500 with its error body): an answer
    lost after sending would leave the outcome unknown, which the operator rightly refuses to
    guess about (docs/reliability.md), and no soak can count as billed once or lost."""
    kinds: list[dict[str, Any]] = [
        {"phase": "submit", "kind": "status", "status": 429, "retry_after": 1},
        {"phase": "submit", "kind": "status", "status": 503},
        {"phase": "submit", "kind": "status", "status": 500},
        {"phase": "upload", "kind": "status", "status": 502},
        {"phase": "upload", "kind": "drop"},
        {"phase": "poll", "kind": "status", "status": 503},
        {"phase": "poll", "kind": "status", "status": 429},
        {"phase": "poll", "kind": "drop"},
        {"phase": "poll", "kind": "malformed", "malformed": "html"},
        {"phase": "download", "kind": "drop"},
        {"phase": "download", "kind": "status", "status": 503},
    ]
    per_phase = Counter(str(k["phase"]) for k in kinds)
    # Downloads also meet expired links (the simulator's expire_rate, a fifth of the download share).
    share = {phase: rate * (0.8 if phase == "download" else 1.0) for phase in per_phase}
    once = [{**k, "times": 1, "after": 5 + 7 * i} for i, k in enumerate(kinds)]
    rated = [{**k, "rate": share[str(k["phase"])] / per_phase[str(k["phase"])]} for k in kinds]
    # A few generations fail on EvoLink's side with a retryable code: the one case where a
    # second create call for a generation is right.
    failing = [
        {"kind": "fail_task", "error_code": "service_error", "at_progress": 50, "times": 1, "after": 10},
        {"kind": "fail_task", "error_code": "service_error", "at_progress": 50, "rate": 0.01},
    ]
    return once + rated + failing


# -- measuring ------------------------------------------------------------------------------------


class RssPeaks:
    """Peak RSS of each component kind: the whole process tree of one instance (a worker with its
    task processes), the highest seen over instances and restarts."""

    def __init__(self) -> None:
        self.peak: dict[str, float] = {}

    def sample(self, named: dict[str, int]) -> None:
        for name, pid in named.items():
            try:
                leader = psutil.Process(pid)
                family = [leader, *leader.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            total = 0
            for process in family:
                with suppress(psutil.NoSuchProcess):
                    total += process.memory_info().rss
            kind = component_kind(name)
            self.peak[kind] = max(self.peak.get(kind, 0.0), total / 2**20)


# -- the run ----------------------------------------------------------------------------------------


def soak_environment(config: SoakConfig) -> dict[str, str]:
    parallelism = 2 * config.worker_concurrency
    return {
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2000",
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "2048",
        "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "128",
        "AIRFLOW__TRIGGERER__CAPACITY": "1000",
        # A task whose worker was killed is noticed after 30 s and retried.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__KLING__TRIGGER_SETTLE_SECONDS": "5",
    }


def connection(base_url: str, config: SoakConfig) -> dict[str, Any]:
    return {
        "conn_type": "kling",
        "host": base_url,
        "password": SOAK_KEY,
        "extra": {"files_host": base_url, "timeout": 60, "rate_limit_rpm": config.rate_limit_rpm},
    }


@contextmanager
def soak_cluster(root: Path, config: SoakConfig) -> Iterator[tuple[AirflowCluster, SimulatorProcess]]:
    root.mkdir(parents=True, exist_ok=True)
    sim = SimulatorProcess(config, root / "simulator.log")
    try:
        with production_cluster(
            root,
            dag_files=[DAG_FILE],
            connections={"kling_default": connection(sim.base_url, config)},
            extra_env=soak_environment(config),
            worker_concurrency=config.worker_concurrency,
        ) as cluster:
            yield cluster, sim
    finally:
        sim.stop()


def run_soak(root: Path, config: SoakConfig, *, say: Any = print) -> SoakResult:
    """Start everything, run the soak, judge it, tear everything down; return the result."""
    started = time.monotonic()
    with soak_cluster(root, config) as (cluster, sim):
        cluster.wait_for_dag(DAG_ID, timeout=300)
        say(f"soak: cluster up in {time.monotonic() - started:.0f} s ({root})")
        image = root / "frame.png"
        image.write_bytes(make_png(1280, 720))
        marker = uuid.uuid4().hex[:8]
        sim.control("POST", "faults", soak_faults(config.fault_rate))
        sim.control("POST", "settings", {"expire_rate": config.fault_rate / 5})
        peaks = RssPeaks()
        chaos = Chaos(cluster, every=config.kill_every, pause=config.pause, seed=config.seed)
        runs: dict[str, tuple[int, Path]] = {}
        counts = [config.per_run] * (config.generations // config.per_run)
        if config.generations % config.per_run:
            counts.append(config.generations % config.per_run)
        run_started = time.monotonic()
        for number, count in enumerate(counts):
            out_dir = root / "videos" / f"run-{number}"
            conf = {"marker": marker, "out_dir": str(out_dir), "image": str(image), "count": count, "run": number}
            runs[_trigger(cluster, conf, f"soak-{marker}-{number}")] = (number, out_dir)
        crashes: list[str] = []
        states: dict[str, str] = {}
        next_report = time.monotonic() + config.progress_every
        while time.monotonic() - run_started < config.budget_seconds:
            chaos.tick()
            for name, process in list(cluster.processes.items()):
                if name not in cluster.stopped and process.poll() is not None:
                    crashes.append(f"{name} (exit {process.returncode})")
                    cluster.start_component(name)
            peaks.sample({name: p.pid for name, p in cluster.processes.items() if p.poll() is None})
            states = _run_states(cluster, marker)
            if len(states) == len(runs) and all(s in ("success", "failed") for s in states.values()):
                break
            if time.monotonic() >= next_report:
                next_report += config.progress_every
                saved = sum(len(list(out.glob("video-*.mp4"))) for _, out in runs.values())
                say(
                    f"soak: {time.monotonic() - run_started:.0f} s, videos {saved}/{config.generations}, "
                    f"runs {Counter(states.values())}, kills {chaos.by_kind()}"
                )
            time.sleep(1.0)
        run_seconds = time.monotonic() - run_started
        chaos.stop()
        peaks.sample({name: p.pid for name, p in cluster.processes.items() if p.poll() is None})
        for name, pid in (("simulator", sim.proc.pid),):
            peaks.sample({name: pid})
        sim.control("DELETE", "faults")
        sim.control("POST", "settings", {"expire_rate": 0})
        log = sim.control("GET", "log")
        clock_offset = float(log["now"]) - time.time()
        log["expire_rate"] = config.fault_rate / 5
        (root / "simulator-log.json").write_text(json.dumps(log))  # for a post-mortem
        generations = _generations(cluster, marker, runs, counts)
        # Deferred task instances of runs that have ended (a run still going when the budget
        # ran out may rightly have some; those generations are reported as unfinished).
        left = sum(
            int(r["n"])
            for r in cluster.query(
                "SELECT run_id, count(*) AS n FROM task_instance WHERE dag_id = ? AND run_id LIKE ? "
                "AND state = 'deferred' GROUP BY run_id",
                (DAG_ID, f"soak-{marker}-%"),
            )
            if states.get(str(r["run_id"])) in ("success", "failed")
        )
        _read_stored_ids(cluster, runs, generations)
        verdict = judge(
            generations,
            log,
            run_states={run: states.get(run, "missing") for run in runs},
            served=_cached(sim.served),
            decodes=_decodes,
            left_deferred=int(left),
            crashes=crashes,
            worker_kills=[k.killed_at + clock_offset for k in chaos.kills if k.kind == "celery-worker"],
            clock_offset=clock_offset,
        )
        settings = {k: v for k, v in cluster.env.items() if k in _SHOWN_SETTINGS}
        version = str(cluster.query("SHOW server_version")[0]["server_version"]).split()[0]
        details = [history(g, log, chaos.kills, clock_offset) for g in verdict.offending[:50]]
    return SoakResult(
        config,
        verdict,
        chaos,
        wall_seconds=time.monotonic() - started,
        run_seconds=run_seconds,
        peak_rss=peaks.peak,
        settings=settings,
        database_version=version,
        details=details,
    )


_SHOWN_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__TRIGGERER__CAPACITY",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD",
)


def _trigger(cluster: AirflowCluster, conf: dict[str, Any], run_id: str) -> str:
    """Create the run; a loaded API server may answer late, so a timeout is followed by a look
    for the run (it may exist) before trying again."""
    for _ in range(5):
        try:
            return cluster.trigger(DAG_ID, conf, run_id=run_id)
        except httpx.TimeoutException:
            if cluster.query("SELECT 1 FROM dag_run WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)):
                return run_id
    raise RuntimeError(f"could not create DAG run {run_id}: the API server kept timing out")


def _run_states(cluster: AirflowCluster, marker: str) -> dict[str, str]:
    rows = cluster.query(
        "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND run_id LIKE ?", (DAG_ID, f"soak-{marker}-%")
    )
    return {str(r["run_id"]): str(r["state"]) for r in rows}


def _generations(
    cluster: AirflowCluster, marker: str, runs: dict[str, tuple[int, Path]], counts: list[int]
) -> list[Generation]:
    pattern = (DAG_ID, "generate", f"soak-{marker}-%")
    where = "WHERE dag_id = ? AND task_id = ? AND run_id LIKE ?"
    current = cluster.query(
        f"SELECT run_id, map_index, state, try_number, hostname, start_date, end_date FROM task_instance {where}",
        pattern,
    )
    past = cluster.query(
        "SELECT run_id, map_index, state, try_number, hostname, start_date, end_date "
        f"FROM task_instance_history {where}",
        pattern,
    )
    xcoms = cluster.query(f"SELECT run_id, map_index, value FROM xcom {where} AND key = 'return_value'", pattern)
    tries: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in sorted(past + current, key=lambda r: int(r["try_number"] or 0)):
        tries.setdefault((str(row["run_id"]), int(row["map_index"])), []).append(row)
    states = {(str(r["run_id"]), int(r["map_index"])): r["state"] for r in current}
    saved: dict[tuple[str, int], str | None] = {}
    for row in xcoms:
        value = row["value"]
        value = json.loads(value) if isinstance(value, (str, bytes)) else value
        saved[(str(row["run_id"]), int(row["map_index"]))] = value.get("id") if isinstance(value, dict) else None
    out = []
    for run_id, (number, folder) in runs.items():
        for index in range(counts[number]):
            g = Generation(
                run=number,
                run_id=run_id,
                index=index,
                prompt=f"soak {marker} run {number} scene {index}",
                output=folder / f"video-{index}.mp4",
            )
            g.ti_state = states.get((run_id, index))
            g.tries = tries.get((run_id, index), [])
            g.saved_task = saved.get((run_id, index))
            out.append(g)
    return out


_SUBMITTED = re.compile(r'"timestamp":\s*"([^"]+)".*?"event":\s*"Submitted EvoLink task (\S+) ')


def _read_stored_ids(cluster: AirflowCluster, runs: dict[str, tuple[int, Path]], generations: list[Generation]) -> None:
    """Note, per generation, the tasks whose try logged "Submitted EvoLink task <id>" (the line
    comes right after the id is stored) and when."""
    by_key = {(g.run, g.index): g for g in generations}
    for run_id, (number, _) in runs.items():
        folder = cluster.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=generate"
        for path in folder.glob("map_index=*/attempt=*.log"):
            g = by_key.get((number, int(path.parent.name.split("=")[1])))
            if g is None:
                continue
            for match in _SUBMITTED.finditer(path.read_text(errors="replace")):
                stamp = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
                g.stored.setdefault(match.group(2), stamp)


def _cached(fetch: Any) -> Any:
    cache: dict[str, bytes] = {}

    def get(task_id: str) -> bytes:
        if task_id not in cache:
            cache[task_id] = fetch(task_id)
        return cache[task_id]

    return get


def _decodes(path: Path) -> bool:
    """The file opens as MP4 with a video stream and its first frame decodes (PyAV)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.format.name.split(",")[0] not in ("mov", "mp4"):
                return False
            stream = container.streams.video[0]
            for _frame in container.decode(stream):
                return True
    except (av.error.FFmpegError, IndexError):
        return False
    return False


# -- the table ---------------------------------------------------------------------------------------


def _latency(q: tuple[float, float, float] | None) -> str:
    return "-" if q is None else f"median {q[0]:.2f} s, p95 {q[1]:.2f} s, max {q[2]:.2f} s"


def render_table(result: SoakResult) -> str:
    v, f, c = result.verdict, result.verdict.figures, result.config
    kills = result.chaos.by_kind()
    reasons = ", ".join(f"{n} x {why}" for why, n in sorted(f["refusal_reasons"].items())) or "none"
    by_phase = ", ".join(
        f"{p} {f['failed_by_phase'][p]}/{f['requests_by_phase'][p]}" for p in ("upload", "submit", "poll", "download")
    )
    rss = ", ".join(f"{kind} {mib:,.0f}" for kind, mib in sorted(result.peak_rss.items()))
    env = result.settings
    rows = [
        (
            "deployment",
            f"PostgreSQL {result.database_version}, {env.get('AIRFLOW__CORE__EXECUTOR')} + Redis, 2 workers x "
            f"{env.get('AIRFLOW__CELERY__WORKER_CONCURRENCY')} slots, 2 triggerers (capacity "
            f"{env.get('AIRFLOW__TRIGGERER__CAPACITY')}), rate_limit_rpm {c.rate_limit_rpm} per process",
        ),
        ("generations", f"{f['generations']:,} ({c.per_run} per DAG run, mapped)"),
        ("videos saved and verified", f"{f['saved_and_verified']:,}"),
        ("videos lost", f"{f['lost']}"),
        ("generations unfinished when the time budget ran out", f"{f['unfinished']}"),
        ("double-billed generations, no EvoLink failure behind them", f"{f['double_billed']}"),
        (
            "create calls (POSTs)",
            f"{f['posts']:,} = {f['generations_with_task']:,} generations + {f['posts_refused']} refused by EvoLink "
            f"({reasons}) "
            f"+ {f['posts_replacing_evolink_failures']} replacing tasks EvoLink failed "
            f"+ {f['posts_unexplained']} unexplained",
        ),
        (
            "generations held for a person: worker killed between EvoLink's answer and the stored id",
            f"{f['generations_held_after_kill']} (EvoLink's answer -> id stored: {_latency(f['store_latency'])})",
        ),
        ("EvoLink tasks created per video", f"{f['tasks_per_video']:.3f}"),
        ("Airflow tries per generation", f"{f['tries_per_generation']:.2f} (most {f['max_tries']})"),
        ("status polls per generation", f"{f['polls_per_generation']:.2f}"),
        ("requests failed (injected), by phase", f"{by_phase} ({100 * f['failed_share']:.1f} % of all)"),
        ("expired links met", f"{f['expired_links']}"),
        ("kills (SIGKILL) by component", ", ".join(f"{k} {n}" for k, n in kills.items())),
        ("wall time", f"{result.wall_seconds / 60:.1f} min ({result.run_seconds / 60:.1f} min from first trigger)"),
        ("peak RSS per component (MiB, process tree)", rss),
    ]
    rows += [(f"invariant: {i.name}", f"{'held' if i.held else 'BROKEN'} ({i.detail})") for i in v.invariants]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'soak':<{width}} | result |", f"| {'-' * width} | --- |"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)
