"""The simulator for the soak, in a process of its own, steered over loopback HTTP.

``python -m soak.simproc --port 0 --api-key KEY`` (``tests/`` on ``PYTHONPATH``) prints its base
URL and serves the EvoLink simulator plus a control API under ``/_soak/`` (no key; loopback
only): ``POST /_soak/faults`` adds faults (a JSON list of :class:`Fault` fields),
``DELETE /_soak/faults`` removes them, ``POST /_soak/settings`` changes the generation length or
the expired-link rate, and ``GET /_soak/log`` returns everything the soak's checks read: every
request (time, method, phase, status, task id, fault, the prompt of a create call), every task
(prompt, final status, error code) and the hits of every fault.

Expired links: with ``expire_rate`` set, that share of result downloads is refused with the CDN's
403 "Request has expired", and from then on a query of the task hands out a fresh link (a later
expiry, a new signature) while the old one stays refused. Whether EvoLink renews a link on query
is undocumented; the operator handles both (an unchanged link fails the task for good, which no
retry can help and the soak would count as lost), so the soak plays the one it can survive.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kling_provider.testing import EvoLinkSimulator, Fault
from kling_provider.testing.errors import cdn_error
from kling_provider.testing.exchange import Exchange
from kling_provider.testing.links import ResultLinks
from kling_provider.testing.state import SimTask

CONTROL = "/_soak/"
EXPIRED_LINK = "expired_link"
_FAULT_FIELDS = {f.name for f in fields(Fault) if f.init}


class RenewingLinks(ResultLinks):
    """Result links that expire at random and are renewed by the next query (see the module doc)."""

    def __init__(self, lifetime: float, *, expire_rate: float, seed: int) -> None:
        super().__init__(lifetime)
        self.expire_rate = expire_rate
        self._expire_rng = random.Random(seed + 7)
        #: Task id -> how many times its link was refused as expired (= renewals handed out).
        self.renewals: dict[str, int] = {}

    def expiry(self, task: SimTask) -> int:
        return super().expiry(task) + self.renewals.get(task.id, 0)

    def refusal(self, task: SimTask, ex: Exchange, now: float) -> Response | None:
        try:
            expires = int(parse_qs(ex.request.url.query)["expires"][0])
        except (KeyError, IndexError, ValueError):
            expires = None
        current = self.expiry(task)
        if expires is not None and expires < current:
            ex.record.fault = ex.record.fault or "stale_link"
            return cdn_error(403, "AccessDenied", "Request has expired")
        if expires == current and self.expire_rate and self._expire_rng.random() < self.expire_rate:
            self.renewals[task.id] = self.renewals.get(task.id, 0) + 1
            ex.record.fault = EXPIRED_LINK
            return cdn_error(403, "AccessDenied", "Request has expired")
        return super().refusal(task, ex, now)


class SoakSimulator(EvoLinkSimulator):
    """The simulator, with :class:`RenewingLinks` as its result links."""

    def __init__(self, *, expire_rate: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        self.links: RenewingLinks = RenewingLinks(
            self.link_lifetime, expire_rate=expire_rate, seed=options.get("seed", 0)
        )

    @property
    def expire_rate(self) -> float:
        return self.links.expire_rate

    @expire_rate.setter
    def expire_rate(self, value: float) -> None:
        self.links.expire_rate = value

    @property
    def renewals(self) -> dict[str, int]:
        return self.links.renewals


class SoakApp:
    """The simulator app with the ``/_soak/`` control API in front of it."""

    def __init__(self, sim: SoakSimulator) -> None:
        self.sim = sim
        self.faults: list[Fault] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            status, answer = self.control(scope["method"], scope["path"][len(CONTROL) :], body)
            payload = json.dumps(answer).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.sim(scope, receive, send)

    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if (method, path) == ("POST", "faults"):
            specs = json.loads(body)
            unknown = sorted({k for spec in specs for k in spec} - _FAULT_FIELDS)
            if unknown:
                return 400, {"error": f"unknown fault fields {unknown}"}
            added = [self.sim.faults.add(Fault(**spec)) for spec in specs]
            self.faults.extend(added)
            return 200, {"added": len(added)}
        if (method, path) == ("DELETE", "faults"):
            self.sim.faults.clear()
            return 200, {"cleared": True}
        if (method, path) == ("POST", "settings"):
            settings = json.loads(body)
            if "generation_seconds" in settings:
                self.sim.generation_seconds = float(settings["generation_seconds"])
            if "expire_rate" in settings:
                self.sim.expire_rate = float(settings["expire_rate"])
            return 200, {"generation_seconds": self.sim.generation_seconds, "expire_rate": self.sim.expire_rate}
        if (method, path) == ("GET", "log"):
            return 200, self.log()
        return 404, {"error": f"no control endpoint {method} {path}"}

    def log(self) -> dict[str, Any]:
        now = self.sim.clock.now()
        requests = [
            {
                "time": r.time,
                "method": r.method,
                "phase": r.phase,
                "status": r.status,
                "task_id": r.task_id,
                "fault": r.fault,
                "prompt": r.json.get("prompt") if r.phase == "submit" and isinstance(r.json, dict) else None,
            }
            for r in self.sim.requests
        ]
        tasks = {}
        for task in self.sim.tasks:
            view = task.view(now)
            tasks[task.id] = {
                "prompt": task.body.get("prompt"),
                "created": task.created,
                "status": view.status,
                "error": (view.error or {}).get("code"),
            }
        faults = [
            {"phase": f.phase, "kind": f.kind, "status": f.status, "rate": f.rate, "times": f.times, "hits": f.hits}
            for f in self.faults
        ]
        return {"now": now, "requests": requests, "tasks": tasks, "faults": faults, "renewals": self.sim.renewals}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.simproc")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--generation-seconds", type=float, default=10.0)
    parser.add_argument("--duration-jitter", type=float, default=0.3)
    parser.add_argument("--expire-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    sim = SoakSimulator(
        api_keys=args.api_key,
        generation_seconds=args.generation_seconds,
        duration_jitter=args.duration_jitter,
        pending_seconds=0.5,
        expire_rate=args.expire_rate,
        seed=args.seed,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"http://{args.host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        SoakApp(sim), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1, backlog=2048
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
