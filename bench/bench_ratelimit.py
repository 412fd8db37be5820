"""#3 Rate-limit safety: 1,000 generations at a configured 300 requests/minute, simulator enforcing 300.

The simulator runs in its own process (``--rate-limit-rpm 300 --realistic``: 60-180 s tasks,
+/-25 % jitter) on a clock 10x faster than real time; this process runs 1,000 "operators" on an
event loop scaled by the same factor from the same CLOCK_MONOTONIC anchor (``--clock-anchor``), so
both sides agree on every timestamp. Each operator submits its task through ``KlingHook.asubmit``
and then awaits ``KlingTaskTrigger.run()`` with the submission time and the server's estimate, as
a deferred operator does; submissions and polls share the connection's limiter
(``rate_limit_rpm=300``). Ten simulated minutes take about a minute.

What the server saw is read back from its request log: 429s (must be 0), every task completed
with exactly one event, the achieved rate, and the sliding-window check itself: the most admitted
requests in any 60 s window, and the shortest span covered by 300 consecutive requests (the
simulator refuses request k+300 when it comes less than 60 s after request k).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import deque
from typing import Any

from bench.common import Row, SimProcess, connection_env, print_table, quiet_logs, write_result
from bench.timewarp import LoopTime, ScaledTimeLoop, patch_provider_time, run_on

LIMIT = 300


async def scenario(count: int, clock: LoopTime) -> dict[str, Any]:
    from kling_provider.hooks.kling import KlingHook
    from kling_provider.models import TextToVideoRequest
    from kling_provider.triggers.kling import KlingTaskTrigger

    events: dict[str, list[dict[str, Any]]] = {}
    errors: list[str] = []
    durations = [3, 5, 8, 10, 12, 15]
    qualities = ["720p", "1080p", "4k"]

    async def operator(number: int) -> None:
        request = TextToVideoRequest.build(
            prompt="a lighthouse at dusk", duration=durations[number % 6], quality=qualities[number % 3]
        )
        try:
            async with KlingHook() as hook:
                task = await hook.asubmit(request)
        except Exception as err:  # a refused submission is a failure of this benchmark: count it
            errors.append(f"submit: {err}")
            return
        submitted = clock.time()
        trigger = KlingTaskTrigger(
            task.id, started_at=submitted, estimated_time=task.estimated_time, deadline=submitted + 3 * 3600
        )
        async for event in trigger.run():
            events.setdefault(task.id, []).append(event.payload)

    with patch_provider_time(clock):
        await asyncio.gather(*(operator(i) for i in range(count)))
    return {"events": events, "errors": errors}


def window_stats(times: list[float], window: float = 60.0) -> tuple[int, float]:
    """(most requests in any half-open window (t-60, t], shortest span of LIMIT+1 consecutive ones)."""
    most = 0
    recent: deque[float] = deque()
    for t in times:
        while recent and recent[0] <= t - window:
            recent.popleft()
        recent.append(t)
        most = max(most, len(recent))
    spans = [times[k + LIMIT] - times[k] for k in range(len(times) - LIMIT)]
    return most, min(spans) if spans else float("inf")


def run_once(count: int, speed: float, headroom: float | None) -> dict[str, Any]:
    """One scenario against a fresh simulator; ``headroom`` given: the old slot-only limiter at that headroom."""
    from kling_provider.hooks import ratelimit

    shipped = ratelimit.HEADROOM, ratelimit._MAX_TRACKED_RPM
    if headroom is not None:  # the limiter as it was: slots only, and no check of what really left
        ratelimit.HEADROOM, ratelimit._MAX_TRACKED_RPM = headroom, 0
    epoch, mono0 = time.time(), time.monotonic()
    sim_args = ["--realistic", "--speed", str(speed), "--rate-limit-rpm", str(LIMIT)]
    sim_args += ["--clock-anchor", repr(epoch), repr(mono0), "--seed", "5"]
    try:
        with SimProcess(*sim_args) as sim:
            os.environ.update(connection_env(sim.base_url, rate_limit_rpm=LIMIT))
            loop = ScaledTimeLoop(speed, mono0)
            clock = LoopTime(loop, epoch)
            wall0 = time.monotonic()
            result = run_on(loop, scenario(count, clock))
            result["wall"] = time.monotonic() - wall0
            result["server"] = sim.log()
    finally:
        ratelimit.HEADROOM, ratelimit._MAX_TRACKED_RPM = shipped
    api = [r for r in result["server"]["requests"] if r[2] in ("submit", "poll")]
    statuses = [r[3] for r in api]
    admitted = sorted(r[0] for r in api if r[3] != 429)
    most, span = window_stats(admitted)
    minutes = (admitted[-1] - admitted[0]) / 60
    # While submissions last the limiter is the bottleneck: the achieved rate should sit at the limit.
    submits = sorted(r[0] for r in api if r[2] == "submit" and r[3] == 200)
    busy = [t for t in admitted if t <= submits[-1]]
    events = result["events"]
    completed = sum(1 for evs in events.values() if [e["status"] for e in evs] == ["completed"])
    return {
        "refused": statuses.count(429),
        "completed": completed,
        "errors": result["errors"],
        "busy_rate": (len(busy) - 1) / ((busy[-1] - busy[0]) / 60) if len(busy) > 1 else 0.0,
        "rate": (len(admitted) - 1) / minutes if minutes else 0.0,
        "most": most,
        "span": span,
        "polls_per_gen": (statuses.count(200) - len(submits)) / max(1, completed),
        "minutes": minutes,
        "wall": result["wall"],
        "statuses": {str(s): statuses.count(s) for s in set(statuses)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the exact-rate (no headroom) run")
    args = parser.parse_args()
    quiet_logs()
    n = args.generations
    ours = run_once(n, args.speed, None)
    exact = None if args.no_baseline else run_once(n, args.speed, 0.0)

    def base(key: str) -> float | None:
        return None if exact is None else float(exact[key])

    rows = [
        Row("429 answers", ours["refused"], base("refused"), "", "0", ours["refused"] == 0, "exact slots only"),
        Row("generations completed, one event each", ours["completed"], n, "", "all", ours["completed"] == n, "all"),
        Row("failed submissions", len(ours["errors"]), 0, "", "0", not ours["errors"]),
        Row(
            "achieved rate while submitting",
            ours["busy_rate"],
            LIMIT,
            "rpm",
            "<= limit",
            ours["busy_rate"] <= LIMIT,
            "limit",
        ),
        Row("achieved rate, whole run", ours["rate"], LIMIT, "rpm", "", None, "limit"),
        Row("most admitted in any 60 s window", ours["most"], LIMIT, "", "<= limit", ours["most"] <= LIMIT, "limit"),
        Row("  same, exact slots only", base("most") or 0, LIMIT, "", "", None, "limit"),
        Row("slack: (301 requests' shortest span) - 60 s", ours["span"] - 60, None, "s", "> 0", ours["span"] > 60.0),
        Row("  same, exact slots only", (base("span") or 60.0) - 60, None, "s", "", None),
        Row("status polls per generation", ours["polls_per_gen"], None, "", "", None),
        Row("simulated minutes", ours["minutes"], None, "min", "", None),
        Row("wall time", ours["wall"], None, "s", "", None),
    ]
    print_table(
        f"#3 rate-limit safety: {n} generations, rate_limit_rpm={LIMIT}, simulator enforcing {LIMIT} per "
        f"sliding 60 s, both clocks x{args.speed:g}; baseline: slots exactly 60/rpm apart, no send-time check",
        rows,
    )
    write_result("ratelimit", rows, {"ours": ours, "exact": exact})
    if ours["errors"]:
        print(json.dumps(ours["errors"][:5]))


if __name__ == "__main__":
    main()
