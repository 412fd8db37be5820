"""Shared set-up for the KlingHook tests: one simulator, reached in-process or over loopback HTTP.

``open_env(mode, monkeypatch)`` gives a :class:`SimEnv`: the simulator (on a clock that only
moves when a test moves it), the ``kling_default`` connection pointing at it, and a factory for
hooks wired the right way for the mode (in-process transports, or none at all for loopback).
:class:`Caller` runs a hook call sync or async, so one test body covers both clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import pytest

import kling_provider.hooks.kling as kling_module
from kling_provider.hooks.kling import KlingHook
from kling_provider.hooks.polling import PollPolicy
from kling_provider.hooks.retry import RetryPolicy
from kling_provider.models import Task, TextToVideoRequest
from kling_provider.testing import EvoLinkSimulator, SimClock, SimulatorServer

T = TypeVar("T")
Mode = Literal["inprocess", "loopback"]
Flavour = Literal["sync", "async"]

MODES: tuple[Mode, ...] = ("inprocess", "loopback")
FLAVOURS: tuple[Flavour, ...] = ("sync", "async")
API_KEY = "sk-sim-local"
WRONG_KEY = "sk-wrong-0123456789abcdef"
#: In-process hooks never dial: the transport answers. The discard port refuses if one ever did.
IN_PROCESS_URL = "http://127.0.0.1:9"
MAX_ATTEMPTS = 4
FAST_RETRY = RetryPolicy(max_attempts=MAX_ATTEMPTS, backoff_base=0.01, backoff_cap=0.05)
FAST_POLL = PollPolicy(min_interval=0.01, max_interval=0.05, max_tail_interval=0.05, margin=0.0)
#: Client timeout used by tests that make an answer come late (over loopback it is really waited).
SHORT_TIMEOUT = 0.5
#: No test needs the process-wide request spacing; it would only make the suite slow.
FAST_RPM = 6_000_000


@dataclass
class SimEnv:
    """A simulator, the connection that reaches it, and the hooks a test made."""

    mode: Mode
    sim: EvoLinkSimulator
    base_url: str
    monkeypatch: pytest.MonkeyPatch
    hooks: list[KlingHook] = field(default_factory=list)

    def connect(self, *, key: str = API_KEY, timeout: float = 5.0, **extra: Any) -> None:
        """Point ``kling_default`` at the simulator (hooks made afterwards read it)."""
        value = {
            "conn_type": "kling",
            "host": self.base_url,
            "password": key,
            "extra": {"files_host": self.base_url, "timeout": timeout, "rate_limit_rpm": FAST_RPM, **extra},
        }
        self.monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(value))

    def hook(
        self, *, retry_policy: RetryPolicy = FAST_RETRY, poll_policy: PollPolicy = FAST_POLL, **kwargs: Any
    ) -> KlingHook:
        """A hook for this mode: the simulator's transports in-process, plain HTTP over loopback."""
        if self.mode == "inprocess":
            kwargs.setdefault("transport", self.sim.sync_transport())
            kwargs.setdefault("async_transport", self.sim.async_transport())
        hook = KlingHook(retry_policy=retry_policy, poll_policy=poll_policy, **kwargs)
        self.hooks.append(hook)
        return hook

    def finish(self, task_id: str) -> None:
        """Move the simulator's clock to the moment ``task_id`` ends."""
        self.sim.fast_forward(task_id)

    def requests_by_phase(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.sim.requests:
            counts[record.phase] = counts.get(record.phase, 0) + 1
        return counts


class Loopback:
    """One real loopback server for a whole test module, serving the current test's simulator.

    Starting a :class:`SimulatorServer` is quick but stopping one takes uvicorn ~0.2 s; a module
    of a hundred loopback tests would spend most of its time there. So the server serves this
    small ASGI switch, and each test plugs in a fresh simulator of its own.
    """

    def __init__(self) -> None:
        self.sim: EvoLinkSimulator | None = None
        self.server = SimulatorServer(cast("EvoLinkSimulator", self))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sim = self.sim
        if sim is None:
            raise RuntimeError("no simulator plugged in: the request came between two tests")
        await sim(scope, receive, send)

    @classmethod
    @contextmanager
    def serve(cls) -> Iterator[Loopback]:
        switch = cls()
        with switch.server:
            yield switch


@contextmanager
def open_env(
    mode: Mode, monkeypatch: pytest.MonkeyPatch, loopback: Loopback | None = None, **sim_options: Any
) -> Iterator[SimEnv]:
    """A :class:`SimEnv` for ``mode``; the simulator's clock stands still unless a test moves it.

    Over loopback the simulator is served by ``loopback`` when given, else by a server of its own.
    """
    if mode == "loopback" and loopback is None:
        with Loopback.serve() as own, open_env(mode, monkeypatch, own, **sim_options) as env:
            yield env
        return
    sim_options.setdefault("clock", SimClock(speed=0))
    sim_options.setdefault("generation_seconds", 3.0)
    sim = EvoLinkSimulator(**sim_options)
    if loopback is None:
        env = SimEnv(mode, sim, IN_PROCESS_URL, monkeypatch)
    else:
        loopback.sim = sim
        env = SimEnv(mode, sim, loopback.server.base_url, monkeypatch)
    env.connect()
    try:
        yield env
    finally:
        _close_hooks(env)
        if loopback is not None:
            loopback.sim = None


def _close_hooks(env: SimEnv) -> None:
    for hook in env.hooks:
        hook.close()
        if hook._aclient_key is not None:
            # An async test failed before aclose(): drop its reference to the shared client, or
            # a later loop that happens to get the same id() would be handed a dead client.
            with contextlib.suppress(Exception):
                asyncio.run(hook.aclose())


def text_request(duration: int = 5, quality: str = "720p", aspect_ratio: str = "16:9") -> Any:
    return TextToVideoRequest.build(
        prompt="a lighthouse at dusk, slow pan", duration=duration, quality=quality, aspect_ratio=aspect_ratio
    )


# -- sync / async -------------------------------------------------------------------------------


class Caller:
    """Runs ``submit``/``get_task`` through the sync client or the async one.

    Async calls of one test share one event loop, as a triggerer's do, and so one shared
    ``AsyncClient`` per hook; :meth:`close` gives the clients back (``aclose``) and ends the loop.
    """

    def __init__(self, flavour: Flavour) -> None:
        self.flavour = flavour
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hooks: list[KlingHook] = []

    @classmethod
    @contextmanager
    def open(cls, flavour: Flavour) -> Iterator[Caller]:
        caller = cls(flavour)
        try:
            yield caller
        finally:
            caller.close()

    def submit(self, hook: KlingHook, request: Any) -> Task:
        if self.flavour == "sync":
            return hook.submit(request)
        return self.run(hook, lambda: hook.asubmit(request))

    def get_task(self, hook: KlingHook, task_id: str) -> Task:
        if self.flavour == "sync":
            return hook.get_task(task_id)
        return self.run(hook, lambda: hook.aget_task(task_id))

    def run(self, hook: KlingHook, call: Callable[[], Awaitable[T]]) -> T:
        """Run one async call of ``hook`` on this caller's loop."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if hook not in self._hooks:
            self._hooks.append(hook)

        async def go() -> T:
            return await call()

        return self._loop.run_until_complete(go())

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            for hook in self._hooks:
                loop.run_until_complete(hook.aclose())
        finally:
            loop.close()


# -- the hook's sleeps --------------------------------------------------------------------------


class SleepLog:
    """Every delay the hook asked for (retry backoff, server hints, poll intervals), in order.

    Installed in place of the hook module's ``time`` / ``asyncio`` sleeps: the hook's decision
    is recorded and returns at once, so a "retry after 60 seconds" costs no wall time and its
    value can be asserted. The hook's clocks (``time.time`` / ``time.monotonic`` as it sees
    them) move on by each recorded delay, so deadlines behave as if the time had passed.
    """

    def __init__(self, then: Callable[[float], object] | None = None) -> None:
        self.delays: list[float] = []
        #: Called with each delay, e.g. ``sim.clock.advance`` to live through it in simulated time.
        self.then = then

    @property
    def slept(self) -> float:
        return sum(self.delays)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> SleepLog:
        def sleep(seconds: float) -> None:
            self.delays.append(seconds)
            if self.then is not None:
                self.then(seconds)

        async def asleep(seconds: float) -> None:
            sleep(seconds)
            await asyncio.sleep(0)

        def monotonic() -> float:
            return time.monotonic() + self.slept

        def wall() -> float:
            return time.time() + self.slept

        fake_time = _stand_in(time, sleep=sleep, monotonic=monotonic, time=wall)
        monkeypatch.setattr(kling_module, "time", fake_time)
        monkeypatch.setattr(kling_module, "asyncio", _stand_in(asyncio, sleep=asleep))
        return self


def _stand_in(module: types.ModuleType, **overrides: object) -> types.SimpleNamespace:
    """A copy of ``module``'s public names with some replaced (the real module is untouched)."""
    names = {name: getattr(module, name) for name in dir(module) if not name.startswith("_")}
    return types.SimpleNamespace(**{**names, **overrides})


# -- the key never shows ------------------------------------------------------------------------


def _texts(value: object, seen: set[int]) -> Iterator[str]:
    if id(value) in seen:
        return
    seen.add(id(value))
    yield str(value)
    yield repr(value)
    if isinstance(value, BaseException):
        for arg in value.args:
            yield from _texts(arg, seen)
        for attr in vars(value).values():
            yield from _texts(attr, seen)
        for linked in (value.__cause__, value.__context__):
            if linked is not None:
                yield from _texts(linked, seen)


def assert_secret_free(*values: object, key: str = API_KEY) -> None:
    """No str/repr of any value (exceptions: with their args, attributes and chain) holds ``key``."""
    seen: set[int] = set()
    for value in values:
        for text in _texts(value, seen):
            assert key not in text, f"the API key leaked into {type(value).__name__}: {text[:300]}"


def assert_request_log_secret_free(sim: EvoLinkSimulator, key: str = API_KEY) -> None:
    records = sim.requests
    assert records, "the simulator saw no request at all"
    assert key not in repr(records)


def part_files(directory: Path) -> list[Path]:
    """Leftovers of an unfinished download (``.<name>.part-<random>``) under ``directory``."""
    return [p for p in directory.rglob("*") if ".part-" in p.name]
