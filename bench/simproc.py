"""The EvoLink simulator as a separate process, for the benchmarks.

``python -m bench.simproc`` takes every flag of the bundled CLI (``python -m
kling_provider.testing``: its own parser and simulator factory are reused) plus what the
benchmarks need and the CLI does not offer:

``--duration-jitter J``
    real duration = estimate x uniform(1-J, 1+J) (the CLI gives jitter only with --realistic).
``--clock-anchor EPOCH MONOTONIC``
    simulated time = EPOCH + (time.monotonic() - MONOTONIC) x speed. CLOCK_MONOTONIC is one clock
    for every process on the machine, so a benchmark that scales its own clock with the same
    anchor agrees with the simulator to the microsecond (the CLI starts its clock whenever it starts).

It also answers ``GET /_bench/log`` (no key) with the request log as JSON, so a benchmark can
check what the server saw: arrival times on the simulated clock, statuses, task ids.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Sequence

import uvicorn
from starlette.types import Receive, Scope, Send

from kling_provider.testing.__main__ import build_parser, build_simulator
from kling_provider.testing.app import EvoLinkSimulator
from kling_provider.testing.clock import SimClock

LOG_PATH = "/_bench/log"


class AnchoredClock(SimClock):
    """A SimClock pinned to an (epoch, monotonic) pair given by the benchmark."""

    def __init__(self, speed: float, epoch: float, mono0: float) -> None:
        super().__init__(speed, start=epoch)
        self._epoch = epoch
        self._anchor = mono0

    def now(self) -> float:
        return self._epoch + (time.monotonic() - self._anchor) * self.speed


class BenchApp:
    """The simulator app, plus a request-log endpoint for the benchmark."""

    def __init__(self, sim: EvoLinkSimulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == LOG_PATH:
            rows = [
                [r.time, r.method, r.phase, r.status, r.task_id, r.path if r.phase == "other" else None]
                for r in self.sim.requests
            ]
            tasks = {t.id: [t.created, t.estimated_seconds, t.actual_seconds] for t in self.sim.tasks}
            body = json.dumps({"requests": rows, "tasks": tasks}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.sim(scope, receive, send)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.prog = "python -m bench.simproc"
    parser.add_argument("--duration-jitter", type=float, default=None, help="real/estimated spread, 0..1")
    parser.add_argument("--clock-anchor", type=float, nargs=2, metavar=("EPOCH", "MONOTONIC"), default=None)
    args = parser.parse_args(argv)
    sim = build_simulator(args)
    if args.duration_jitter is not None:
        sim.duration_jitter = args.duration_jitter
    if args.clock_anchor is not None:
        sim.clock = AnchoredClock(args.speed, *args.clock_anchor)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"http://{args.host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        BenchApp(sim),
        log_level=args.log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
