"""Event loops whose clock is not the wall clock, and the matching ``time`` for the provider.

``VirtualTimeLoop``: time stands still while anything is runnable and jumps straight to the next
timer when every coroutine is waiting (and no worker thread is busy). Minutes of polling run in
a fraction of a second, deterministically; usable only with in-process I/O (the simulator's
in-process transport), since a jump while a socket is in flight would skip the wait for it.

``ScaledTimeLoop``: time runs ``speed`` times faster than CLOCK_MONOTONIC, so a sleep of 10 s
takes 10/speed real seconds. Works with real sockets; pair it with the simulator process's
``--speed`` and ``--clock-anchor`` so both sides read the same scaled clock.

``patch_provider_time(clock)`` points the ``time`` module the trigger, hook and rate limiter
see at the benchmark's clock (``time()``, ``monotonic()``), leaving everything else real.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

_PROVIDER_MODULES = ("kling_provider.triggers.kling", "kling_provider.hooks.kling", "kling_provider.hooks.ratelimit")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time that jumps to the next timer whenever it would block."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual = 0.0
        self._busy_threads = 0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> list[Any]:
            if self._busy_threads or timeout is None:
                return real_select(timeout)  # a worker thread will wake us (or nothing is scheduled)
            events = real_select(0)
            if not events and timeout > 0:
                self._virtual += timeout
            return events

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        self._busy_threads += 1

        def done(_: object) -> None:
            self._busy_threads -= 1

        future.add_done_callback(done)
        return future


class ScaledTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock runs ``speed`` times faster than CLOCK_MONOTONIC from ``mono0``."""

    def __init__(self, speed: float, mono0: float) -> None:
        super().__init__()
        self.speed = speed
        self.mono0 = mono0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> list[Any]:
            return real_select(None if timeout is None else timeout / speed)

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return (time.monotonic() - self.mono0) * self.speed


class LoopTime:
    """``time``-module stand-in: ``time()``/``monotonic()`` follow a loop's clock, all else is real."""

    def __init__(self, loop: asyncio.AbstractEventLoop, epoch: float) -> None:
        self._loop = loop
        self.epoch = epoch

    def time(self) -> float:
        return self.epoch + self._loop.time()

    def monotonic(self) -> float:
        return self._loop.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def patch_provider_time(clock: LoopTime) -> Iterator[None]:
    """Make the trigger, hook and rate limiter read ``clock`` (benchmark only)."""
    import importlib

    modules: list[ModuleType] = [importlib.import_module(name) for name in _PROVIDER_MODULES]
    saved = [module.time for module in modules]
    try:
        for module in modules:
            module.time = clock  # type: ignore[attr-defined]
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.time = original  # type: ignore[attr-defined]


def run_on(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """``asyncio.run`` on a given loop (3.10-compatible), closing it afterwards."""
    asyncio.set_event_loop(loop)
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()
