"""One small exception tree for everything that can go wrong talking to EvoLink.

Callers branch on the class (retry or not, fail the Airflow task or not); the message is for
the person reading the log, so it says what happened and what to do. No message ever contains
the API key: nothing here is given one, and request headers are never copied into an error.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

# Task-level error codes (``status == "failed"``) that a plain resubmission cannot fix: the
# request itself has to change. Everything else is treated as transient.
NON_RETRYABLE_TASK_CODES = frozenset(
    {
        "content_policy_violation",
        "invalid_parameters",
        "image_processing_error",
        "image_dimension_mismatch",
        "request_cancelled",
    }
)
RETRYABLE_TASK_CODES = frozenset(
    {
        "generation_failed_no_content",
        "service_error",
        "generation_timeout",
        "resource_exhausted",
        "quota_exceeded",
        "service_unavailable",
        "resource_not_found",
        "unknown_error",
    }
)


_E = TypeVar("_E", bound="KlingError")


class KlingError(Exception):
    """Base of every error this provider raises on purpose."""

    #: Whether trying the same thing again later may succeed.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.param = param

    def with_message(self, message: str) -> Self:
        """A new error of the same class and fields, saying ``message`` (this one is left as it
        is: it may be shared, or already logged)."""
        return _rebuild(type(self), {**self.__dict__, "message": message})

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling; Airflow pickles
        # exceptions across process boundaries in a few places.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[_E], state: dict[str, Any]) -> _E:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class KlingValidationError(KlingError, ValueError):
    """The request breaks a documented rule: found client-side before any credit was spent, or a 400."""


class KlingAuthenticationError(KlingError):
    """401: the API key is missing, wrong or expired."""


class KlingConnectionNotFoundError(KlingError):
    """The Airflow connection named by ``kling_conn_id`` does not exist; the message says how to
    create one."""

    def __init__(self, message: str, *, conn_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.conn_id = conn_id


class KlingInsufficientCreditsError(KlingError):
    """402: the account has too few credits; top up before retrying."""


class KlingPermissionError(KlingError):
    """403: the key may not use this model or resource."""


class KlingNotFoundError(KlingError):
    """404: the task (or file) does not exist, or has expired."""


class KlingLinkExpiredError(KlingNotFoundError):
    """A result link no longer serves the video (links live 24 hours)."""


class KlingRateLimitError(KlingError):
    """429 after the retry budget was spent."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class KlingServerError(KlingError):
    """5xx, an unreadable body, or no answer at all, after the retry budget was spent."""

    retryable = True


class KlingSubmissionUnknownError(KlingError):
    """The create request may or may not have made a (billed) task.

    Raised instead of retrying, because EvoLink has no idempotency key: a blind retry could bill
    twice. ``model``, ``sent_at`` (unix seconds) and ``request_summary`` say what to look for
    in the EvoLink console's task history.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        sent_at: float,
        request_summary: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.model = model
        self.sent_at = sent_at
        self.request_summary = request_summary


class KlingTimeoutError(KlingError):
    """A wait reached its deadline while the task was still running (it may still finish)."""

    retryable = True

    def __init__(self, message: str, *, task_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.task_id = task_id


class KlingTaskFailedError(KlingError):
    """The task reached ``failed`` or ``cancelled``; ``retryable`` says whether resubmitting may help."""

    def __init__(self, message: str, *, task_id: str, code: str | None, **kwargs: Any) -> None:
        super().__init__(message, code=code, **kwargs)
        self.task_id = task_id
        self.retryable = is_retryable_task_code(code)


def is_retryable_task_code(code: str | None) -> bool:
    """Unknown codes count as transient: the vendor adds codes, and refusing to retry a new
    transient code would fail a workflow that a retry would have saved."""
    return code not in NON_RETRYABLE_TASK_CODES
