"""When to try a request again, and when trying again could bill twice.

EvoLink has no idempotency key: every accepted ``POST /v1/videos/generations`` creates a task and
reserves credits. So the two kinds of call get different rules:

* **Idempotent calls** (task queries, uploads, downloads) are retried on 429, 408, 5xx,
  unreadable bodies, timeouts and connection errors, with capped, jittered exponential backoff
  (or the wait the server asked for) and a bounded number of attempts. Repeating them costs
  nothing: an extra upload is a free, expiring file.
* **Submissions** are retried only when the request provably never created a task:
  the connection could not be opened (refused, DNS failure, connect or pool timeout: nothing was
  sent), or the API answered 429 or 503 with its own JSON error body (it refused before
  accepting). Everything else that leaves the outcome open (a read timeout or dropped connection
  after the body was sent, a proxy's HTML/empty 5xx, a 504, an unreadable 200) raises
  :class:`~kling_provider.exceptions.KlingSubmissionUnknownError` and is never retried blindly.
  A 500/502 carrying the vendor's own error body is the API saying the request failed, so it
  raises :class:`~kling_provider.exceptions.KlingServerError`.

The rules are pure functions of (call kind, answer) so that the sync and async clients share
them and tests can table-drive them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

import httpx

from kling_provider.exceptions import KlingError, KlingServerError
from kling_provider.hooks.errors import error_from_response, parse_api_error, refusal_status, retry_after_seconds

#: Transport errors raised before a single byte of the request left this machine.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallKind(Enum):
    IDEMPOTENT = "idempotent"
    SUBMIT = "submit"


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and how long apart. Defaults suit EvoLink's documented behaviour."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    #: Longest server-requested wait (Retry-After / body hint) honoured before giving up.
    max_server_wait: float = 120.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after failed attempt ``attempt`` (1-based): exponential, capped, half-jittered."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Accept:
    """Use this answer."""


@dataclass(frozen=True)
class Retry:
    delay: float
    reason: str
    #: What to raise if the attempt budget is already spent.
    error: KlingError


@dataclass(frozen=True)
class Fail:
    error: KlingError


@dataclass(frozen=True)
class Unknown:
    """A submission that may have created a (billed) task: stop and say so."""

    reason: str


Decision = Accept | Retry | Fail | Unknown


def decide_on_error(kind: CallKind, error: httpx.TransportError, attempt: int, policy: RetryPolicy) -> Retry | Unknown:
    """A request that got no HTTP answer."""
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if kind is CallKind.SUBMIT and not isinstance(error, NOT_SENT_ERRORS):
        return Unknown(f"no answer after the request was sent ({reason})")
    failure = KlingServerError(f"EvoLink could not be reached ({reason})")
    return Retry(policy.backoff(attempt), reason, failure)


def decide_on_response(
    kind: CallKind,
    response: httpx.Response,
    attempt: int,
    policy: RetryPolicy,
    *,
    what: str,
    conn_id: str | None = None,
) -> Decision:
    """A request that got an HTTP answer (its body already read); ``conn_id`` names the
    connection in the advice of key and account errors.

    A 2xx carrying the file API's failure envelope is judged as the status its code names.
    """
    status = response.status_code
    if 200 <= status < 300:
        refused = refusal_status(response)
        if refused is None:
            return Accept()
        status = refused
    error = error_from_response(response, what=what, status=status, conn_id=conn_id)
    vendor_body = parse_api_error(response) is not None
    if kind is CallKind.SUBMIT:
        if status in (429, 503) and vendor_body:
            return _retry(response, error, attempt, policy, _reason(response, status))
        if status >= 500 and vendor_body and status not in (503, 504):
            return Fail(error)
        if status >= 500 or status == 408:
            return Unknown(f"HTTP {status} without a definite answer from EvoLink ({error.message})")
        return Fail(error)
    if status in _RETRYABLE_STATUS or status >= 500:
        return _retry(response, error, attempt, policy, _reason(response, status))
    return Fail(error)


def _reason(response: httpx.Response, status: int) -> str:
    sent = f"HTTP {response.status_code}"
    return sent if status == response.status_code else f"{sent} with code {status}"


def _retry(response: httpx.Response, error: KlingError, attempt: int, policy: RetryPolicy, reason: str) -> Decision:
    hint = retry_after_seconds(response, parse_api_error(response))
    if hint is None:
        return Retry(policy.backoff(attempt), reason, error)
    if hint > policy.max_server_wait:
        return Fail(error)
    # A little jitter on top of the server's hint keeps a thousand waiting clients from
    # returning in the same millisecond.
    return Retry(hint + random.uniform(0, min(1.0, hint * 0.1)), reason, error)
