"""The shared request budget: slots spaced 60/rpm apart, one limiter per (host, key, rate)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kling_provider.hooks.ratelimit import RateLimiter, limiter_for


def test_slots_are_spaced_and_never_overlap() -> None:
    limiter = RateLimiter(requests_per_minute=600)  # one slot every 0.1 s
    delays = [limiter.reserve() for _ in range(5)]
    assert delays[0] == 0
    # Each reservation waits one interval longer than the previous (within clock jitter).
    for before, after in itertools.pairwise(delays):
        assert 0.09 <= after - before <= 0.11


def test_no_window_of_a_minute_holds_more_than_the_budget() -> None:
    limiter = RateLimiter(requests_per_minute=300)
    slots = [limiter.reserve() for _ in range(1000)]
    # Slots are relative waits from (almost) the same instant: count those inside any 60 s window.
    slots.sort()
    start = 0
    for end in range(len(slots)):
        while slots[end] - slots[start] >= 60:
            start += 1
        assert end - start + 1 <= 300 + 1


def test_registry_shares_per_key_and_rate() -> None:
    a = limiter_for(("https://api.evolink.ai", "digest-a"), 120)
    assert limiter_for(("https://api.evolink.ai", "digest-a"), 120) is a
    assert limiter_for(("https://api.evolink.ai", "digest-b"), 120) is not a
    assert limiter_for(("https://api.evolink.ai", "digest-a"), 60) is not a


def test_async_callers_share_the_budget() -> None:
    limiter = RateLimiter(requests_per_minute=6000)  # 10 ms apart

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def one() -> None:
            await limiter.aacquire()
            times.append(loop.time())

        await asyncio.gather(*(one() for _ in range(20)))
        return sorted(times)

    times = asyncio.run(main())
    assert times[-1] - times[0] >= 19 * 0.01 * 0.9


def test_a_late_send_holds_back_the_request_a_minute_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slots are handed out ahead; what really left when is what the server's window counts."""
    from kling_provider.hooks import ratelimit

    class Clock:
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

    clock = Clock()
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = RateLimiter(requests_per_minute=3)
    for at in (1000.0, 1025.0, 1050.0):  # three sends, the first of them late
        clock.now = at
        assert limiter.admit() == 0
    clock.now = 1055.0  # its slot has come, but 3 requests left within the last minute
    assert limiter.admit() == pytest.approx(1000.0 + 60 + ratelimit.WINDOW_GUARD - 1055.0)
    clock.now = 1060.0 + ratelimit.WINDOW_GUARD
    assert limiter.admit() == 0
