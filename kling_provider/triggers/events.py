"""The one event :class:`~kling_provider.triggers.kling.KlingTaskTrigger` yields, typed.

It crosses a process boundary (triggerer -> database -> worker) as a plain dict, and during a
rolling upgrade the worker may read an event written by another release of the trigger. So the
dict form is fixed: the eight keys below, as the first release wrote them. Keys a newer release
adds are ignored; a dict that is not such an event at all is refused with what is wrong with it
(after dbt Cloud's ``validate_execute_complete_event``), not read as a failed task.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from kling_provider.exceptions import KlingError

if TYPE_CHECKING:
    from kling_provider.models.responses import Task


class EventStatus(str, Enum):
    """How the wait ended. The first three are the task's own terminal states."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The deadline passed with the task still running (it may still finish, and is billed).
    TIMEOUT = "timeout"
    #: EvoLink no longer knows the task (expired or deleted).
    EXPIRED = "expired"
    #: The wait itself failed (polls kept failing, or the key was refused).
    ERROR = "error"


class KlingEventError(KlingError, ValueError):
    """What ``execute_complete`` was handed is not a Kling trigger event."""


@dataclass(frozen=True)
class KlingTaskEvent:
    """:param status: how the wait ended.
    :param task_id: the EvoLink task id waited for.
    :param message: what happened, for the task log and the error raised.
    :param error_code: EvoLink's error code when the task failed or the wait was refused.
    :param retryable: whether another try may succeed (it re-attaches or resubmits as fits).
    :param task: the final task as EvoLink sent it (JSON form), when the task ended.
    :param observed_at: unix time the trigger saw the outcome (result links expire 24 h later).
    :param attempt: the Airflow try that deferred, so that a later try can tell a stale event.
    """

    status: EventStatus
    task_id: str
    message: str
    error_code: str | None = None
    retryable: bool = False
    task: dict[str, Any] | None = None
    observed_at: float | None = None
    attempt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The serialized form: the eight keys and value types every release reads."""
        return {
            "status": self.status.value,
            "task_id": self.task_id,
            "message": self.message,
            "error_code": self.error_code,
            "retryable": self.retryable,
            "task": self.task,
            "observed_at": self.observed_at,
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, event: Any) -> KlingTaskEvent:
        """Check and read an event as the trigger (this release or another) serialized it.

        Raises :class:`KlingEventError` naming the key and the rule when it is not one.
        """
        if not isinstance(event, Mapping):
            raise KlingEventError(
                f"trigger event: expected the Kling trigger's event (a mapping), got {type(event).__name__}"
            )
        status = event.get("status")
        known = ", ".join(s.value for s in EventStatus)
        if not isinstance(status, str) or status not in {s.value for s in EventStatus}:
            raise KlingEventError(f"trigger event: status must be one of {known} (got {status!r})", param="status")
        task_id = event.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise KlingEventError(f"trigger event: task_id must be a task id (got {task_id!r})", param="task_id")
        message = event.get("message")
        if message is not None and not isinstance(message, str):
            raise KlingEventError(f"trigger event: message must be text (got {message!r})", param="message")
        return cls(
            status=EventStatus(status),
            task_id=task_id,
            message=message or status,
            error_code=_optional(event, "error_code", str, "text"),
            retryable=_flag(event),
            task=_task(event, task_id),
            observed_at=_when(event),
            attempt=_attempt(event),
        )

    def final_task(self) -> Task | None:
        """The final task, parsed (the models are imported only when there is one)."""
        if self.task is None:
            return None
        from kling_provider.models.responses import Task

        return Task.model_validate(self.task)


def _optional(event: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = event.get(key)
    if value is not None and not isinstance(value, kind):
        raise KlingEventError(f"trigger event: {key} must be {what} or null (got {value!r})", param=key)
    return value


def _flag(event: Mapping[str, Any]) -> bool:
    value = event.get("retryable", False)
    if not isinstance(value, bool):
        raise KlingEventError(f"trigger event: retryable must be true or false (got {value!r})", param="retryable")
    return value


def _task(event: Mapping[str, Any], task_id: str) -> dict[str, Any] | None:
    task = _optional(event, "task", dict, "the task object")
    if task is not None and task.get("id") != task_id:
        raise KlingEventError(
            f"trigger event: task.id must be the task waited for ({task_id!r}, got {task.get('id')!r})", param="task"
        )
    return task


def _when(event: Mapping[str, Any]) -> float | None:
    value = event.get("observed_at")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KlingEventError(
            f"trigger event: observed_at must be a unix time or null (got {value!r})", param="observed_at"
        )
    return float(value)


def _attempt(event: Mapping[str, Any]) -> int | None:
    value = event.get("attempt")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise KlingEventError(f"trigger event: attempt must be a try number or null (got {value!r})", param="attempt")
    return value
