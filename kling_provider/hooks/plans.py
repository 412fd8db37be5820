"""Every conversation with EvoLink as a plan: a generator that decides and never does I/O.

A plan yields steps (:class:`Send` a request, :class:`Sleep`, :class:`Fetch` a video into a
file) and is sent back what happened (an ``httpx.Response``, an ``httpx.TransportError``...).
The hook's sync and async drivers only perform the steps, so the retry rules, the polling loop
and the download's retries exist once, for the worker and the triggerer alike. Plans read the
time only through the ``clock`` they are given, so tests move time without sleeping.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import httpx

from kling_provider.exceptions import (
    KlingError,
    KlingLinkExpiredError,
    KlingRateLimitError,
    KlingServerError,
    KlingTimeoutError,
)
from kling_provider.hooks.polling import PollPolicy
from kling_provider.hooks.retry import (
    Accept,
    CallKind,
    Decision,
    Fail,
    Retry,
    RetryPolicy,
    Unknown,
    decide_on_error,
    decide_on_response,
)
from kling_provider.models.responses import Task

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

T = TypeVar("T")

#: How often, at most, a long wait says how it is going (from polls it made anyway).
HEARTBEAT_SECONDS = 60.0


@dataclass(frozen=True)
class Send:
    """Send one request; the answer (body read) or the ``httpx.TransportError`` comes back."""

    method: str
    url: str
    json: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    authenticated: bool = True


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Fetch:
    """Stream ``url`` (without the API key) into ``target``, checked and atomic. What comes back:
    the :class:`SavedVideo`, an answer other than 200 (body read), an ``httpx.TransportError``,
    or the ``KlingServerError`` of a body that was short or not an MP4."""

    url: str
    target: Any


Step = Send | Sleep | Fetch


@dataclass(frozen=True)
class SavedVideo:
    """Where a downloaded video now lives, and how big it is."""

    uri: str
    size: int


class Unreadable(ValueError):
    """A 2xx answer whose body is not what the API documents. The only thing a ``parse``
    function may raise: anything else it raised would not be garbage but a bug."""


@dataclass(frozen=True)
class _Parsed(Generic[T]):
    value: T


# -- one call -------------------------------------------------------------------------------------


def call_plan(
    send: Send,
    policy: RetryPolicy,
    kind: CallKind,
    *,
    what: str,
    parse: Callable[[httpx.Response], T],
    log: Any,
    on_unknown: Callable[[str], KlingError] | None = None,
    conn_id: str | None = None,
) -> Generator[Step, Any, T]:
    """Send, decide, maybe sleep and send again: the whole retry policy for one API call.

    ``conn_id`` names the connection in the advice of key and account errors."""
    attempt = 0
    while True:
        attempt += 1
        outcome = yield send
        verdict = _judge(kind, outcome, attempt, policy, what, parse, conn_id)
        match verdict:
            case _Parsed(value=value):
                return value
            case Unknown(reason=reason):
                if on_unknown is None:  # pragma: no cover - only submissions are ambiguous
                    raise KlingServerError(f"{what}: {reason}")
                raise on_unknown(reason)
            case Fail(error=error):
                raise error
            case Retry(delay=delay, reason=reason, error=error):
                if attempt >= policy.max_attempts:
                    raise _gave_up(error, attempt)
                log.warning(
                    "%s: %s; retrying in %.1f s (attempt %d of %d)", what, reason, delay, attempt, policy.max_attempts
                )
                yield Sleep(delay)
            case _:
                assert_never(verdict)


def _judge(
    kind: CallKind,
    outcome: httpx.Response | httpx.TransportError,
    attempt: int,
    policy: RetryPolicy,
    what: str,
    parse: Callable[[httpx.Response], T],
    conn_id: str | None = None,
) -> _Parsed[T] | Retry | Fail | Unknown:
    """The retry rules' decision, with an accepted answer parsed (or found unreadable)."""
    if isinstance(outcome, httpx.TransportError):
        return decide_on_error(kind, outcome, attempt, policy)
    decision = decide_on_response(kind, outcome, attempt, policy, what=what, conn_id=conn_id)
    match decision:
        case Accept():
            try:
                return _Parsed(parse(outcome))
            except Unreadable as err:
                if kind is CallKind.SUBMIT:
                    return Unknown(f"the answer could not be read ({short(err)})")
                return Retry(
                    policy.backoff(attempt),
                    "unreadable answer",
                    KlingServerError(f"{what}: EvoLink sent an unreadable answer ({short(err)})"),
                )
        case Retry() | Fail() | Unknown():
            return decision
        case _:
            assert_never(decision)


def _gave_up(error: KlingError, attempts: int) -> KlingError:
    # The error itself (class, status_code, code, retry_after) with the count: callers branch on them.
    return error.with_message(f"{error.message} (gave up after {attempts} attempts)")


# -- waiting for a task ---------------------------------------------------------------------------


def wait_plan(
    poll: Callable[[], Generator[Step, Any, Task]],
    task_id: str,
    *,
    policy: PollPolicy,
    clock: Callable[[], float],
    log: Any,
    deadline: float | None = None,
    started_at: float | None = None,
    estimate: float | None = None,
    settle: float = 0.0,
    max_failed_polls: int = 3,
    on_poll: Callable[[Task], None] | None = None,
) -> Generator[Step, Any, Task]:
    """Poll task ``task_id`` (each poll the plan ``poll()`` makes) until it is completed, failed
    or cancelled, and return it.

    Waits as :class:`PollPolicy` says, from the server's estimate and progress. The first query
    waits ``settle`` (the triggerer's race, see :attr:`PollPolicy.settle`), and, when the caller
    read the task at submission (``started_at`` and ``estimate`` given), for the estimate. A poll
    whose own retries are spent (``KlingServerError``, ``KlingRateLimitError``) is tolerated
    ``max_failed_polls - 1`` times in a row, then raised; any other error is raised at once.
    ``deadline`` (unix time, on ``clock``) raises :class:`KlingTimeoutError`; the task itself
    keeps running (and stays paid for). At most once a :data:`HEARTBEAT_SECONDS`, ``log`` gets an
    INFO line built from the latest poll: no request is made for it.
    """
    delay = settle
    if started_at is not None and estimate:
        # The caller read the task when it created it (pending, with the server's estimate):
        # a query now would say the same, so the first one waits for the estimate.
        delay = max(delay, policy.first_delay(clock() - started_at, estimate))
    if deadline is not None:
        delay = min(delay, max(0.0, deadline - clock()))
    if delay > 0:
        yield Sleep(delay)
    failures = 0
    heard: float | None = None
    while True:
        try:
            task = yield from poll()
        except (KlingServerError, KlingRateLimitError) as err:
            failures += 1
            if failures >= max_failed_polls:
                raise
            log.warning("Poll of task %s failed (%d in a row): %s; will try again", task_id, failures, err.message)
            # A rate limit whose wait was longer than one call may spend: come back when the
            # server said, not at the short poll interval (the deadline below still applies).
            server_wait = err.retry_after if isinstance(err, KlingRateLimitError) else None
            delay = max(policy.min_interval, server_wait or 0.0)
        else:
            failures = 0
            if on_poll is not None:
                on_poll(task)
            if task.is_terminal:
                return task
            now = clock()
            estimate = estimate or task.estimated_time
            started_at = started_at or _plausible_created(task, now)
            elapsed = now - started_at
            if heard is None or now - heard >= HEARTBEAT_SECONDS:
                heard = now
                remaining = max(0.0, policy.predicted_remaining(task, elapsed, estimate))
                log.info(
                    "Task %s: %s, %d%% after %.0f s, about %.0f s to go",
                    task.id,
                    task.status.value,
                    task.progress,
                    elapsed,
                    remaining,
                )
            delay = policy.next_delay(task, elapsed, estimate)
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise KlingTimeoutError(
                    f"Task {task_id} was still running at the deadline ({iso(deadline)}); it may still "
                    "complete and is billed either way: re-attach to it rather than submit again",
                    task_id=task_id,
                )
            delay = min(delay, left)
        yield Sleep(delay)


def _plausible_created(task: Task, now: float) -> float:
    if task.created and 0 <= now - task.created < 86400:
        return float(task.created)
    return now


# -- downloading a result -----------------------------------------------------------------------


def download_plan(
    fetch: Fetch, policy: RetryPolicy, *, log: Any, expires_at: str | None = None
) -> Generator[Step, Any, SavedVideo]:
    """Fetch the video, restarting on anything transient (never the generation itself).

    A 403/404/410 means the link has expired or lost its signature: final, with when it expired.
    """
    attempt = 0
    while True:
        attempt += 1
        outcome = yield fetch
        decision: Decision
        match outcome:
            case SavedVideo():
                return outcome
            case httpx.Response(status_code=403 | 404 | 410):
                raise link_expired(fetch.url, outcome.status_code, expires_at)
            case httpx.Response(status_code=status) if 200 <= status < 300:
                # A 2xx that is not the whole video (206, 204...): nothing was written; ask again.
                failure = KlingServerError(
                    f"video download answered HTTP {status} instead of the video", status_code=status
                )
                decision = Retry(policy.backoff(attempt), f"HTTP {status}", failure)
            case httpx.Response():
                decision = decide_on_response(CallKind.IDEMPOTENT, outcome, attempt, policy, what="video download")
            case httpx.TransportError():
                failure = KlingServerError(f"video download interrupted ({type(outcome).__name__}: {outcome})")
                decision = Retry(policy.backoff(attempt), type(outcome).__name__, failure)
            case KlingServerError():  # short or not an MP4: the part file is already gone
                decision = Retry(policy.backoff(attempt), outcome.message, outcome)
            case _:
                raise TypeError(f"a Fetch step cannot answer {type(outcome).__name__}")
        match decision:
            case Retry(delay=delay, error=error):
                if attempt >= policy.max_attempts:
                    raise _gave_up(error, attempt) from None
                log.warning("Download attempt %d failed (%s); retrying in %.1f s", attempt, error, delay)
                yield Sleep(delay)
            case Fail(error=error):
                raise error
            case Accept() | Unknown():  # pragma: no cover - not for an idempotent non-2xx answer
                raise KlingServerError(f"video download: unexpected decision {decision}")
            case _:
                assert_never(decision)


def link_expired(url: str, status: int, expires_at: str | None) -> KlingLinkExpiredError:
    host = httpx.URL(url).host
    when = f" (it expired at {expires_at})" if expires_at else ""
    return KlingLinkExpiredError(
        f"The result link on {host} no longer serves the video: HTTP {status}{when}. EvoLink keeps "
        "result links for 24 hours; the generation itself is not resubmitted. Re-query the task in "
        "case it returns a fresh link, or generate again.",
        status_code=status,
    )


def short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")
