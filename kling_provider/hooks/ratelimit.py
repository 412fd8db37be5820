"""One request budget per (API host, key) per process, shared by sync and async callers.

EvoLink limits requests per account and does not publish the numbers; a 429 costs a retry and,
on a submission, a delay. So every hook in a process (operators on a worker, a thousand
triggers in one triggerer) draws from the same budget: requests are spaced ``60 / rpm``
seconds apart by handing out time slots. Reserving a slot is a few arithmetic operations under
a lock and never waits while holding it, so the same limiter serves threads and coroutines.

Slots are spaced for a rate :data:`HEADROOM` under the configured one. The server counts
arrivals in a sliding 60 s window, and a request never leaves exactly at its slot: a busy event
loop or a slow thread sends it late, the network adds its own jitter, and a late request lands
closer to the ones after it. Slots at exactly the limit put limit + 1 requests into some
window now and then; 2 % under it leaves 1.2 s of slack per window for that lateness.
"""

from __future__ import annotations

import asyncio
import threading
import time

#: Fraction of the configured rate kept free for timing jitter (see the module docstring). Measured
#: with bench/bench_ratelimit.py (1,000 triggers, 300/min, simulator enforcing 300 per sliding
#: minute): 19 answers 429 without it, none with it.
HEADROOM = 0.02


class RateLimiter:
    """Space requests at most ``requests_per_minute`` per rolling minute (aiming 2 % under it)."""

    def __init__(self, requests_per_minute: float) -> None:
        self.requests_per_minute = requests_per_minute
        self.interval = 60.0 / (requests_per_minute * (1 - HEADROOM))
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
