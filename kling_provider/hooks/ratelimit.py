"""One request budget per (API host, key) per process, shared by sync and async callers.

EvoLink limits requests per account and does not publish the numbers; a 429 costs a retry and,
on a submission, a delay. So every hook in a process (operators on a worker, a thousand
triggers in one triggerer) draws from the same budget: requests are spaced ``60 / rpm``
seconds apart by handing out time slots. Reserving a slot is a few arithmetic operations under
a lock and never waits while holding it, so the same limiter serves threads and coroutines.
"""

from __future__ import annotations

import asyncio
import threading
import time


class RateLimiter:
    """Space requests at most ``requests_per_minute`` per rolling minute."""

    def __init__(self, requests_per_minute: float) -> None:
        self.requests_per_minute = requests_per_minute
        self.interval = 60.0 / requests_per_minute
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next free slot; return how long to wait for it (0 when it is now)."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        return slot - now

    def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)

    async def aacquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


_limiters: dict[tuple[str, str, float], RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(key: tuple[str, str], requests_per_minute: float) -> RateLimiter:
    """The process-wide limiter for an (API host, key digest) pair at a given rate."""
    full_key = (*key, requests_per_minute)
    with _registry_lock:
        limiter = _limiters.get(full_key)
        if limiter is None:
            limiter = _limiters[full_key] = RateLimiter(requests_per_minute)
        return limiter
