"""The plans without any I/O: driven by hand, step by step, the way the hook's drivers do.

What a plan decides is visible in the steps it yields; nothing here opens a socket or sleeps.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Generator
from typing import Any

import httpx
import pytest

from kling_provider.exceptions import KlingRateLimitError, KlingServerError, KlingTimeoutError
from kling_provider.hooks.plans import Send, Sleep, Step, Unreadable, call_plan, wait_plan
from kling_provider.hooks.polling import PollPolicy
from kling_provider.hooks.retry import CallKind, RetryPolicy
from kling_provider.models import Task

LOG = logging.getLogger("test.plans")
POLICY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_cap=4.0)
SEND = Send("GET", "https://api.example/v1/tasks/task-unified-1-a")


def _parse(response: httpx.Response) -> Task:
    return Task.model_validate_json(response.content)


def _answer(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers, request=httpx.Request("GET", "/"))


def _drive(plan: Generator[Step, Any, Any], answers: list[Any]) -> tuple[list[Step], Any]:
    """Answer each Send with the next of ``answers`` (Sleeps with None); return the steps and result."""
    steps: list[Step] = []
    replies = iter(answers)
    try:
        step = next(plan)
        while True:
            steps.append(step)
            step = plan.send(None if isinstance(step, Sleep) else next(replies))
    except StopIteration as stop:
        return steps, stop.value


def test_a_gave_up_error_is_a_new_error_with_the_same_fields() -> None:
    busy = _answer(429, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}, {"Retry-After": "2"})
    plan = call_plan(SEND, POLICY, CallKind.IDEMPOTENT, what="querying", parse=_parse, log=LOG)
    with pytest.raises(KlingRateLimitError) as info:
        _drive(plan, [busy, busy, busy])
    err = info.value
    assert err.message.endswith("(gave up after 3 attempts)") and err.args == (err.message,)
    assert (err.status_code, err.code, err.retry_after) == (429, "rate_limit_exceeded", 2.0)


def test_with_message_leaves_the_original_alone() -> None:
    original = KlingRateLimitError("querying failed with HTTP 429", status_code=429, code="429", retry_after=7.0)
    renamed = original.with_message("querying failed with HTTP 429 (gave up after 5 attempts)")
    assert type(renamed) is KlingRateLimitError and renamed is not original
    assert original.message == "querying failed with HTTP 429" and original.args == (original.message,)
    assert renamed.args == (renamed.message,) and str(renamed) == renamed.message
    assert (renamed.status_code, renamed.code, renamed.retry_after) == (429, "429", 7.0)
    assert pickle.loads(pickle.dumps(renamed)).message == renamed.message


def test_only_unreadable_counts_as_garbage() -> None:
    """A parse that raises anything else (a bug, a refusal) is not retried as an unreadable answer."""

    def refuses(_: httpx.Response) -> Any:
        raise ValueError("not garbage: a bug in parse")

    plan = call_plan(SEND, POLICY, CallKind.IDEMPOTENT, what="querying", parse=refuses, log=LOG)
    with pytest.raises(ValueError, match="a bug in parse"):
        _drive(plan, [_answer(200, {})])

    def garbage(_: httpx.Response) -> Any:
        raise Unreadable("no id")

    plan = call_plan(SEND, POLICY, CallKind.IDEMPOTENT, what="querying", parse=garbage, log=LOG)
    with pytest.raises(KlingServerError, match="unreadable answer"):
        _drive(plan, [_answer(200, {})] * 3)


def _task(status: str, progress: float, created: int) -> httpx.Response:
    return _answer(200, {"id": "task-unified-1-a", "status": status, "progress": progress, "created": created})


def test_wait_plan_steps_on_a_clock_it_is_given() -> None:
    """Sleeps, polls and the deadline, all on a clock the test moves: the plan never reads time."""
    now = [1_000_000.0]

    def poll() -> Generator[Step, Any, Task]:
        return call_plan(SEND, POLICY, CallKind.IDEMPOTENT, what="querying", parse=_parse, log=LOG)

    plan = wait_plan(
        poll,
        "task-unified-1-a",
        policy=PollPolicy(min_interval=2, recheck_after=1000),
        clock=lambda: now[0],
        log=LOG,
        deadline=now[0] + 100,
        started_at=now[0],
        estimate=30,
        settle=5,
    )
    steps: list[Step] = []
    step = next(plan)
    with pytest.raises(KlingTimeoutError) as info:
        while True:
            steps.append(step)
            if isinstance(step, Sleep):
                now[0] += step.seconds
                step = plan.send(None)
            else:
                step = plan.send(_task("processing", 50, int(now[0]) - 1))
    assert info.value.task_id == "task-unified-1-a"
    sleeps = [s.seconds for s in steps if isinstance(s, Sleep)]
    assert sleeps[0] == pytest.approx(31), "settle < the estimate: the first query waits for the estimate (+margin)"
    assert sum(sleeps) == pytest.approx(100), "the last wait is cut to the deadline"
    assert all(isinstance(s, Send) for s in steps[1::2]), "a wait, a poll, a wait..."
