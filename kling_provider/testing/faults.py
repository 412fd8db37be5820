"""Declarative fault injection: which requests or tasks go wrong, and how.

A :class:`Fault` describes one kind of trouble; :class:`FaultSet` (``sim.faults``) decides per
request which fault, if any, applies. Request faults (``status``, ``slow``, ``drop``,
``malformed``, ``lost_submit_response``) shape one HTTP answer; task faults (``fail_task``,
``cancel_task``, ``bad_video``) are attached to the next task(s) created and play out as the task
runs (``bad_video``: when its result is downloaded).

Examples::

    sim.faults.add(Fault(phase="poll", kind="status", status=503, times=2))
    sim.faults.add(Fault(phase="submit", kind="status", status=429, retry_after=7))
    sim.faults.add(Fault(phase="submit", kind="lost_submit_response", lost_as="timeout"))
    sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation", at_progress=40))
    sim.faults.add(Fault(phase="poll", kind="drop", rate=0.05))  # 5 % of polls, seeded
    sim.faults.add(Fault(kind="bad_video", bad_video="missing_audio"))  # completes, but silent
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import httpx

from kling_provider.testing.state import Phase

__all__ = [
    "BadVideo",
    "Fault",
    "FaultKind",
    "FaultPhase",
    "FaultSet",
    "SimulatedConnectionDrop",
    "SimulatedReadTimeout",
]

FaultPhase = Literal["submit", "poll", "upload", "quota", "download", "file", "other", "any"]
FaultKind = Literal[
    "status", "slow", "drop", "malformed", "lost_submit_response", "fail_task", "cancel_task", "bad_video"
]
#: How a ``bad_video`` task's result differs from its request (kling_provider.testing.videos).
BadVideo = Literal["wrong_duration", "wrong_resolution", "missing_audio", "unexpected_audio", "truncated"]
MalformedBody = Literal["html", "empty", "invalid_json"]
ErrorShape = Literal["string", "integer"]

REQUEST_KINDS = frozenset({"status", "slow", "drop", "malformed", "lost_submit_response"})
TASK_KINDS = frozenset({"fail_task", "cancel_task", "bad_video"})


class SimulatedConnectionDrop(httpx.RemoteProtocolError):
    """In-process stand-in for a connection the server dropped mid-answer.

    An ``httpx.RemoteProtocolError`` (so an ``httpx.TransportError``), which is what a real
    client sees when the simulator drops the connection over loopback HTTP.
    """


class SimulatedReadTimeout(httpx.ReadTimeout):
    """In-process stand-in for an answer that came later than the client's read timeout.

    Raised at once (the in-process transport cannot enforce client timeouts), after the
    request's side effects happened, just as a real late answer would have had them.
    """


@dataclass
class Fault:
    """One kind of trouble, for the requests (or tasks) it selects.

    Selection: ``phase`` ("any" for all), optional ``task_id`` (polls/downloads of one task),
    skip the first ``after`` matching requests, then hit each with probability ``rate`` (None =
    always), at most ``times`` hits (None = once, or unlimited when ``rate`` is set; use
    ``rate=1.0`` for "every matching request").

    Request kinds:

    * ``status``: answer ``status`` (default 503) with the vendor's error body, in ``error_shape``
      (default: the simulator's), with ``Retry-After: retry_after`` if set and the hint
      "retry after ``retry_hint`` seconds" in the body if set. On the file API the body is its
      ``{"success": false, "code": ..., "msg": message}`` envelope, whose ``code`` is ``code`` when
      set: ``status=200, code=400`` is a refusal sent with HTTP 200.
    * ``slow``: answer ``delay`` seconds late. Over HTTP it really waits (without blocking);
      in-process it raises :class:`SimulatedReadTimeout` when ``delay`` reaches the client's read
      timeout, else waits.
    * ``drop``: over HTTP, send the status line and a Content-Length, part of the body, then
      close the connection; in-process raise :class:`SimulatedConnectionDrop`.
    * ``malformed``: a body the API never documents: ``malformed="html"`` (a proxy's error page,
      default status 502), ``"empty"`` or ``"invalid_json"`` (default status 200).
    * ``lost_submit_response``: the task IS created, then the answer is lost as a ``drop`` or,
      with ``lost_as="timeout"``, as a ``slow`` answer.

    ``processed`` says whether the simulator acts on the request (creates the task, stores the
    file) before the fault hits. Default: True for ``slow``, ``lost_submit_response`` and a
    ``drop`` of a GET (so a dropped download breaks mid-video), False for the rest. A ``slow``
    fault on an unprocessed request ends in a 504 from the "gateway".

    Task kinds (attached to the next task(s) created; ``phase`` and ``task_id`` are ignored):

    * ``fail_task``: the task fails with ``error_code`` (and ``message``) when it would
      complete, or when it reaches ``at_progress`` percent (0 = as soon as it starts).
    * ``cancel_task``: the task is cancelled when processing starts, or at ``at_progress``;
      it then reports ``cancelled``, or ``failed`` with ``request_cancelled`` when
      ``cancel_as="failed"`` (default: the simulator's ``cancel_style``).
    * ``bad_video``: the task completes, but its video is not what was asked: ``bad_video`` is
      ``"wrong_duration"`` (half as long), ``"wrong_resolution"`` (2/3 the size),
      ``"missing_audio"`` (silent although ``sound`` was on), ``"unexpected_audio"`` (an audio
      track although it was off) or ``"truncated"`` (the last third cut off, served with a
      matching length).
    """

    phase: FaultPhase = "any"
    kind: FaultKind = "status"
    status: int | None = None
    code: str | int | None = None
    message: str | None = None
    retry_after: float | None = None
    retry_hint: float | None = None
    error_shape: ErrorShape | None = None
    malformed: MalformedBody = "html"
    delay: float = 30.0
    lost_as: Literal["drop", "timeout"] = "drop"
    processed: bool | None = None
    times: int | None = None
    after: int = 0
    rate: float | None = None
    task_id: str | None = None
    error_code: str = "generation_failed_no_content"
    at_progress: int | None = None
    cancel_as: Literal["cancelled", "failed"] | None = None
    bad_video: BadVideo = "wrong_duration"
    #: Requests (or tasks) this fault has hit / matching requests it has seen so far.
    hits: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {get_args(FaultKind)}")
        if self.phase not in get_args(FaultPhase):
            raise ValueError(f"unknown fault phase {self.phase!r}; expected one of {get_args(FaultPhase)}")
        if self.malformed not in get_args(MalformedBody):
            raise ValueError(f"unknown malformed body {self.malformed!r}")
        if self.bad_video not in get_args(BadVideo):
            raise ValueError(f"unknown bad_video {self.bad_video!r}; expected one of {get_args(BadVideo)}")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.kind == "lost_submit_response":
            if self.phase not in ("submit", "any"):
                raise ValueError("lost_submit_response only applies to the submit phase")
            self.phase = "submit"
        if self.at_progress is not None and not 0 <= self.at_progress <= 100:
            raise ValueError("at_progress must be between 0 and 100")

    @property
    def limit(self) -> int | None:
        """Maximum number of hits (None = unlimited)."""
        if self.times is not None:
            return self.times
        return None if self.rate is not None else 1

    @property
    def exhausted(self) -> bool:
        limit = self.limit
        return limit is not None and self.hits >= limit

    def processes(self, method: str) -> bool:
        """Whether a ``method`` request hit by this fault is acted on before the fault hits.

        GETs change nothing, so a late or broken answer to one carries the real (partial) body.
        """
        if self.processed is not None:
            return self.processed
        if self.kind in ("slow", "lost_submit_response"):
            return True
        return self.kind == "drop" and method in ("GET", "HEAD")

    @property
    def effective_status(self) -> int:
        """Status for a ``status`` / ``malformed`` answer (defaults per kind)."""
        if self.status is not None:
            return self.status
        if self.kind == "malformed":
            return 502 if self.malformed == "html" else 200
        return 503

    @property
    def delivery(self) -> Literal["status", "slow", "drop", "malformed"]:
        """How the answer is spoiled (``lost_submit_response`` maps to drop or slow)."""
        if self.kind == "lost_submit_response":
            return "drop" if self.lost_as == "drop" else "slow"
        if self.kind == "status":
            return "status"
        if self.kind == "slow":
            return "slow"
        if self.kind == "drop":
            return "drop"
        if self.kind == "malformed":
            return "malformed"
        raise ValueError(f"{self.kind} is a task fault")


class FaultSet:
    """The faults of one simulator, matched in the order they were added (first match wins)."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, fault: Fault | None = None, /, **kwargs: object) -> Fault:
        """Add ``fault`` (or ``Fault(**kwargs)``) and return it, to inspect ``hits`` later."""
        if fault is None:
            fault = Fault(**kwargs)  # type: ignore[arg-type]
        elif kwargs:
            raise TypeError("pass a Fault or keyword arguments, not both")
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for f in self._faults if not f.exhausted)

    def take(self, phase: Phase, task_id: str | None = None) -> Fault | None:
        """The request fault that hits a ``phase`` request now, counting the hit."""
        with self._lock:
            for fault in self._faults:
                if fault.kind not in REQUEST_KINDS or fault.exhausted:
                    continue
                if fault.phase not in ("any", phase):
                    continue
                if fault.task_id is not None and fault.task_id != task_id:
                    continue
                if self._hit(fault):
                    return fault
        return None

    def take_task_faults(self) -> list[Fault]:
        """Task faults that apply to a task being created now (at most one of each kind)."""
        found: dict[str, Fault] = {}
        with self._lock:
            for fault in self._faults:
                if fault.kind in TASK_KINDS and not fault.exhausted and fault.kind not in found and self._hit(fault):
                    found[fault.kind] = fault
        return list(found.values())

    def _hit(self, fault: Fault) -> bool:
        fault.seen += 1
        if fault.seen <= fault.after:
            return False
        if fault.rate is not None and self._rng.random() >= fault.rate:
            return False
        fault.hits += 1
        return True
