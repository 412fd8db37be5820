"""The trigger's event: one typed definition, the same dict on the wire as the first release.

During a rolling upgrade a worker may resume from an event a triggerer of the previous release
wrote (and the other way round), so the literal events below are exactly what that release's
KlingTaskTrigger yielded, and must keep being read the same way.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from kling_provider._compat import AirflowFailException
from kling_provider.exceptions import KlingError, KlingNotFoundError, KlingTimeoutError
from kling_provider.hooks.kling import KlingHook
from kling_provider.models import Task, TaskStatus, TextToVideoRequest
from kling_provider.operators.kling import KlingTextToVideoOperator
from kling_provider.testing import Fault
from kling_provider.triggers.events import EventStatus, KlingEventError, KlingTaskEvent
from kling_provider.triggers.kling import KlingTaskTrigger

KEYS = {"status", "task_id", "message", "error_code", "retryable", "task", "observed_at", "attempt"}
TASK_ID = "task-unified-1757169743-7c2d9f"

#: A completed event exactly as the current release's trigger yields it (a rolling upgrade reads it).
RELEASED_COMPLETED: dict[str, Any] = {
    "status": "completed",
    "task_id": TASK_ID,
    "message": f"Task {TASK_ID} completed",
    "error_code": None,
    "retryable": False,
    "task": {
        "id": TASK_ID,
        "model": "kling-v3-text-to-video",
        "object": "video.generation.task",
        "created": 1757169743,
        "status": "completed",
        "progress": 100.0,
        "results": ["https://files.example.com/v.mp4"],
        "result_data": None,
        "error": None,
        "task_info": {"can_cancel": False, "estimated_time": 180.0, "video_duration": 5.0},
        "usage": {"billing_rule": "per_second", "credits_reserved": 27.0, "user_group": "default"},
        "type": "video",
    },
    "observed_at": 1757169931.25,
    "attempt": 1,
}
#: The same release's timeout event: no task, retryable.
RELEASED_TIMEOUT: dict[str, Any] = {
    "status": "timeout",
    "task_id": TASK_ID,
    "message": f"Task {TASK_ID} was still running at the deadline (2026-12-06T07:00:00+00:00); it may still "
    "complete and is billed either way.",
    "error_code": None,
    "retryable": True,
    "task": None,
    "observed_at": 1796540400.0,
    "attempt": 2,
}


@pytest.mark.parametrize("released", [RELEASED_COMPLETED, RELEASED_TIMEOUT], ids=["completed", "timeout"])
def test_an_event_of_the_current_release_reads_and_writes_back_unchanged(released: dict[str, Any]) -> None:
    event = KlingTaskEvent.from_dict(released)
    assert event.status is EventStatus(released["status"]) and event.task_id == TASK_ID
    assert event.to_dict() == released
    assert list(event.to_dict()) == list(released), "same keys, same order"


def test_the_final_task_and_its_helpers() -> None:
    task = KlingTaskEvent.from_dict(RELEASED_COMPLETED).final_task()
    assert task is not None and task.status is TaskStatus.COMPLETED and task.video_url
    assert (task.error_code, task.failure_reason) == (None, "no reason given")
    failed = Task.model_validate(
        {"id": TASK_ID, "status": "failed", "error": {"code": "content_policy_violation", "message": "refused"}}
    )
    assert (failed.error_code, failed.failure_reason) == ("content_policy_violation", "refused")
    assert KlingTaskEvent.from_dict(RELEASED_TIMEOUT).final_task() is None


def test_older_and_newer_shapes_are_read() -> None:
    """Keys left out (an early event without observed_at or error_code) take their defaults;
    keys a newer release adds are ignored."""
    minimal = KlingTaskEvent.from_dict({"status": "failed", "task_id": TASK_ID, "retryable": True, "task": None})
    assert (minimal.message, minimal.error_code, minimal.observed_at, minimal.attempt) == ("failed", None, None, None)
    newer = KlingTaskEvent.from_dict({**RELEASED_TIMEOUT, "credits_spent": 27.0})
    assert newer.to_dict() == RELEASED_TIMEOUT


def test_the_trigger_yields_the_released_shape(kling_connection: Any) -> None:
    """What the trigger yields today has exactly the released keys and reads back as itself."""
    kling_connection.sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation"))
    with KlingHook() as hook:
        task_id = hook.submit(TextToVideoRequest.build(prompt="a lighthouse at dusk", duration=3)).id
    trigger = KlingTaskTrigger(task_id, poll_policy={"min_interval": 0.05, "margin": 0.05, "settle": 0}, attempt=1)

    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]

    (payload,) = asyncio.run(collect())
    assert set(payload) == KEYS and payload["status"] == "failed" and payload["attempt"] == 1
    assert (payload["error_code"], payload["retryable"]) == ("content_policy_violation", False)
    assert KlingTaskEvent.from_dict(payload).to_dict() == payload
    assert isinstance(payload["task"], dict) and payload["task"]["id"] == task_id


MALFORMED: dict[str, tuple[Any, str]] = {
    "nothing": (None, "got NoneType"),
    "a-list": (["completed"], "got list"),
    "unknown-status": ({**RELEASED_TIMEOUT, "status": "done"}, "status must be one of completed, failed"),
    "no-status": ({k: v for k, v in RELEASED_TIMEOUT.items() if k != "status"}, "status must be one of"),
    "no-task-id": ({**RELEASED_TIMEOUT, "task_id": ""}, "task_id must be a task id"),
    "retryable-text": ({**RELEASED_TIMEOUT, "retryable": "yes"}, "retryable must be true or false"),
    "attempt-text": ({**RELEASED_TIMEOUT, "attempt": "2"}, "attempt must be a try number"),
    "observed-at-text": ({**RELEASED_TIMEOUT, "observed_at": "now"}, "observed_at must be a unix time"),
    "task-not-an-object": ({**RELEASED_COMPLETED, "task": "done"}, "task must be the task object"),
    "task-of-another-id": (
        {**RELEASED_COMPLETED, "task": {**RELEASED_COMPLETED["task"], "id": "task-unified-2-x"}},
        "task.id must be the task waited for",
    ),
    "message-not-text": ({**RELEASED_TIMEOUT, "message": 42}, "message must be text"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_event_fails_clearly_where_the_operator_receives_it(name: str) -> None:
    event, words = MALFORMED[name]
    operator = KlingTextToVideoOperator(task_id="t", prompt="a kite", deferrable=True)
    with pytest.raises(KlingEventError) as info:
        operator.execute_complete({"ti": SimpleNamespace(try_number=1)}, event)
    assert info.value.message.startswith("trigger event: ") and words in info.value.message
    assert not isinstance(info.value, AirflowFailException), "a retry re-attaches to the stored task"


@pytest.mark.parametrize(
    ("status", "retryable", "error"),
    [
        ("timeout", True, KlingTimeoutError),
        ("expired", False, KlingNotFoundError),
        ("error", True, KlingError),
        ("error", False, AirflowFailException),
    ],
)
def test_each_status_without_a_task_ends_the_try_as_before(status: str, retryable: bool, error: type) -> None:
    operator = KlingTextToVideoOperator(task_id="t", prompt="a kite", deferrable=True)
    event = {**RELEASED_TIMEOUT, "status": status, "retryable": retryable, "message": f"{status} happened"}
    with pytest.raises(error, match=f"{status} happened") as info:
        operator.execute_complete({"ti": SimpleNamespace(try_number=2)}, event)
    assert type(info.value) is error
