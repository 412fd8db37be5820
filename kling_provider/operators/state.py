"""Remember which EvoLink task an Airflow task instance paid for, across retries.

XCom is cleared at the start of every try, so it cannot carry the task id to a retry. Airflow
3.3's ``task_state_store`` can (AIP-103); on Airflow 3.0-3.2 an Airflow Variable named after
the task instance does the same job (decision: Variables are the only store every 3.x worker
can write through the Task SDK; the entry is deleted once the video is saved).

No store can be atomic with a remote create (``ResumableJobMixin`` says the same), so the
create call is bracketed: a :class:`PendingSubmit` is stored just before it and replaced by the
:class:`RemoteTask` once it returns. A later try that finds the bracket still open knows an earlier
try stopped in between (killed, or the id could not be stored): a task may exist and be billed,
so it fails for good once, saying what to look for; a try after that (someone cleared the task,
having looked) submits anew.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from airflow.sdk import Variable

STATE_KEY = "kling_task"


@dataclass(frozen=True)
class RemoteTask:
    """What a later try needs to re-attach: the id, when it was submitted, and (for the sidecar
    of the saved video) the fingerprint of the request it was made from."""

    task_id: str
    submitted_at: float
    model: str | None = None
    fingerprint: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> RemoteTask | None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, dict) or not value.get("task_id"):
            return None
        return cls(
            task_id=str(value["task_id"]),
            submitted_at=float(value.get("submitted_at") or 0.0),
            model=value.get("model"),
            fingerprint=value.get("fingerprint"),
        )


@dataclass(frozen=True)
class PendingSubmit:
    """A create call under way (or cut short): when it was sent, and what to look for.

    ``reported``: a try has already failed for good over it; the next try was started by someone
    who read that message, so it submits anew. Stored under its own key inside the record, so a
    release without this class reads no ``task_id`` and submits anew (its old behaviour)."""

    sent_at: float
    model: str
    summary: str
    reported: bool = False

    @classmethod
    def from_json(cls, value: Any) -> PendingSubmit | None:
        pending = value.get("pending_submit") if isinstance(value, dict) else None
        if not isinstance(pending, dict):
            return None
        try:
            return cls(
                sent_at=float(pending.get("sent_at") or 0.0),
                model=str(pending.get("model") or "?"),
                summary=str(pending.get("summary") or "?"),
                reported=bool(pending.get("reported")),
            )
        except (TypeError, ValueError):
            return None


Record = RemoteTask | PendingSubmit


def _to_json(record: Record) -> dict[str, Any]:
    return {"pending_submit": asdict(record)} if isinstance(record, PendingSubmit) else asdict(record)


def _from_json(value: Any) -> Record | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return PendingSubmit.from_json(value) or RemoteTask.from_json(value)


class TaskStateStore(Protocol):
    def load(self) -> Record | None: ...

    def save(self, record: Record) -> None: ...

    def clear(self) -> None: ...


class _AirflowTaskStateStore:
    """Airflow >= 3.3: ``context["task_state_store"]``, scoped to the task instance."""

    def __init__(self, accessor: Any) -> None:
        self._accessor = accessor

    def load(self) -> Record | None:
        return _from_json(self._accessor.get(STATE_KEY))

    def save(self, record: Record) -> None:
        self._accessor.set(STATE_KEY, _to_json(record))

    def clear(self) -> None:
        delete = getattr(self._accessor, "delete", None)
        if delete is not None:
            delete(STATE_KEY)


class _VariableTaskStateStore:
    """Airflow < 3.3: one Variable per task instance (dag, run, task, map index)."""

    def __init__(self, context: Any) -> None:
        ti = context["ti"]
        scope = f"{ti.dag_id}|{context['run_id']}|{ti.task_id}|{getattr(ti, 'map_index', -1)}"
        self.key = f"kling_provider.task_state.{hashlib.sha256(scope.encode()).hexdigest()[:32]}"

    def load(self) -> Record | None:
        return _from_json(Variable.get(self.key, default=None))

    def save(self, record: Record) -> None:
        Variable.set(self.key, json.dumps(_to_json(record)), description="airflow-provider-kling: task being waited on")

    def clear(self) -> None:
        delete = getattr(Variable, "delete", None)
        if delete is not None:
            try:
                delete(self.key)
            except Exception:
                return


def state_store_for(context: Any) -> TaskStateStore:
    accessor = context.get("task_state_store") if hasattr(context, "get") else None
    if accessor is not None:
        return _AirflowTaskStateStore(accessor)
    return _VariableTaskStateStore(context)
