"""The vendor's error bodies, as the simulator sends them.

Three surfaces answer errors differently, and a client must read all three: the video API's
``{"error": {"code", "message", "type"}}`` (string codes in the current docs; integer codes equal
to the HTTP status, with ``param`` and ``fallback_suggestion``, in older docs and live traffic),
the file API's ``{"success": false, "code", "msg"}`` envelope, and the storage CDN's small XML
for a bad or expired link. Faults add what no document shows: a proxy's HTML page, an empty or
cut-off JSON body.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from kling_provider.testing.faults import ErrorShape, Fault
from kling_provider.testing.state import Phase

__all__ = ["FILE_API_PHASES", "api_error", "cdn_error", "fault_answer", "files_error", "phrase", "task_error_message"]

#: Phases served by the file API host, which answers errors in its own envelope.
FILE_API_PHASES = frozenset({"upload", "quota"})

#: status -> (string code, type, message) of the vendor's documented HTTP errors.
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request", "invalid_request_error", "Invalid request parameters"),
    401: ("unauthorized", "authentication_error", "Invalid or expired token"),
    402: ("insufficient_quota", "insufficient_quota", "Insufficient quota. Please top up your account."),
    403: ("permission_denied", "invalid_request_error", "You don't have permission to access this resource"),
    404: ("task_not_found", "invalid_request_error", "The requested task could not be found"),
    405: ("method_not_allowed", "invalid_request_error", "Method not allowed"),
    429: ("rate_limit_exceeded", "rate_limit_error", "Too many requests, please try again later"),
    500: ("internal_error", "api_error", "Internal server error"),
    502: ("upstream_error", "api_error", "Upstream service error"),
    503: ("service_unavailable", "api_error", "Service temporarily unavailable"),
    504: ("gateway_timeout", "api_error", "The upstream service did not answer in time"),
}
_SUGGESTIONS = {
    400: "check the request parameters",
    401: "check your API key",
    402: "top up your account",
    403: "check the permissions of your API key",
    404: "check the task id",
}
#: Messages for task failures planned without one.
_TASK_ERROR_MESSAGES = {
    "content_policy_violation": "Content policy violation. Your request was blocked by safety filters.",
    "generation_failed_no_content": "Generation failed: the model returned no content.",
    "image_processing_error": "The input image could not be processed.",
    "service_error": "The generation service failed. Please try again.",
    "generation_timeout": "Generation timed out.",
}
_PROXY_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_CDN_ERROR = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>\n'


def api_error(
    shape: ErrorShape,
    status: int,
    *,
    code: str | int | None = None,
    message: str | None = None,
    param: str | None = None,
    hint: float | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The video API's error body, ``{"error": {...}}``, in ``shape``; ``hint`` is a retry delay in s."""
    default_code, error_type, default_message = _ERRORS.get(
        status,
        ("internal_error", "api_error", HTTPStatus(status).phrase)
        if status >= 500
        else ("invalid_request", "invalid_request_error", HTTPStatus(status).phrase),
    )
    text = message or default_message
    error: dict[str, Any] = {"code": code, "message": text, "type": error_type}
    if shape == "integer":
        # Older deployments: the code is the HTTP status (an explicit integer code wins).
        error["code"] = code if isinstance(code, int) else status
        error["param"] = param
        if hint is not None or status == 429 or status >= 500:
            error["fallback_suggestion"] = f"retry after {math.ceil(hint if hint is not None else 60)} seconds"
        else:
            error["fallback_suggestion"] = _SUGGESTIONS.get(status)
    else:
        if code is None:
            error["code"] = default_code
        if param is not None:
            error["param"] = param
        if hint is not None:
            error["message"] = f"{text} Please retry after {math.ceil(hint)} seconds."
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def files_error(
    status: int, message: str, headers: dict[str, str] | None = None, code: str | int | None = None
) -> JSONResponse:
    """The file API's envelope for a failure; its ``code`` is the HTTP status unless told otherwise
    (the API also refuses with HTTP 200 and ``{"success": false, "code": 400}``)."""
    body = {"success": False, "code": status if code is None else code, "msg": message}
    return JSONResponse(body, status_code=status, headers=headers)


def cdn_error(status: int, code: str, message: str) -> Response:
    """What a storage CDN answers for a bad or expired link: small, and not JSON."""
    return Response(_CDN_ERROR.format(code=code, message=message), status, media_type="application/xml")


def task_error_message(code: str) -> str:
    """The message of a failed task whose failure was planned without one."""
    return _TASK_ERROR_MESSAGES.get(code, code)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def fault_answer(fault: Fault, phase: Phase, shape: ErrorShape) -> Response:
    """The answer a ``status`` or ``malformed`` fault sends, as the host serving ``phase`` would."""
    status = fault.effective_status
    headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else None
    if fault.kind == "malformed":
        if fault.malformed == "html":
            return HTMLResponse(_PROXY_PAGE.format(status=status, phrase=phrase(status)), status, headers=headers)
        content = b"" if fault.malformed == "empty" else b'{"id": "task-unified-1757169743-'
        return Response(content, status, headers=headers, media_type="application/json")
    if phase in FILE_API_PHASES:
        message = fault.message or phrase(status)
        if fault.retry_hint is not None:
            message += f", retry after {math.ceil(fault.retry_hint)} seconds"
        return files_error(status, message, headers=headers, code=fault.code)
    if phase in ("download", "file"):
        return Response(f"{status} {phrase(status)}\n", status, headers=headers, media_type="text/plain")
    return api_error(
        fault.error_shape or shape,
        status,
        code=fault.code,
        message=fault.message,
        hint=fault.retry_hint,
        headers=headers,
    )
