"""Async clients shared by every hook on one event loop.

A triggerer runs a thousand Kling triggers on one loop. A client each would mean a thousand
connection pools (and SSL contexts, ~100 KB and a few ms of CPU apiece) for requests that the
rate limit spaces out anyway; one client per (loop, API host, timeout, transport) keeps one
warm pool. Hooks take a reference when they first need the client and give it back in
``aclose()``; the last one out closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

_Key = tuple[int, str, float, int]
_shared: dict[_Key, tuple[httpx.AsyncClient, int]] = {}


def _key(base_url: str, timeout: float, transport: Any) -> _Key:
    return (id(asyncio.get_running_loop()), base_url, timeout, id(transport) if transport is not None else 0)


def acquire(base_url: str, timeout: float, transport: Any, factory: Callable[[], httpx.AsyncClient]) -> _Key:
    """Take a reference to the shared client (creating it); return the key to release it by."""
    key = _key(base_url, timeout, transport)
    client, refs = _shared.get(key, (None, 0))
    if client is None or client.is_closed:
        client, refs = factory(), 0
    _shared[key] = (client, refs + 1)
    return key


def get(key: _Key) -> httpx.AsyncClient:
    return _shared[key][0]


async def release(key: _Key) -> None:
    entry = _shared.get(key)
    if entry is None:
        return
    client, refs = entry
    if refs <= 1:
        del _shared[key]
        await client.aclose()
    else:
        _shared[key] = (client, refs - 1)


def open_count() -> int:
    """How many shared clients are open (for tests and benchmarks)."""
    return len(_shared)
