"""httpx transports that hand requests straight to the simulator app: no socket, no port.

The async transport wraps ``httpx.ASGITransport``; the sync one runs the same app on a private
event loop in a daemon thread (as ``starlette.testclient`` does, without its private classes).
Both tell the app it is being called in-process, with the client's read timeout, so a fault can
raise the httpx error a real connection would have produced instead of writing to a socket.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["InProcessCall", "SimAsyncTransport", "SimSyncTransport", "in_process_call"]

_Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[_Message]], Callable[[_Message], Awaitable[None]]],
    Awaitable[None],
]


@dataclass(frozen=True)
class InProcessCall:
    """Set while the app serves a request from an in-process transport."""

    #: The client's read timeout in seconds (None = no timeout).
    read_timeout: float | None


_IN_PROCESS: contextvars.ContextVar[InProcessCall | None] = contextvars.ContextVar("kling_sim_in_process", default=None)


def in_process_call() -> InProcessCall | None:
    """The in-process call being served, or None when the request came over a socket."""
    return _IN_PROCESS.get()


class SimAsyncTransport(httpx.AsyncBaseTransport):
    """Async in-process transport: ``httpx.AsyncClient(transport=sim.async_transport())``."""

    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        token = _IN_PROCESS.set(InProcessCall(read_timeout=timeouts.get("read")))
        try:
            return await self._asgi.handle_async_request(request)
        finally:
            _IN_PROCESS.reset(token)


class SimSyncTransport(httpx.BaseTransport):
    """Sync in-process transport: ``httpx.Client(transport=sim.sync_transport())``.

    The app runs on an event loop in a daemon thread, started on first use and stopped by
    :meth:`close` (or when the transport is garbage-collected), so a forgotten transport can
    never keep the interpreter from exiting.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._async = SimAsyncTransport(app)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_serve, args=(loop,), name="kling-sim-transport", daemon=True)
                thread.start()
                weakref.finalize(self, _stop_loop, loop, thread)
                self._loop, self._thread = loop, thread
            return self._loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # now a ByteStream, which async code can iterate too
        future = asyncio.run_coroutine_threadsafe(self._round_trip(request), self._running_loop())
        status, headers, body = future.result()
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    async def _round_trip(self, request: httpx.Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = await self._async.handle_async_request(request)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return response.status_code, response.headers.raw, body

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            _stop_loop(loop, thread)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
    if thread is not threading.current_thread():
        thread.join(timeout=5)
