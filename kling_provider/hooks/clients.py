"""Async clients shared by every hook on one event loop.

A triggerer runs a thousand Kling triggers on one loop. A client each would mean a thousand
connection pools (and SSL contexts, ~100 KB and a few ms of CPU apiece) for requests that the
rate limit spaces out anyway; one client per (loop, API host, timeout, transport) keeps one
warm pool. Hooks take a reference when they first need the client and give it back in
``aclose()``; the last one out closes it.

Requests wait for a free connection here, in :func:`gate`, rather than inside the pool: httpcore
re-scans every queued request against every connection whenever a request starts or ends, so a
burst of a thousand polls queued in the pool costs O(queued^2 x connections) CPU (seconds, with
the event loop stalled), while a semaphore costs O(1) per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

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
