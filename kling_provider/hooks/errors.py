"""Map an EvoLink HTTP answer to the exception tree, whatever shape its body has.

The vendor sends ``{"error": {"code": "rate_limit_exceeded", ...}}`` today and
``{"error": {"code": 429, "fallback_suggestion": "retry after 60 seconds"}}`` in older
deployments; a proxy in between may send HTML or nothing. None of that may crash the client.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any

import httpx

from kling_provider.exceptions import (
    KlingAuthenticationError,
    KlingError,
    KlingInsufficientCreditsError,
    KlingNotFoundError,
    KlingPermissionError,
    KlingRateLimitError,
    KlingServerError,
    KlingValidationError,
)
from kling_provider.models.responses import ApiError

_RETRY_HINT = re.compile(r"retry\s+(?:after|in)\s+(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)
_MAX_SNIPPET = 200

_BY_STATUS: dict[int, type[KlingError]] = {
    400: KlingValidationError,
    401: KlingAuthenticationError,
    402: KlingInsufficientCreditsError,
    403: KlingPermissionError,
    404: KlingNotFoundError,
    422: KlingValidationError,
    429: KlingRateLimitError,
}

#: What to do about each error; ``{conn}`` becomes "connection 'kling_default'" (never the key).
_ADVICE: dict[type[KlingError], str] = {
    KlingAuthenticationError: "check the API key in the password field of {conn}",
    KlingInsufficientCreditsError: "top up the EvoLink account of the API key in {conn}, then clear the task to retry",
    KlingPermissionError: "the API key in {conn} may not use this model; check its model access in the EvoLink console",
    KlingRateLimitError: "lower rate_limit_rpm in the extra of {conn}, or the pool size",
    KlingServerError: "EvoLink or a proxy in front of it failed; a later retry may succeed",
}


def parse_api_error(response: httpx.Response) -> ApiError | None:
    """The vendor error object, or None when the body is not one (HTML, empty, other JSON)."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    raw = body.get("error")
    if isinstance(raw, dict):
        return ApiError.model_validate(raw)
    if "code" in body and "msg" in body and body.get("success") is False:
        # The files API's own failure shape: {"success": false, "code": 400, "msg": "..."}.
        return ApiError(code=str(body["code"]), message=str(body["msg"]))
    return None


def refusal_status(response: httpx.Response) -> int | None:
    """The HTTP error status a 2xx answer stands for, when its body is the file API's failure
    envelope (``{"success": false, "code": 400, "msg": ...}``), else None.

    The file API documents a failure as a non-2xx status *or* ``success: false``, and sends the
    latter with HTTP 200: its ``code`` says what kind of failure, as a status would. A code that
    is not an error status still means a refusal: 400.
    """
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("success") is not False:
        return None
    try:
        code = int(body.get("code"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 400
    return code if 400 <= code <= 599 else 400


def retry_after_seconds(response: httpx.Response, api_error: ApiError | None) -> float | None:
    """Retry-After header (seconds or HTTP date), else a "retry after N seconds" hint in the body."""
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header) if _looks_like_date(header) else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    if api_error is not None:
        for text in (api_error.fallback_suggestion, api_error.message):
            match = _RETRY_HINT.search(text or "")
            if match:
                return float(match.group(1))
    return None


def _looks_like_date(value: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(value) is not None
    except (TypeError, ValueError):
        return False


def body_snippet(response: httpx.Response) -> str:
    """A short, single-line view of a body for messages (never headers: they carry the key)."""
    try:
        text = response.content[: _MAX_SNIPPET * 2].decode("utf-8", "replace")
    except httpx.ResponseNotRead:
        return "<streamed body>"
    text = " ".join(text.split())
    return text[:_MAX_SNIPPET] + ("..." if len(text) > _MAX_SNIPPET else "")


def error_from_response(
    response: httpx.Response, *, what: str, status: int | None = None, conn_id: str | None = None
) -> KlingError:
    """The typed error for a non-success answer; ``what`` names the call for the message and
    ``conn_id`` the Airflow connection whose key was used (in the advice).

    ``status`` is the status the answer stands for when it is not the HTTP one (a refusal sent
    with HTTP 200, see :func:`refusal_status`): it picks the class and ``status_code``, while the
    message keeps the status that was really sent.
    """
    status = response.status_code if status is None else status
    api_error = parse_api_error(response)
    cls = _BY_STATUS.get(status) or (KlingServerError if status >= 500 else KlingError)
    if api_error is not None and api_error.message:
        detail = api_error.message
        if api_error.code:
            detail = f"{api_error.code}: {detail}"
    else:
        detail = body_snippet(response) or "empty body"
    message = f"{what} failed with HTTP {response.status_code} ({detail})"
    if api_error is not None and api_error.param:
        message += f"; field: {api_error.param}"
    advice = _ADVICE.get(cls)
    if advice:
        message += "; " + advice.format(conn=f"connection {conn_id!r}" if conn_id else "the connection")
    kwargs: dict[str, Any] = {
        "status_code": status,
        "code": api_error.code if api_error else None,
        "param": api_error.param if api_error else None,
    }
    if cls is KlingRateLimitError:
        return KlingRateLimitError(message, retry_after=retry_after_seconds(response, api_error), **kwargs)
    return cls(message, **kwargs)
