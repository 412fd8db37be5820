"""KlingTaskTrigger against the simulator over loopback: one event per outcome, no key stored."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kling_provider.hooks import clients
from kling_provider.models import TextToVideoRequest
from kling_provider.testing import Fault
from kling_provider.triggers.kling import KlingTaskTrigger

pytestmark = pytest.mark.kling_simulator(generation_seconds=1)
FAST = {"min_interval": 0.05, "margin": 0.05, "max_tail_interval": 0.2, "settle": 0}


def submit(sim: Any) -> str:
    from kling_provider.hooks.kling import KlingHook

    with KlingHook() as hook:
        return hook.submit(TextToVideoRequest.build(prompt="a lighthouse at dusk", duration=3)).id


def run_trigger(trigger: KlingTaskTrigger) -> list[dict[str, Any]]:
    """Drive run() to its end, the way the triggerer does, and collect every event."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def roundtrip(trigger: KlingTaskTrigger) -> KlingTaskTrigger:
    """What the triggerer does: import by classpath, rebuild from the serialised kwargs."""
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    rebuilt = cls(**kwargs)
    assert isinstance(rebuilt, KlingTaskTrigger)
    return rebuilt


def test_serialises_ids_and_settings_only(kling_connection: Any) -> None:
    trigger = KlingTaskTrigger("task-unified-1-abc", "kling_default", deadline=123.0, poll_policy=FAST)
    classpath, kwargs = trigger.serialize()
    assert classpath == "kling_provider.triggers.kling.KlingTaskTrigger"
    assert kling_connection.api_key not in repr(kwargs) and kling_connection.api_key not in repr(trigger)
    assert roundtrip(trigger).serialize() == (classpath, kwargs)


def test_completed_event_carries_the_final_task(kling_connection: Any) -> None:
    task_id = submit(kling_connection.sim)
    events = run_trigger(roundtrip(KlingTaskTrigger(task_id, poll_policy=FAST, deadline=time.time() + 60)))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "completed"
    assert event["task"]["id"] == task_id and event["task"]["results"]
    assert clients.open_count() == 0, "the shared client is closed when the last trigger ends"
    polls = kling_connection.sim.count(phase="poll")
    assert 1 <= polls <= 6, f"server-guided polling should need few queries for a 1 s task, made {polls}"


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("content_policy_violation", "failed", False),
        ("generation_timeout", "failed", True),
        ("brand_new_code", "failed", True),
    ],
)
def test_failed_event_says_whether_a_retry_may_help(
    kling_connection: Any, code: str, status: str, retryable: bool
) -> None:
    kling_connection.sim.faults.add(Fault(kind="fail_task", error_code=code))
    task_id = submit(kling_connection.sim)
    (event,) = run_trigger(KlingTaskTrigger(task_id, poll_policy=FAST))
    assert (event["status"], event["error_code"], event["retryable"]) == (status, code, retryable)
    assert code in event["message"]


@pytest.mark.parametrize("style", ["cancelled", "failed"])
def test_cancelled_in_both_styles(kling_connection: Any, style: str) -> None:
    kling_connection.sim.cancel_style = style
    kling_connection.sim.faults.add(Fault(kind="cancel_task"))
    task_id = submit(kling_connection.sim)
    (event,) = run_trigger(KlingTaskTrigger(task_id, poll_policy=FAST))
    assert event["status"] == "cancelled"
    assert event["retryable"] is False


def test_first_poll_waits_for_the_estimate_when_the_operator_passed_it(kling_connection: Any) -> None:
    """The operator just read the task at submission: polling again at once would only repeat it."""
    task_id = submit(kling_connection.sim)
    started = time.time()
    trigger = roundtrip(KlingTaskTrigger(task_id, poll_policy=FAST, started_at=started, estimated_time=1.0))
    (event,) = run_trigger(trigger)
    assert event["status"] == "completed"
    assert kling_connection.sim.count(phase="poll") == 1, "one look, just after the 1 s estimate"
    assert time.time() - started >= 1.0


def test_deadline_is_absolute(kling_connection: Any) -> None:
    kling_connection.sim.generation_seconds = 60
    task_id = submit(kling_connection.sim)
    started = time.monotonic()
    (event,) = run_trigger(KlingTaskTrigger(task_id, poll_policy=FAST, deadline=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 5
    # A trigger rebuilt after the deadline (a move to another triggerer) ends at once.
    (late,) = run_trigger(roundtrip(KlingTaskTrigger(task_id, poll_policy=FAST, deadline=time.time() - 1)))
    assert late["status"] == "timeout"


def test_bounded_run_of_transient_poll_failures_is_tolerated(
    kling_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = submit(kling_connection.sim)
    # Enough 503s to exhaust the hook's own retries once, but fewer than max_failed_polls rounds.
    kling_connection.sim.faults.add(Fault(phase="poll", kind="status", status=503, times=6))
    trigger = KlingTaskTrigger(task_id, poll_policy=FAST, max_failed_polls=3)
    _fast_retries(monkeypatch)
    (event,) = run_trigger(trigger)
    assert event["status"] == "completed"


def test_endless_poll_failures_end_in_one_error_event(kling_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    task_id = submit(kling_connection.sim)
    kling_connection.sim.faults.add(Fault(phase="poll", kind="status", status=502, rate=1.0))
    trigger = KlingTaskTrigger(task_id, poll_policy=FAST, max_failed_polls=2)
    _fast_retries(monkeypatch)
    events = run_trigger(trigger)
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["retryable"] is True


def test_unknown_task_gives_an_expired_event(kling_connection: Any) -> None:
    (event,) = run_trigger(KlingTaskTrigger("task-unified-1-missing", poll_policy=FAST))
    assert event["status"] == "expired"


def test_wrong_key_gives_a_non_retryable_error_without_the_key(
    kling_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    conn = json.loads(kling_connection.uri_json)
    conn["password"] = "sk-wrong-key-123"
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(conn))
    (event,) = run_trigger(KlingTaskTrigger("task-unified-1-x", poll_policy=FAST))
    assert event["status"] == "error" and event["retryable"] is False
    assert "sk-wrong-key-123" not in json.dumps(event)


def test_many_triggers_on_one_loop_share_one_client(kling_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    conn = json.loads(kling_connection.uri_json)
    conn["extra"]["rate_limit_rpm"] = 60000  # the default budget would space these 60 polls 0.5 s apart
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(conn))
    task_ids = [submit(kling_connection.sim) for _ in range(3)]

    async def main() -> list[list[dict[str, Any]]]:
        triggers = [KlingTaskTrigger(t, poll_policy=FAST) for t in task_ids * 20]

        async def one(trigger: KlingTaskTrigger) -> list[dict[str, Any]]:
            return [e.payload async for e in trigger.run()]

        runs = asyncio.gather(*(one(t) for t in triggers))
        await asyncio.sleep(0)
        assert clients.open_count() <= 1
        return await runs

    results = asyncio.run(main())
    assert all(len(events) == 1 and events[0]["status"] == "completed" for events in results)
    assert clients.open_count() == 0


def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the hook's backoff for this trigger (test speed only)."""
    from kling_provider.hooks import kling as hook_module
    from kling_provider.hooks.retry import RetryPolicy

    original = hook_module.KlingHook.__init__

    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retry_policy", RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02))
        original(self, *args, **kwargs)

    monkeypatch.setattr(hook_module.KlingHook, "__init__", patched)


def _record_hook_sleeps(monkeypatch: pytest.MonkeyPatch, sleep: Callable[..., Awaitable[None]]) -> None:
    """Replace the sleeps of the hook's driver, which the trigger's wait runs on, and only those
    (patching ``asyncio.sleep`` itself would also catch the loopback server's own loop)."""
    import types

    from kling_provider.hooks import kling as hook_module

    names = {name: getattr(asyncio, name) for name in dir(asyncio) if not name.startswith("_")}
    monkeypatch.setattr(hook_module, "asyncio", types.SimpleNamespace(**{**names, "sleep": sleep}))


def test_triggerer_setting_task_id_does_not_change_what_is_polled(kling_connection: Any) -> None:
    """The triggerer sets ``BaseTrigger.task_id`` to the Airflow task's id (found by the e2e run)."""
    task_id = submit(kling_connection.sim)
    trigger = roundtrip(KlingTaskTrigger(task_id, poll_policy=FAST))
    trigger.task_id = "generate"  # what the triggerer does when it binds the task instance
    (event,) = run_trigger(trigger)
    assert event["status"] == "completed" and event["task_id"] == task_id
    assert {r.task_id for r in kling_connection.sim.requests if r.phase == "poll"} == {task_id}


def test_a_long_rate_limit_wait_is_honoured_between_polls(
    kling_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 asking for 600 s (more than the hook's own retries wait) must not mean a poll every 2 s."""
    task_id = submit(kling_connection.sim)
    kling_connection.sim.faults.add(Fault(phase="poll", kind="status", status=429, retry_after=600, times=1))
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: Any) -> None:
        slept.append(delay)
        await real_sleep(0)

    _record_hook_sleeps(monkeypatch, recording_sleep)
    (event,) = run_trigger(KlingTaskTrigger(task_id, poll_policy=FAST, max_failed_polls=3))
    assert 600 in slept, "after the 429 the trigger waits as long as the server asked"
    assert event["status"] == "completed"


def test_first_query_waits_for_settle_even_when_the_task_is_done(
    kling_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event handled before the scheduler saw the deferring process exit fails the task
    (apache/airflow#72716): even a finished task is reported only after ``settle``."""
    task_id = submit(kling_connection.sim)
    kling_connection.sim.clock.advance(60)
    slept: list[tuple[float, int]] = []  # (delay, polls sent before it)
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: Any) -> None:
        slept.append((delay, kling_connection.sim.count(phase="poll")))
        await real_sleep(0)

    _record_hook_sleeps(monkeypatch, recording_sleep)
    (event,) = run_trigger(roundtrip(KlingTaskTrigger(task_id, poll_policy={**FAST, "settle": 7.5})))
    assert event["status"] == "completed"
    assert slept[0] == (7.5, 0), "the settle wait comes before the first query"
    assert kling_connection.sim.count(phase="poll") == 1


def test_the_deployment_sets_settle_and_a_policy_overrides_it(
    kling_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[kling] trigger_settle_seconds`` is the default; the plugin's fixtures set it to 0."""
    from kling_provider.testing.pytest_plugin import SETTLE_ENV_VAR
    from kling_provider.triggers.kling import configured_settle

    assert configured_settle() == 0.0, "offline tests run triggers in line: nothing to settle"
    monkeypatch.setenv(SETTLE_ENV_VAR, "12.5")
    policy = {k: v for k, v in FAST.items() if k != "settle"}
    assert KlingTaskTrigger("task-unified-1-a", poll_policy=policy)._policy().settle == 12.5
    assert KlingTaskTrigger("task-unified-1-a", poll_policy={**policy, "settle": 2})._policy().settle == 2
    monkeypatch.delenv(SETTLE_ENV_VAR)
    assert configured_settle() == 5.0, "PollPolicy.settle when the deployment says nothing"
