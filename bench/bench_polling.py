"""#2 Polling economy: status requests per generation, and completion-to-event delay.

A mix of generations (durations 3-15 s of video at 720p/1080p/4k: server estimates of 63-180 s)
whose real length is the estimate x uniform(0.7, 1.3) (simulator ``duration_jitter=0.3``), run
on virtual time (:class:`bench.timewarp.VirtualTimeLoop`): the simulator is in-process, its clock
reads the loop's clock, and the trigger's ``time.time()`` reads it too, so an hour of polling
takes a few seconds and every delay is exact. Same seed for both runs: generation i has the same
estimate and real duration under the trigger and under the baseline.

``trigger``  KlingTaskTrigger.run() as the operator defers to it (started_at = submission,
             estimated_time = the estimate the submit answer gave), default PollPolicy.
``fixed``    the baseline: sleep 10 s, query, repeat until the task has ended.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import Row, percentile, print_table, quiet_logs, write_result
from bench.timewarp import LoopTime, VirtualTimeLoop, patch_provider_time, run_on

EPOCH = 1_767_225_600.0  # 2026-01-01: any fixed unix time works
IN_PROCESS = "http://evolink-sim.localhost"


def use_simulator(sim: Any) -> Callable[[], None]:
    """Point ``kling_default`` and every KlingHook at the in-process simulator; return an undo."""
    import json

    from kling_provider.hooks import kling as hook_module

    os.environ["AIRFLOW_CONN_KLING_DEFAULT"] = json.dumps(
        {
            "conn_type": "kling",
            "host": IN_PROCESS,
            "password": "sk-sim-local",
            "extra": {"files_host": IN_PROCESS, "rate_limit_rpm": 1e9},  # #3 is the rate-limit benchmark
        }
    )
    transport = sim.async_transport()
    original = hook_module.KlingHook.__init__

    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("async_transport", transport)
        original(self, *args, **kwargs)

    hook_module.KlingHook.__init__ = patched  # type: ignore[method-assign]

    def undo() -> None:
        hook_module.KlingHook.__init__ = original  # type: ignore[method-assign]

    return undo


async def one_run(count: int, seed: int, waiter: str, loop: VirtualTimeLoop) -> dict[str, Any]:
    from kling_provider.hooks.kling import KlingHook
    from kling_provider.models import TextToVideoRequest
    from kling_provider.testing import EvoLinkSimulator, SimClock
    from kling_provider.triggers.kling import KlingTaskTrigger

    clock = LoopTime(loop, EPOCH)

    class LoopClock(SimClock):
        def now(self) -> float:
            return clock.time()

    sim = EvoLinkSimulator(clock=LoopClock(), generation_seconds=None, duration_jitter=0.3, seed=seed)
    undo = use_simulator(sim)
    rng = random.Random(seed)
    plan = [
        (rng.uniform(0, 600), rng.choice([3, 5, 8, 10, 12, 15]), rng.choice(["720p", "1080p", "4k"]))
        for _ in range(count)
    ]
    plan.sort()
    detected: dict[str, float] = {}
    events: dict[str, list[str]] = {}

    async def trigger_wait(task_id: str, submitted: float, estimate: float | None) -> None:
        trigger = KlingTaskTrigger(task_id, started_at=submitted, estimated_time=estimate, deadline=submitted + 3600)
        async for event in trigger.run():
            events.setdefault(task_id, []).append(event.payload["status"])
            detected.setdefault(task_id, event.payload["observed_at"])

    async def fixed_wait(task_id: str, submitted: float, estimate: float | None) -> None:
        async with KlingHook() as hook:
            while True:
                await asyncio.sleep(10)
                task = await hook.aget_task(task_id)
                if task.is_terminal:
                    events.setdefault(task_id, []).append(task.status.value)
                    detected[task_id] = clock.time()
                    return

    wait: Callable[[str, float, float | None], Awaitable[None]] = trigger_wait if waiter == "trigger" else fixed_wait

    async def generation(at: float, duration: int, quality: str) -> None:
        await asyncio.sleep(at)
        async with KlingHook() as hook:
            task = await hook.asubmit(
                TextToVideoRequest.build(prompt="a harbour at dawn", duration=duration, quality=quality)
            )
        await wait(task.id, clock.time(), task.estimated_time)

    cpu0 = time.process_time()
    with patch_provider_time(clock):
        await asyncio.gather(*(generation(*p) for p in plan))
    cpu = time.process_time() - cpu0
    undo()
    polls: dict[str, int] = {}
    for record in sim.requests:
        if record.phase == "poll" and record.task_id:
            polls[record.task_id] = polls.get(record.task_id, 0) + 1
    delays = [detected[t.id] - t.ends_at for t in sim.tasks if t.id in detected]
    ratio = [t.actual_seconds / t.estimated_seconds for t in sim.tasks]
    return {
        "polls": polls,
        "delays": delays,
        "events": events,
        "tasks": len(sim.tasks),
        "cpu": cpu,
        "virtual_s": loop.time(),
        "jitter_range": (min(ratio), max(ratio)),
        "estimates": (min(t.estimated_seconds for t in sim.tasks), max(t.estimated_seconds for t in sim.tasks)),
    }


def run(count: int, seed: int, waiter: str) -> dict[str, Any]:
    loop = VirtualTimeLoop()
    result: dict[str, Any] = run_on(loop, one_run(count, seed, waiter, loop))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=500)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    trig = run(args.generations, args.seed, "trigger")
    fixed = run(args.generations, args.seed, "fixed")
    n = args.generations
    per_gen = {name: sum(r["polls"].values()) / n for name, r in (("t", trig), ("f", fixed))}
    p95 = {name: percentile(r["delays"], 95) for name, r in (("t", trig), ("f", fixed))}
    p50 = {name: percentile(r["delays"], 50) for name, r in (("t", trig), ("f", fixed))}
    worst = {name: max(r["delays"]) for name, r in (("t", trig), ("f", fixed))}
    one_event = sum(1 for v in trig["events"].values() if v == ["completed"])
    rows = [
        Row(
            "status requests per generation",
            per_gen["t"],
            per_gen["f"],
            "",
            "<= 0.5x fixed",
            per_gen["t"] <= 0.5 * per_gen["f"],
            "fixed 10 s",
        ),
        Row("p95 completion -> event", p95["t"], p95["f"], "s", "<= fixed", p95["t"] <= p95["f"], "fixed 10 s"),
        Row("median completion -> event", p50["t"], p50["f"], "s", "", None, "fixed 10 s"),
        Row("max completion -> event", worst["t"], worst["f"], "s", "", None, "fixed 10 s"),
        Row(
            "most requests for one generation",
            max(trig["polls"].values()),
            max(fixed["polls"].values()),
            "",
            "",
            None,
            "fixed 10 s",
        ),
        Row("generations with one completed event", one_event, n, "", f"= {n}", one_event == n, "all"),
    ]
    low, high = trig["jitter_range"]
    print_table(
        f"#2 polling economy: {n} generations, estimates {trig['estimates'][0]:.0f}-{trig['estimates'][1]:.0f} s, "
        f"real/estimate {low:.2f}-{high:.2f} (virtual time: {trig['virtual_s'] / 60:.0f} simulated min in "
        f"{trig['cpu'] + fixed['cpu']:.1f} s CPU)",
        rows,
    )
    write_result("polling", rows, {"virtual_minutes": trig["virtual_s"] / 60})


if __name__ == "__main__":
    main()
