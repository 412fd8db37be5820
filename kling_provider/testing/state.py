"""What the simulated vendor remembers: tasks, uploaded files, the request log, limits.

Task status is not stored but computed from the clock on every look (:meth:`SimTask.view`),
so jumping the clock forward is all it takes to move a task along, and the same answer comes
back whether the task is asked about through the in-process transport or over loopback HTTP.
One lock guards everything: the app may run on a server thread while a test reads from its own.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from kling_provider.testing.validation import GenerationSpec

__all__ = [
    "Phase",
    "RequestRecord",
    "SimState",
    "SimTask",
    "SlidingWindowLimiter",
    "StoredFile",
    "TaskStatus",
    "TaskView",
]

TaskStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
#: Which part of the API a request belongs to; faults select requests by it.
Phase = Literal["submit", "poll", "upload", "quota", "download", "file", "other"]


@dataclass(frozen=True)
class TaskView:
    """A task as a query at one instant sees it."""

    status: TaskStatus
    progress: int
    #: ``{"code", "message", "type": "task_error"}`` for a failed task.
    error: dict[str, str] | None = None
    #: Simulated time the task reached its terminal status (None while running).
    finished_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


@dataclass
class SimTask:
    """One generation task; its status follows from the clock and the outcome planned for it."""

    id: str
    model: str
    owner: str
    created: float
    body: dict[str, Any]
    spec: GenerationSpec
    width: int
    height: int
    #: What ``task_info.estimated_time`` reports (seconds, whole task).
    estimated_seconds: float
    #: How long the task really takes (the estimate with jitter applied).
    actual_seconds: float
    #: Time spent ``pending`` before ``processing``.
    pending_seconds: float
    element_id: str | None = None
    #: Planned failure: error code, message, and when (None = when it would complete).
    fail_code: str | None = None
    fail_message: str | None = None
    fail_at: float | None = None
    #: Planned cancellation time, and how it shows (``cancelled``, or ``failed`` + request_cancelled).
    cancel_at: float | None = None
    cancel_as: Literal["cancelled", "failed"] = "cancelled"
    #: How the result video will differ from the request (a ``bad_video`` fault), or None.
    bad_video: str | None = None

    @property
    def starts_at(self) -> float:
        return self.created + self.pending_seconds

    @property
    def ends_at(self) -> float:
        """When the task completes, unless a failure or cancellation comes first."""
        return self.created + self.actual_seconds

    def time_at_progress(self, progress: float) -> float:
        """Simulated time at which processing reaches ``progress`` percent."""
        return self.starts_at + (self.ends_at - self.starts_at) * max(0.0, min(100.0, progress)) / 100

    def _progress_at(self, when: float) -> int:
        if when < self.starts_at:
            return 0
        span = self.ends_at - self.starts_at
        fraction = (when - self.starts_at) / span if span > 0 else 1.0
        # The small bias absorbs float error at unix-time magnitudes (time_at_progress round trips).
        return max(1, min(99, int(100 * fraction + 1e-3)))

    def _progress_when_ended(self, when: float) -> int:
        return 0 if when <= self.starts_at else self._progress_at(when)

    def view(self, now: float) -> TaskView:
        """The status, progress and error a query at ``now`` sees."""
        # Candidate endings, earliest first; on a tie a failure or cancel beats completion.
        endings: list[tuple[float, int, TaskView]] = []
        if self.fail_code is not None:
            at = self.ends_at if self.fail_at is None else self.fail_at
            error = {"code": self.fail_code, "message": self.fail_message or self.fail_code, "type": "task_error"}
            endings.append((at, 0, TaskView("failed", self._progress_when_ended(at), error, at)))
        if self.cancel_at is not None:
            at = self.cancel_at
            if self.cancel_as == "failed":
                error = {"code": "request_cancelled", "message": "The task was cancelled", "type": "task_error"}
                endings.append((at, 0, TaskView("failed", self._progress_when_ended(at), error, at)))
            else:
                endings.append((at, 0, TaskView("cancelled", self._progress_when_ended(at), None, at)))
        endings.append((self.ends_at, 1, TaskView("completed", 100, None, self.ends_at)))
        at, _, ending = min(endings, key=lambda item: (item[0], item[1]))
        if now >= at:
            return ending
        if now < self.starts_at:
            return TaskView("pending", 0)
        return TaskView("processing", self._progress_at(now))


@dataclass
class StoredFile:
    """An image uploaded through the file API."""

    file_id: str
    file_name: str
    original_name: str
    upload_path: str
    mime_type: str
    data: bytes = field(repr=False)
    width: int | None
    height: int | None
    uploaded_at: float
    expires_at: float
    owner: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class RequestRecord:
    """One request the simulator received. Never holds the API key, only whether it was valid."""

    time: float
    method: str
    path: str
    phase: Phase
    query: str = ""
    #: Status answered; None when no complete answer went out (dropped, timed out).
    status: int | None = None
    #: The parsed JSON body (uploaded base64 data replaced by its length), or form fields.
    json: Any = None
    task_id: str | None = None
    #: An ``Authorization: Bearer`` header was sent / carried an accepted key.
    key_present: bool = False
    authorized: bool = False
    #: Kind of the injected fault that shaped the answer, if any.
    fault: str | None = None


class SlidingWindowLimiter:
    """``limit`` admitted requests per key in any ``window`` seconds; O(1) amortised per call.

    Only admitted requests count, so a client that backs off gets through again.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.window = window
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def acquire(self, key: str, now: float) -> float | None:
        """Admit a request (None) or say how many seconds until one would be admitted."""
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.0, hits[0] + self.window - now)
            hits.append(now)
            return None


class SimState:
    """Tasks, files, request log and credit balance, behind one lock."""

    def __init__(self, credits: float | None = None) -> None:
        self.lock = threading.RLock()
        self.tasks: dict[str, SimTask] = {}
        self.files: dict[str, StoredFile] = {}
        #: Hosts (``host:port``) uploads were answered on: a URL there names one of our files,
        #: even one that has gone.
        self.file_hosts: set[str] = set()
        self.elements: dict[str, str] = {}
        self._log: list[RequestRecord] = []
        #: Remaining credits; None = unlimited.
        self.credits = credits
        self.credits_spent = 0.0

    # -- tasks ------------------------------------------------------------------------------

    def add_task(self, task: SimTask) -> None:
        with self.lock:
            self.tasks[task.id] = task

    def task(self, task_id: str) -> SimTask | None:
        with self.lock:
            return self.tasks.get(task_id)

    def charge(self, amount: float) -> bool:
        """Reserve ``amount`` credits; False (and nothing charged) if the balance is too low."""
        with self.lock:
            if self.credits is not None:
                if amount > self.credits + 1e-9:
                    return False
                self.credits = round(self.credits - amount, 6)
            self.credits_spent = round(self.credits_spent + amount, 6)
            return True

    # -- files ------------------------------------------------------------------------------

    def add_file(self, stored: StoredFile, host: str) -> None:
        """Keep an uploaded file, answered on ``host``."""
        with self.lock:
            self.files[stored.file_id] = stored
            self.file_hosts.add(host)

    def file(self, file_id: str) -> StoredFile | None:
        with self.lock:
            return self.files.get(file_id)

    def live_files(self, now: float, owner: str | None = None) -> int:
        with self.lock:
            return sum(1 for f in self.files.values() if f.expires_at > now and owner in (None, f.owner))

    # -- request log ------------------------------------------------------------------------

    def log(self, record: RequestRecord) -> None:
        with self.lock:
            self._log.append(record)

    def records(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._log)

    def count(self, predicate: Callable[[RequestRecord], bool]) -> int:
        with self.lock:
            return sum(1 for r in self._log if predicate(r))

    def __iter__(self) -> Iterator[SimTask]:
        with self.lock:
            return iter(list(self.tasks.values()))
