"""One wait, for the worker and the triggerer: KlingHook.wait_for_task, KlingHook.await_task and
KlingTaskTrigger all run the same plan (:func:`kling_provider.hooks.plans.wait_plan`).

The simulator's clock stands still and moves only by the waits the hook asks for (SleepLog ->
``sim.clock.advance``), so a ten-minute generation is lived through in simulated time: what is
asserted is the sequence of requests and waits, never how long the test took.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from kling_provider.hooks import plans
from kling_provider.models import TaskStatus
from kling_provider.triggers.kling import KlingTaskTrigger

from .support import Caller, Flavour, Loopback, SimEnv, SleepLog, open_env, text_request

#: A generation long enough for a heartbeat to matter (the simulator's clock is simulated).
LONG = 600.0
#: Polls every 20-25 s: more often than the heartbeat may speak.
POLLS = {"max_interval": 25.0, "recheck_after": 20.0}
_HEARTBEAT = re.compile(r"Task (\S+): (\w+), (\d+)% after (\d+) s, about (\d+) s to go")


@pytest.fixture
def long_env(monkeypatch: pytest.MonkeyPatch, loopback: Loopback, request: pytest.FixtureRequest) -> Iterator[SimEnv]:
    with open_env(getattr(request, "param", "loopback"), monkeypatch, loopback, generation_seconds=LONG) as env:
        yield env


def _heartbeats(text: str, task_id: str) -> list[tuple[str, int, int, int]]:
    """(status, progress, elapsed, remaining) of each heartbeat line about ``task_id``."""
    return [(m[2], int(m[3]), int(m[4]), int(m[5])) for m in _HEARTBEAT.finditer(text) if m[1] == task_id]


def _wait(env: SimEnv, flavour: Flavour | str, task_id: str, started_at: float, estimate: float | None) -> Any:
    hook = env.hook(poll_policy=plans.PollPolicy(**POLLS))
    log = logging.getLogger("test.heartbeat")
    if flavour == "sync":
        return hook.wait_for_task(task_id, started_at=started_at, log=log)
    if flavour == "async":
        with Caller.open("async") as caller:
            return caller.run(
                hook, lambda: hook.await_task(task_id, started_at=started_at, estimated_time=estimate, log=log)
            )
    policy = {**POLLS, "settle": 0}
    trigger = KlingTaskTrigger(task_id, started_at=started_at, estimated_time=estimate, poll_policy=policy)

    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


@pytest.mark.parametrize("flavour", ["sync", "async", "trigger"])
def test_heartbeat_at_most_once_a_minute_from_polls_already_made(
    long_env: SimEnv,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    flavour: str,
) -> None:
    """A ten-minute wait polled every 20-25 s says how it is going (status, progress, elapsed,
    ETA) at most once a minute, and only from the answers of polls it made anyway: every request
    is a poll, and the same wait with the heartbeat off makes exactly the same requests."""
    env = long_env
    caplog.set_level(logging.INFO)
    sleeps = SleepLog(then=env.sim.clock.advance).install(monkeypatch)
    task = env.hook().submit(text_request())
    started_at = env.sim.clock.now()

    result = _wait(env, flavour, task.id, started_at, task.estimated_time)

    if flavour == "trigger":
        assert [e["status"] for e in result] == ["completed"]
    else:
        assert result.status is TaskStatus.COMPLETED
    out = capsys.readouterr()
    # Where the lines land depends on the Airflow version's logging set-up, and Airflow 3.0 sends
    # them to both the captured log and stderr: read each place on its own, keep the fuller one.
    beats = max((_heartbeats(text, task.id) for text in (caplog.text, out.out + out.err)), key=len)
    polls = env.sim.count(phase="poll")
    assert env.requests_by_phase() == {"submit": 1, "poll": polls}
    assert sleeps.slept >= LONG
    # One line per minute at most, over ten minutes: several, and fewer than the polls they come from.
    elapsed = sorted({beat[2] for beat in beats})
    assert len(elapsed) == len(beats), f"a heartbeat line repeated: {beats}"
    assert 5 <= len(beats) <= LONG / plans.HEARTBEAT_SECONDS + 1, beats
    gaps = [later - earlier for earlier, later in itertools.pairwise(elapsed)]
    assert all(gap >= plans.HEARTBEAT_SECONDS - 1 for gap in gaps), f"heartbeats closer than a minute: {elapsed}"
    assert polls >= 2 * len(beats), f"{len(beats)} heartbeats from {polls} polls: not held back to one a minute"
    assert all(status in ("pending", "processing") and 0 <= progress < 100 for status, progress, _, _ in beats)
    assert any(remaining > 0 for *_, remaining in beats), "no ETA in the heartbeat"

    # The same wait, heartbeat off: the very same requests and waits.
    with_heartbeat = (polls, list(sleeps.delays))
    monkeypatch.setattr(plans, "HEARTBEAT_SECONDS", float("inf"))
    with open_env(env.mode, monkeypatch, generation_seconds=LONG) as again:  # a server of its own
        replay = SleepLog(then=again.sim.clock.advance).install(monkeypatch)
        second = again.hook().submit(text_request())
        _wait(again, flavour, second.id, again.sim.clock.now(), second.estimated_time)
        assert (again.sim.count(phase="poll"), _rounded(replay.delays)) == (
            with_heartbeat[0],
            _rounded(with_heartbeat[1]),
        )


def _rounded(delays: list[float]) -> list[float]:
    """Waits to the second: the two runs read the wall clock a few microseconds apart."""
    return [round(d) for d in delays]
