"""KlingTaskTrigger: waits in the triggerer for one EvoLink task to finish.

Serialises only ids and settings (the key stays in the connection), keeps one HTTP client for
the whole wait, sleeps as the server's estimate and progress suggest, and yields exactly one
event (a :class:`~kling_provider.triggers.events.KlingTaskEvent`, as a dict). Its deadline is an
absolute time, so it still holds after the trigger moves to another triggerer. ``cleanup()``
never touches the remote task: it runs on every triggerer restart too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kling_provider._compat import conf
from kling_provider.exceptions import (
    KlingError,
    KlingNotFoundError,
    KlingRateLimitError,
    KlingServerError,
    KlingTimeoutError,
    is_retryable_task_code,
)
from kling_provider.hooks.kling import KlingHook
from kling_provider.hooks.plans import iso
from kling_provider.hooks.polling import PollPolicy
from kling_provider.hooks.retry import RetryPolicy
from kling_provider.models.responses import Task, TaskStatus
from kling_provider.triggers.events import EventStatus, KlingTaskEvent


def configured_settle() -> float:
    """``[kling] trigger_settle_seconds``, the deployment's :attr:`PollPolicy.settle` (read in the
    triggerer): a heavily loaded scheduler may want more; ``dag.test()``, which runs triggers in
    line with no scheduler to race, needs none (the pytest plugin sets 0)."""
    return max(0.0, conf.getfloat("kling", "trigger_settle_seconds", fallback=PollPolicy.settle))


class KlingTaskTrigger(BaseTrigger):
    """Wait for EvoLink task ``evolink_task_id`` to reach completed, failed or cancelled.

    :param evolink_task_id: the EvoLink task id (``task-unified-...``). Not ``task_id``: the
        triggerer sets ``BaseTrigger.task_id`` to the Airflow task's id.
    :param kling_conn_id: connection to query with; only its id is stored.
    :param deadline: unix time after which the wait ends with a ``timeout`` event.
    :param started_at: unix time the task was submitted; anchors progress-based predictions.
    :param estimated_time: the estimate the server gave at creation, in seconds.
    :param poll_policy: :class:`PollPolicy` fields to override, as a plain dict.
    :param retry_policy: :class:`RetryPolicy` fields to override for each poll, as a plain dict.
    :param max_failed_polls: consecutive polls (each already retried) that may fail before giving up.
    :param attempt: the Airflow try that deferred; echoed in the event, so that a retry handed an
        earlier try's event (Airflow 3.0 to 3.1.2) can tell.

    Settings it does not know are ignored (and named in the log): during a rolling upgrade a
    worker with a newer provider may defer to a triggerer that still runs this one, and a trigger
    that cannot be rebuilt fails its task. For the same reason :meth:`serialize` leaves settings
    added after the first release out while they have their default.
    """

    def __init__(
        self,
        evolink_task_id: str,
        kling_conn_id: str = KlingHook.default_conn_name,
        *,
        deadline: float | None = None,
        started_at: float | None = None,
        estimated_time: float | None = None,
        poll_policy: dict[str, float] | None = None,
        max_failed_polls: int = 5,
        retry_policy: dict[str, float] | None = None,
        attempt: int | None = None,
        **newer_settings: Any,
    ) -> None:
        super().__init__()
        self.evolink_task_id = evolink_task_id
        self.kling_conn_id = kling_conn_id
        self.deadline = deadline
        self.started_at = started_at
        self.estimated_time = estimated_time
        self.poll_policy = dict(poll_policy or {})
        self.max_failed_polls = max_failed_polls
        self.retry_policy = dict(retry_policy or {})
        self.attempt = attempt
        #: Names of settings from a newer provider release, ignored here.
        self.ignored_settings = sorted(newer_settings)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "evolink_task_id": self.evolink_task_id,
                "kling_conn_id": self.kling_conn_id,
                "deadline": self.deadline,
                "started_at": self.started_at,
                "estimated_time": self.estimated_time,
                "poll_policy": self.poll_policy,
                "max_failed_polls": self.max_failed_polls,
                # Added after the first release: only when set (see the class docstring).
                **({"retry_policy": self.retry_policy} if self.retry_policy else {}),
                "attempt": self.attempt,
            },
        )

    def _policy(self) -> PollPolicy:
        known = {f.name for f in fields(PollPolicy)}
        settings = {k: float(v) for k, v in self.poll_policy.items() if k in known}
        settings.setdefault("settle", configured_settle())
        return PollPolicy(**settings)

    def _retry_policy(self) -> RetryPolicy:
        known = {f.name for f in fields(RetryPolicy)}
        settings: dict[str, Any] = {k: float(v) for k, v in self.retry_policy.items() if k in known}
        if "max_attempts" in settings:
            settings["max_attempts"] = max(1, int(settings["max_attempts"]))
        return RetryPolicy(**settings)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.ignored_settings:
            self.log.warning(
                "Ignoring settings this provider version does not know (from a newer one?): %s",
                ", ".join(self.ignored_settings),
            )
        hook = KlingHook(self.kling_conn_id, poll_policy=self._policy(), retry_policy=self._retry_policy())
        try:
            event = await self._wait(hook)
        finally:
            await hook.aclose()
        yield TriggerEvent(event)

    async def _wait(self, hook: KlingHook) -> dict[str, Any]:
        """The hook's wait plan (:func:`.plans.wait_plan`, shared with the worker's wait); its
        outcome, or the error that ended it, as this trigger's one event."""
        try:
            task = await hook.await_task(
                self.evolink_task_id,
                deadline=self.deadline,
                started_at=self.started_at,
                estimated_time=self.estimated_time,
                max_failed_polls=self.max_failed_polls,
                log=self.log,
            )
        except KlingTimeoutError:
            deadline = f" ({iso(self.deadline)})" if self.deadline is not None else ""
            return self._event(
                EventStatus.TIMEOUT,
                f"Task {self.evolink_task_id} was still running at the deadline{deadline}; it may still complete "
                "and is billed either way.",
                retryable=True,
            )
        except KlingNotFoundError as err:
            return self._event(
                EventStatus.EXPIRED,
                f"Task {self.evolink_task_id} is no longer known to EvoLink (expired or deleted): {err.message}",
                code="resource_not_found",
            )
        except (KlingServerError, KlingRateLimitError) as err:
            failed = max(1, self.max_failed_polls)
            return self._event(
                EventStatus.ERROR,
                f"Could not poll task {self.evolink_task_id} {failed} times in a row: {err.message}. "
                "The task may still be running; a retry re-attaches to it.",
                retryable=True,
            )
        except KlingError as err:  # authentication, permission, configuration
            return self._event(EventStatus.ERROR, err.message, code=err.code, retryable=False)
        return self._terminal_event(task)

    def _terminal_event(self, task: Task) -> dict[str, Any]:
        if task.status is TaskStatus.COMPLETED:
            return self._event(EventStatus.COMPLETED, f"Task {task.id} completed", task=task)
        code, reason = task.error_code, task.failure_reason
        if task.is_cancelled:
            return self._event(EventStatus.CANCELLED, f"Task {task.id} was cancelled: {reason}", task=task, code=code)
        return self._event(
            EventStatus.FAILED,
            f"Task {task.id} failed ({code or 'no code'}): {reason}",
            task=task,
            code=code,
            retryable=is_retryable_task_code(code),
        )

    def _event(
        self,
        status: EventStatus,
        message: str,
        *,
        task: Task | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> dict[str, Any]:
        """The event's serialized form (:meth:`.KlingTaskEvent.to_dict`): what the triggerer stores."""
        return KlingTaskEvent(
            status=status,
            task_id=self.evolink_task_id,
            message=message,
            error_code=code,
            retryable=retryable,
            task=task.model_dump(mode="json") if task is not None else None,
            observed_at=time.time(),
            attempt=self.attempt,
        ).to_dict()

    async def on_kill(self) -> None:
        """A user killed the Airflow task. EvoLink documents no cancel endpoint, so say so."""
        self.log.warning(
            "EvoLink task %s keeps running (and is billed): the API documents no way to cancel it.",
            self.evolink_task_id,
        )
