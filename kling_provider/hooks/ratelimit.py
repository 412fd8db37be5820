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

Slots are handed out ahead of time, so a long stall (a process starved of CPU, a blocked loop)
can still make a request leave more than that slack late. So the limiter also remembers when
the last ``requests_per_minute`` requests really left, and a request whose turn has come waits
on until the one that many places before it is more than a minute (plus :data:`WINDOW_GUARD`
for network jitter) old: the server's own sliding-window rule, applied on the client's side.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time

#: Fraction of the configured rate kept free for timing jitter (see the module docstring; the
#: figures: bench/README.md, "Figures behind the code").
HEADROOM = 0.02
#: Seconds by which the oldest of the last ``rpm`` sends must be older than a minute.
WINDOW_GUARD = 0.5
#: Above this rate the per-send history is not kept (spacing alone).
_MAX_TRACKED_RPM = 10_000


class RateLimiter:
    """Space requests at most ``requests_per_minute`` per rolling minute (aiming 2 % under it)."""

    def __init__(self, requests_per_minute: float) -> None:
        self.requests_per_minute = requests_per_minute
        self.interval = 60.0 / (requests_per_minute * (1 - HEADROOM))
        self._next_slot = 0.0
        self._lock = threading.Lock()
        tracked = requests_per_minute <= _MAX_TRACKED_RPM
        self._sent: collections.deque[float] | None = (
            collections.deque(maxlen=max(1, int(requests_per_minute))) if tracked else None
        )

    def reserve(self) -> float:
        """Take the next free slot; return how long to wait for it (0 when it is now)."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        return slot - now

    def admit(self) -> float:
        """Record a send now if the last minute allows one more; else return how long to wait."""
        if self._sent is None:
            return 0.0
        with self._lock:
            now = time.monotonic()
            sent = self._sent
            if len(sent) == sent.maxlen and sent[0] > now - 60.0 - WINDOW_GUARD:
                return sent[0] + 60.0 + WINDOW_GUARD - now
            sent.append(now)
            return 0.0

    def acquire(self) -> None:
        delay = self.reserve()
        while True:
            if delay > 0:
                time.sleep(delay)
            delay = self.admit()
            if delay <= 0:
                return

    async def aacquire(self) -> None:
        delay = self.reserve()
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            delay = self.admit()
            if delay <= 0:
                return


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
