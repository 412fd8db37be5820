"""Scaling check for docs/scaling.md: several triggerer processes sharing one account's limit.

The per-connection limiter is per process, so N triggerers each configured with the account's
whole limit L can send N x L requests a minute; configured with L / N each they cannot exceed L.
This runs N processes (each: its share of the generations, submitted and then awaited with
``KlingTaskTrigger.run()``) against one simulator process enforcing L per sliding minute, both
clocks x10, twice: ``rate_limit_rpm = L / N`` (the documented setting) and ``rate_limit_rpm = L``
(the baseline: every process given the whole limit). It then checks docs/scaling.md's model of
the request rate, requests/min = 60 x (1 + polls per generation) x generations / mean duration,
against what the simulator counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.bench_ratelimit import scenario, window_stats
from bench.common import REPO, Row, SimProcess, connection_env, print_table, quiet_logs, write_result
from bench.timewarp import LoopTime, ScaledTimeLoop, run_on


def child(count: int, speed: float, epoch: float, mono0: float) -> None:
    quiet_logs()
    loop = ScaledTimeLoop(speed, mono0)
    result = run_on(loop, scenario(count, LoopTime(loop, epoch)))
    events = result["events"]
    print(json.dumps({"completed": sum(1 for e in events.values() if [x["status"] for x in e] == ["completed"])}))


def run(processes: int, per_process: int, limit: int, rpm_each: float, speed: float) -> dict[str, Any]:
    epoch, mono0 = time.time(), time.monotonic()
    sim_args = ["--realistic", "--speed", str(speed), "--rate-limit-rpm", str(limit), "--seed", "9"]
    sim_args += ["--clock-anchor", repr(epoch), repr(mono0)]
    with SimProcess(*sim_args) as sim:
        env = {**os.environ, **connection_env(sim.base_url, rate_limit_rpm=rpm_each)}
        cmd = [sys.executable, "-m", "bench.bench_scaling", "--child", str(per_process), str(speed), repr(epoch)]
        cmd.append(repr(mono0))
        children = [
            subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)
        ]
        completed = 0
        for proc in children:
            out, _ = proc.communicate()
            completed += json.loads(out.strip().splitlines()[-1])["completed"]
        log = sim.log()
    api = [r for r in log["requests"] if r[2] in ("submit", "poll")]
    admitted = sorted(r[0] for r in api if r[3] != 429)
    refused = sum(1 for r in api if r[3] == 429)
    polls = sum(1 for r in api if r[2] == "poll" and r[3] == 200)
    tasks = log["tasks"].values()
    most, _ = window_stats(admitted)
    minutes = (admitted[-1] - admitted[0]) / 60
    return {
        "completed": completed,
        "refused": refused,
        "most": most,
        "rate": (len(admitted) - 1) / minutes,
        "minutes": minutes,
        "polls_per_gen": polls / max(1, completed),
        "mean_duration": sum(t[2] for t in tasks) / len(tasks),
        "requests": len(admitted),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--generations", type=int, default=400, help="in all, split between the processes")
    parser.add_argument("--limit", type=int, default=240, help="the account's requests per minute")
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args()
    if args.child:
        count, speed, epoch, mono0 = args.child
        child(int(count), float(speed), float(epoch), float(mono0))
        return
    n, total, limit = args.processes, args.generations, args.limit
    shared = run(n, total // n, limit, limit / n, args.speed)
    whole = run(n, total // n, limit, limit, args.speed)
    # The model of docs/scaling.md: while the limit is not the bottleneck, requests/min =
    # 60 x (1 submit + p polls) x G / T for G generations in flight of mean duration T; with the
    # limit L binding, a run of M generations takes at least M x (1 + p) / L minutes.
    p = shared["polls_per_gen"]
    predicted_minutes = total * (1 + p) / (limit * 0.98)
    rows = [
        Row(
            "429 answers, rate_limit_rpm = L / N",
            shared["refused"],
            whole["refused"],
            "",
            "0",
            shared["refused"] == 0,
            "rpm = L each",
        ),
        Row(
            "most admitted in any 60 s window",
            shared["most"],
            whole["most"],
            "",
            f"<= {limit}",
            shared["most"] <= limit,
            "rpm = L each",
        ),
        Row(
            "achieved rate, all processes",
            shared["rate"],
            limit,
            "rpm",
            "<= L",
            shared["rate"] <= limit,
            "account limit L",
        ),
        Row("generations completed", shared["completed"], total, "", "all", shared["completed"] == total, "all"),
        Row("  same, rpm = L each", whole["completed"], total, "", "", None, "all"),
        Row("requests per generation (1 submit + polls)", 1 + p, None, "", "", None),
        Row(
            "run length: measured vs model M(1+p)/0.98L", shared["minutes"], predicted_minutes, "min", "", None, "model"
        ),
    ]
    print_table(
        f"scaling check: {n} triggerer processes, {total} generations, account limit L = {limit}/min enforced by "
        f"the simulator, clocks x{args.speed:g}",
        rows,
    )
    write_result("scaling", rows, {"shared": shared, "whole": whole})


if __name__ == "__main__":
    main()
