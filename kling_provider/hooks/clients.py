"""Async clients shared by every hook on one event loop.

A triggerer runs a thousand Kling triggers on one loop: one client per (loop, API host, timeout,
transport) keeps one warm pool for them all. Hooks take a reference when they first need the
client and give it back in ``aclose()``; the last one out closes it. Requests wait for a free
connection in :func:`gate`, not inside the pool, and connection lookups are shared for
:data:`SETTINGS_TTL` seconds (:func:`shared_lookup`). The costs behind these choices:
bench/README.md, "Figures behind the code".
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
_Key = tuple[int, str, float, int]
_shared: dict[_Key, tuple[httpx.AsyncClient, int]] = {}
_gates: dict[_Key, asyncio.Semaphore] = {}

#: Connections per shared client, and requests in flight through it. Polls are spaced by the rate
#: limiter, so even a fast account keeps only a few in flight; idle connections kept for reuse
#: are fewer still (httpcore checks each idle one on every request).
MAX_CONNECTIONS = 20
MAX_KEEPALIVE = 10


def limits() -> httpx.Limits:
    """Pool limits for a shared client (matching :func:`gate`)."""
    return httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE, keepalive_expiry=120)


def _key(base_url: str, timeout: float, transport: Any) -> _Key:
    return (id(asyncio.get_running_loop()), base_url, timeout, id(transport) if transport is not None else 0)


def acquire(base_url: str, timeout: float, transport: Any, factory: Callable[[], httpx.AsyncClient]) -> _Key:
    """Take a reference to the shared client (creating it); return the key to release it by."""
    key = _key(base_url, timeout, transport)
    client, refs = _shared.get(key, (None, 0))
    if client is None or client.is_closed:
        client, refs = factory(), 0
        _gates[key] = asyncio.Semaphore(MAX_CONNECTIONS)
    _shared[key] = (client, refs + 1)
    return key


def get(key: _Key) -> httpx.AsyncClient:
    return _shared[key][0]


def gate(key: _Key) -> asyncio.Semaphore:
    """Hold this while a request is in flight on the shared client (see the module docstring)."""
    return _gates[key]


async def release(key: _Key) -> None:
    entry = _shared.get(key)
    if entry is None:
        return
    client, refs = entry
    if refs <= 1:
        del _shared[key]
        _gates.pop(key, None)
        await client.aclose()
    else:
        _shared[key] = (client, refs - 1)


def open_count() -> int:
    """How many shared clients are open (for tests and benchmarks)."""
    return len(_shared)


#: Seconds that hooks on one event loop reuse a connection lookup. Short, so an edited connection
#: (a rotated key) reaches new triggers within seconds; long enough that a burst of triggers
#: starting together looks the connection up once.
SETTINGS_TTL = 10.0
_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[Any]]]] = (
    weakref.WeakKeyDictionary()
)


async def shared_lookup(conn_id: str, lookup: Callable[[], Awaitable[T]]) -> T:
    """``await lookup()``, shared by every caller on this loop asking for ``conn_id`` within the TTL.

    Callers that arrive while a lookup is running wait for that one; a failed lookup is not
    reused. A cancelled caller does not cancel the lookup the others wait for.
    """
    loop = asyncio.get_running_loop()
    entries = _lookups.setdefault(loop, {})
    now = time.monotonic()
    entry = entries.get(conn_id)
    if entry is not None:
        started, future = entry
        failed = future.done() and (future.cancelled() or future.exception() is not None)
        if failed or now - started > SETTINGS_TTL:
            entry = None
    if entry is None:
        entry = entries[conn_id] = (now, asyncio.ensure_future(lookup()))
    result: T = await asyncio.shield(entry[1])
    return result
