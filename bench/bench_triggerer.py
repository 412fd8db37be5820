"""#1 Triggerer density: 1,000 KlingTaskTriggers on one event loop, through Airflow's TriggerRunner.

Three fresh processes, each against its own simulator process (same seed, so task i has the same
real duration every time), on loopback:

``triggers``  Airflow's own ``TriggerRunner`` (the code the triggerer's subprocess runs: kwargs
              decryption, class import, greenback portal, per-trigger log lines rendered as JSON)
              creates 1,000 triggers and is driven like ``TriggerRunner.arun`` drives it (clean
              up finished triggers, collect events, once a second), minus the supervisor socket.
``floor``     bare coroutines sharing one ``httpx.AsyncClient``, sending the same GETs at the same
              moments (the triggers' request schedule, replayed per task relative to its submission).
``naive``     the same schedule with a new ``httpx.AsyncClient`` per poll.

CPU is the process's own CPU time (``time.process_time``) over the waiting window; submissions
happen before the window. A 10 ms sleeper measures event-loop lag; RSS is sampled every 100 ms.

At scale: ``--triggers 10000 --modes triggers,floor --submit-concurrency 32 --generation-seconds
120`` puts 10,000 triggers in one TriggerRunner (a triggerer with ``[triggerer] capacity`` raised
to 10,000) against the same floor, over Kling-like 60-180 s generations created within a minute
(created one by one they would take longer than a generation, and most would be over before their
trigger started). The naive pattern (10,000 clients) and the bare coroutines add nothing there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.common import (
    REPO,
    SIM_KEY,
    LoopSampler,
    Row,
    SimProcess,
    connection_env,
    percentile,
    print_table,
    quiet_logs,
    rss_bytes,
    write_result,
)

if TYPE_CHECKING:
    from kling_provider.triggers.kling import KlingTaskTrigger

TRIGGER_CLASSPATH = "kling_provider.triggers.kling.KlingTaskTrigger"
MODES = ("triggers", "floor", "naive", "coroutines")


# -- the child processes --------------------------------------------------------------------


_sent: list[tuple[float, str]] = []


def record_requests() -> None:
    """Note (time, path) of every request any httpx async client sends (same cost in every mode)."""
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def recording(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        _sent.append((time.monotonic(), request.url.path))
        return await original(self, request)

    httpx.AsyncHTTPTransport.handle_async_request = recording  # type: ignore[method-assign]


def submit_all(base_url: str, count: int, concurrency: int = 1) -> list[dict[str, Any]]:
    """Create ``count`` tasks. One after another by default (deterministic order: task i has the
    same duration in every run); with ``concurrency`` > 1, that many at a time, so 10,000 tasks
    are created well within one generation's length (their order, hence durations, may differ)."""
    body = {"model": "kling-v3-text-to-video", "prompt": "a lighthouse at dusk, waves", "duration": 5}
    headers = {"Authorization": f"Bearer {SIM_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        def one(_: int) -> dict[str, Any]:
            response = client.post("/v1/videos/generations", json=body)
            response.raise_for_status()
            task = response.json()
            return {
                "id": task["id"],
                "created": task["created"],
                "submitted_mono": time.monotonic(),
                "submitted_at": time.time(),
                "estimated_time": task["task_info"]["estimated_time"],
            }

        if concurrency <= 1:
            return [one(i) for i in range(count)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, range(count)))


def make_trigger(task: dict[str, Any]) -> KlingTaskTrigger:
    """The trigger the operator would defer to for ``task`` (an hour's deadline)."""
    from kling_provider.triggers.kling import KlingTaskTrigger

    return KlingTaskTrigger(
        task["id"],
        deadline=task["submitted_at"] + 3600,
        started_at=task["submitted_at"],
        estimated_time=task["estimated_time"],
    )


async def measured(wait: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Await ``wait()`` inside the measuring window: CPU, wall, RSS, loop lag and the polls sent."""
    sampler = LoopSampler()
    sampler_task = asyncio.create_task(sampler.run())
    await asyncio.sleep(0.2)
    rss_before = rss_bytes()
    cpu0, wall0 = time.process_time(), time.monotonic()
    sent0 = len(_sent)
    outcome = await wait()
    cpu1, wall1 = time.process_time(), time.monotonic()
    sampler.stop()
    await sampler_task
    return {
        "cpu": cpu1 - cpu0,
        "wall": wall1 - wall0,
        "rss_before": rss_before,
        "rss_peak": sampler.rss_peak,
        "lags": sampler.lags,
        "polls": list(_sent[sent0:]),
        **outcome,
    }


async def run_triggers(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    from airflow.executors import workloads
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.models.trigger import Trigger

    runner = TriggerRunner()
    runner.job_id = 1
    for number, task in enumerate(tasks, start=1):
        classpath, kwargs = make_trigger(task).serialize()
        runner.to_create.append(
            workloads.RunTrigger(id=number, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs))
        )
    # One-time costs of a triggerer process, paid before the window: importing the trigger's
    # module (a long-running triggerer did that at its first Kling trigger) and Airflow's metrics
    # registry (read on the first Stats call).
    runner.get_trigger_by_classpath(TRIGGER_CLASSPATH)
    from airflow._shared.observability.metrics import stats

    stats.incr("kling_bench.warmup")

    async def drive() -> dict[str, Any]:
        watchdog = asyncio.create_task(runner.block_watchdog())
        events: dict[int, list[dict[str, Any]]] = {}
        failures: list[Any] = []
        finished: set[int] = set()
        while len(finished) < len(tasks):
            done = await runner.cleanup_finished_triggers()
            finished.update(done)
            changes = runner.process_trigger_events(done)
            for entry in changes.events or []:
                events.setdefault(entry.trigger_id, []).append(entry.event.payload)
            failures.extend(changes.failures or [])
            await runner.create_triggers()
            await asyncio.sleep(1)  # what TriggerRunner.arun waits between rounds
        runner.stop = True
        await watchdog
        return {"events": {str(k): v for k, v in events.items()}, "failures": [str(f) for f in failures]}

    return await measured(drive)


async def run_coroutines(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The same triggers' ``run()`` awaited directly (no TriggerRunner): the provider's own cost."""
    triggers = [make_trigger(task) for task in tasks]
    events: dict[int, list[dict[str, Any]]] = {}

    async def one(number: int, trigger: KlingTaskTrigger) -> None:
        async for event in trigger.run():
            events.setdefault(number, []).append(event.payload)

    async def wait_all() -> dict[str, Any]:
        await asyncio.gather(*(one(n, t) for n, t in enumerate(triggers, start=1)))
        return {"events": {str(k): v for k, v in events.items()}, "failures": []}

    return await measured(wait_all)


async def replay(
    tasks: list[dict[str, Any]], schedule: list[list[float]], base_url: str, naive: bool
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {SIM_KEY}", "User-Agent": "bench-floor"}
    # httpx's default pool limits: the plain "one shared client" a careful author would write.
    shared = None if naive else httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
    # At most as many requests in flight as the pool has connections: with thousands queued in
    # httpx itself, httpcore re-scans the whole queue for every connection (quadratic), which at
    # 10,000 polls would make the floor slower than what it is the floor of.
    in_flight = asyncio.Semaphore(100)
    completions: Counter[str] = Counter()
    errors: list[str] = []

    async def poll(task: dict[str, Any], offsets: list[float]) -> None:
        url = f"{base_url}/v1/tasks/{task['id']}"
        for offset in offsets:
            delay = task["submitted_mono"] + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if shared is not None:
                    async with in_flight:
                        response = await shared.get(url, headers=headers)
                else:
                    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
                        response = await client.get(url, headers=headers)
            except httpx.TransportError:
                errors.append(task["id"])
                continue
            if response.json()["status"] == "completed":
                completions[task["id"]] += 1

    async def replay_all() -> dict[str, Any]:
        await asyncio.gather(*(poll(t, s) for t, s in zip(tasks, schedule, strict=True)))
        return {"completions": dict(completions), "errors": len(errors)}

    try:
        return await measured(replay_all)
    finally:
        if shared is not None:
            await shared.aclose()


def profiled(mode: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run; with BENCH_PROFILE=<dir>, under cProfile timed by CPU time, to <dir>/<mode>.prof."""
    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        return run()
    target = Path(folder) / f"{mode}.prof"
    import cProfile

    profile = cProfile.Profile(time.process_time)
    result = profile.runcall(run)
    profile.dump_stats(target)
    return result


def child(args: argparse.Namespace) -> None:
    record_requests()
    tasks = submit_all(args.base_url, args.triggers, args.submit_concurrency)
    if args.mode == "triggers":
        quiet_logs()  # what the triggerer's subprocess does: JSON log lines to the supervisor
        result = profiled(args.mode, lambda: asyncio.run(run_triggers(tasks)))
    elif args.mode == "coroutines":
        quiet_logs()
        result = profiled(args.mode, lambda: asyncio.run(run_coroutines(tasks)))
    else:
        schedule = json.loads(Path(args.schedule).read_text())
        result = profiled(
            args.mode, lambda: asyncio.run(replay(tasks, schedule, args.base_url, naive=args.mode == "naive"))
        )
    result["tasks"] = tasks
    Path(args.out).write_text(json.dumps(result))


# -- the parent -----------------------------------------------------------------------------


def run_child(
    mode: str, sim_args: list[str], count: int, work: Path, concurrency: int = 1, **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    out = work / f"{mode}.json"
    with SimProcess(*sim_args) as sim:
        env = {
            **os.environ,
            **connection_env(sim.base_url, rate_limit_rpm=1_000_000),
            "AIRFLOW__CORE__FERNET_KEY": "x5tg2-p5QbsnLNVD0mCPnRiprxsbmrzCeA1MBjXRDTQ=",
        }
        cmd = [sys.executable, "-m", "bench.bench_triggerer", "--child", mode, "--base-url", sim.base_url]
        cmd += ["--triggers", str(count), "--out", str(out), "--submit-concurrency", str(concurrency)]
        for key, value in extra.items():
            cmd += [f"--{key}", str(value)]
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
        server = sim.log()
    return json.loads(out.read_text()), server


def schedule_of(result: dict[str, Any]) -> list[list[float]]:
    """Per task, the offsets (from its submission) at which the triggers polled it."""
    by_id: dict[str, list[float]] = {t["id"]: [] for t in result["tasks"]}
    start = {t["id"]: t["submitted_mono"] for t in result["tasks"]}
    for when, path in result["polls"]:
        task_id = path.rsplit("/", 1)[-1]
        if task_id in by_id:
            by_id[task_id].append(when - start[task_id])
    return [by_id[t["id"]] for t in result["tasks"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", dest="mode", default=None)
    parser.add_argument("--base-url")
    parser.add_argument("--out")
    parser.add_argument("--schedule")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--submit-concurrency", type=int, default=1, help="create calls at a time (default 1)")
    parser.add_argument("--generation-seconds", type=float, default=40.0)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument("--workdir", help="keep the children's raw results here (default: a temporary folder)")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated, from {','.join(MODES)} (triggers and floor always run; default: all)",
    )
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    count = args.triggers
    modes = set(args.modes.split(",")) | {"triggers", "floor"}
    if modes - set(MODES):
        parser.error(f"unknown modes {sorted(modes - set(MODES))}")
    sim_args = ["--generation-seconds", str(args.generation_seconds), "--duration-jitter", str(args.jitter)]
    sim_args += ["--seed", "11"]
    with tempfile.TemporaryDirectory(prefix="kling-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        conc = args.submit_concurrency
        trig, server = run_child("triggers", sim_args, count, work, conc)
        schedule = schedule_of(trig)
        (work / "schedule.json").write_text(json.dumps(schedule))
        floor, _ = run_child("floor", sim_args, count, work, conc, schedule=work / "schedule.json")
        naive = None
        if "naive" in modes:
            naive, _ = run_child("naive", sim_args, count, work, conc, schedule=work / "schedule.json")
        coro = run_child("coroutines", sim_args, count, work, conc)[0] if "coroutines" in modes else None
    report(count, trig, server, floor, naive, coro, args)


def report(
    count: int,
    trig: dict[str, Any],
    server: dict[str, Any],
    floor: dict[str, Any],
    naive: dict[str, Any] | None,
    coro: dict[str, Any] | None,
    args: argparse.Namespace,
) -> None:
    polls = len(trig["polls"])
    runs = {name: r for name, r in (("t", trig), ("f", floor), ("n", naive), ("c", coro)) if r is not None}
    per_k = {name: r["cpu"] / len(r["polls"]) * 1000 for name, r in runs.items()}
    growth = {name: (r["rss_peak"] - r["rss_before"]) / 2**20 * 1000 / count for name, r in (("t", trig), ("f", floor))}
    lag = {name: percentile(r["lags"], 95) * 1000 for name, r in runs.items() if name != "c"}
    # Exactly one event per trigger, and it must say completed (the server completes every task).
    events = trig["events"]
    completed = sum(1 for evs in events.values() if [e["status"] for e in evs] == ["completed"])
    missed = count - len(events) + sum(1 for evs in events.values() if not any(e["status"] == "completed" for e in evs))
    duplicated = sum(len(evs) - 1 for evs in events.values() if len(evs) > 1)
    ends = {tid: created + actual for tid, (created, _, actual) in server["tasks"].items()}
    delays = [
        evs[0]["observed_at"] - ends[evs[0]["task_id"]]
        for evs in events.values()
        if evs and evs[0]["status"] == "completed" and evs[0]["task_id"] in ends
    ]
    rows = [
        Row(
            "CPU per 1,000 polls", per_k["t"], per_k["f"], "s", "<= 1.3x floor", per_k["t"] <= 1.3 * per_k["f"], "floor"
        ),
    ]
    if coro is not None:
        rows.append(Row("  run() awaited directly, no TriggerRunner", per_k["c"], per_k["f"], "s", "", None, "floor"))
    if naive is not None:
        rows += [
            Row("  (naive pattern)", per_k["n"], per_k["f"], "s", "", None, "floor"),
            Row("  triggers vs naive", per_k["t"], per_k["n"], "s", "", None, "naive"),
            Row("  naive polls that failed to connect", naive["errors"], floor["errors"], "", "", None, "floor"),
        ]
    rows += [
        Row("peak RSS growth / 1,000 triggers", growth["t"], growth["f"], "MiB", "", None, "floor"),
        Row("peak RSS (whole process)", trig["rss_peak"] / 2**20, floor["rss_peak"] / 2**20, "MiB", "", None, "floor"),
        Row("p95 event-loop lag", lag["t"], lag["f"], "ms", "< 50 ms", lag["t"] < 50, "floor"),
    ]
    if naive is not None:
        rows.append(Row("  (naive pattern lag)", lag["n"], lag["f"], "ms", "", None, "floor"))
    rows += [
        Row("max event-loop lag", max(trig["lags"]) * 1000, max(floor["lags"]) * 1000, "ms", "", None, "floor"),
        Row("status polls", polls, len(floor["polls"]), "", "", None, "floor (replayed)"),
        Row("  floor polls that failed", floor["errors"], 0, "", "0", None),
        Row("polls per generation", polls / count, None, "", "", None),
        Row("completed events", completed, count, "", f"= {count}", completed == count, "triggers"),
        Row("missed + duplicated events", missed + duplicated, 0, "", "0", missed + duplicated == 0),
    ]
    if coro is not None:
        coro_ok = sum(1 for evs in coro["events"].values() if [e["status"] for e in evs] == ["completed"])
        rows.append(Row("  same, run() awaited directly", count - coro_ok, 0, "", "0", coro_ok == count))
    rows += [
        Row("trigger failures", len(trig["failures"]), 0, "", "0", not trig["failures"]),
        Row("p95 completion -> event", percentile(delays, 95), None, "s", "", None),
        Row("CPU of the waiting window", trig["cpu"], floor["cpu"], "s", "", None, "floor"),
        Row("waiting window (wall)", trig["wall"], floor["wall"], "s", "", None, "floor"),
    ]
    print_table(
        f"#1 triggerer density: {count} triggers, {args.generation_seconds:g} s +/-{args.jitter * 100:.0f} % "
        f"generations, simulator in its own process (wall {trig['wall']:.0f} s)",
        rows,
    )
    walls = {name: r["wall"] for name, r in (("triggers", trig), ("floor", floor), ("naive", naive)) if r is not None}
    write_result(
        "triggerer" if count == 1000 else f"triggerer-{count}",
        rows,
        {"wall_s": walls, "rate_limit_rpm": 1e6, "triggers": count},
    )


if __name__ == "__main__":
    main()
