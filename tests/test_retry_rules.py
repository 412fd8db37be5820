"""The bill-once table: which answers are retried, for queries and for submissions."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from kling_provider.exceptions import (
    KlingAuthenticationError,
    KlingInsufficientCreditsError,
    KlingNotFoundError,
    KlingPermissionError,
    KlingRateLimitError,
    KlingServerError,
    KlingValidationError,
)
from kling_provider.hooks.errors import error_from_response, retry_after_seconds
from kling_provider.hooks.retry import (
    Accept,
    CallKind,
    Fail,
    Retry,
    RetryPolicy,
    Unknown,
    decide_on_error,
    decide_on_response,
)

POLICY = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_cap=8.0, max_server_wait=90)
REQ = httpx.Request("POST", "https://api.evolink.ai/v1/videos/generations")


def vendor(
    status: int, code: object = None, message: str = "boom", headers: dict[str, str] | None = None, **extra: object
) -> httpx.Response:
    body = {"error": {"code": code if code is not None else "x", "message": message, "type": "t", **extra}}
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers, request=REQ)


def raw(status: int, content: bytes, content_type: str = "text/html") -> httpx.Response:
    return httpx.Response(status, content=content, headers={"content-type": content_type}, request=REQ)


SUBMIT_TABLE = [
    ("200", httpx.Response(200, json={"id": "t"}, request=REQ), Accept),
    ("429 vendor", vendor(429, "rate_limit_exceeded"), Retry),
    ("503 vendor", vendor(503, "service_unavailable"), Retry),
    ("503 integer shape", vendor(503, 503), Retry),
    ("500 vendor body", vendor(500, "internal_error"), Fail),
    ("502 vendor body", vendor(502, "upstream_error"), Fail),
    ("502 proxy html", raw(502, b"<html>Bad gateway</html>"), Unknown),
    ("503 proxy html", raw(503, b"<html>unavailable</html>"), Unknown),
    ("504 vendor", vendor(504, "gateway_timeout"), Unknown),
    ("500 empty", raw(500, b""), Unknown),
    ("400", vendor(400, "invalid_request"), Fail),
    ("401", vendor(401, "unauthorized"), Fail),
    ("402", vendor(402, "insufficient_quota"), Fail),
    ("403", vendor(403, "model_access_denied"), Fail),
]


@pytest.mark.parametrize(("label", "response", "expected"), SUBMIT_TABLE, ids=[r[0] for r in SUBMIT_TABLE])
def test_submit_answers(label: str, response: httpx.Response, expected: type) -> None:
    assert isinstance(decide_on_response(CallKind.SUBMIT, response, 1, POLICY, what="create"), expected)


QUERY_TABLE = [
    ("200", httpx.Response(200, json={}, request=REQ), Accept),
    ("429", vendor(429), Retry),
    ("408", raw(408, b""), Retry),
    ("500", vendor(500), Retry),
    ("502 html", raw(502, b"<html/>"), Retry),
    ("503", vendor(503), Retry),
    ("504", raw(504, b""), Retry),
    ("400", vendor(400), Fail),
    ("401", vendor(401), Fail),
    ("404", vendor(404, "task_not_found"), Fail),
]


@pytest.mark.parametrize(("label", "response", "expected"), QUERY_TABLE, ids=[r[0] for r in QUERY_TABLE])
def test_query_answers(label: str, response: httpx.Response, expected: type) -> None:
    assert isinstance(decide_on_response(CallKind.IDEMPOTENT, response, 1, POLICY, what="get"), expected)


@pytest.mark.parametrize(
    ("error", "submit_expected"),
    [
        (httpx.ConnectError("refused"), Retry),
        (httpx.ConnectTimeout("slow connect"), Retry),
        (httpx.PoolTimeout("pool"), Retry),
        (httpx.ReadTimeout("slow answer"), Unknown),
        (httpx.RemoteProtocolError("dropped"), Unknown),
        (httpx.ReadError("reset"), Unknown),
        (httpx.WriteError("broken pipe"), Unknown),
    ],
)
def test_transport_errors(error: httpx.TransportError, submit_expected: type) -> None:
    assert isinstance(decide_on_error(CallKind.SUBMIT, error, 1, POLICY), submit_expected)
    # Queries are free to repeat: every transport error is retried.
    assert isinstance(decide_on_error(CallKind.IDEMPOTENT, error, 1, POLICY), Retry)


def test_retry_after_header_wins_over_body_hint() -> None:
    response = vendor(429, headers={"Retry-After": "7"}, fallback_suggestion="retry after 60 seconds")
    decision = decide_on_response(CallKind.IDEMPOTENT, response, 1, POLICY, what="get")
    assert isinstance(decision, Retry)
    assert 7 <= decision.delay <= 8


def test_body_hint_used_without_header() -> None:
    response = vendor(429, 429, message="Too many requests", fallback_suggestion="retry after 12 seconds")
    assert retry_after_seconds(response, None) is None or True  # header absent
    decision = decide_on_response(CallKind.SUBMIT, response, 1, POLICY, what="create")
    assert isinstance(decision, Retry)
    assert 12 <= decision.delay <= 13.2


def test_http_date_retry_after() -> None:
    response = vendor(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(response, None) == 0.0


def test_server_wait_longer_than_policy_fails_fast() -> None:
    response = vendor(429, headers={"Retry-After": "600"})
    decision = decide_on_response(CallKind.IDEMPOTENT, response, 1, POLICY, what="get")
    assert isinstance(decision, Fail)
    assert isinstance(decision.error, KlingRateLimitError)
    assert decision.error.retry_after == 600


def test_backoff_is_capped_exponential_with_jitter() -> None:
    rng = random.Random(1)
    delays = [POLICY.backoff(n, rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 8.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, KlingValidationError),
        (401, KlingAuthenticationError),
        (402, KlingInsufficientCreditsError),
        (403, KlingPermissionError),
        (404, KlingNotFoundError),
        (429, KlingRateLimitError),
        (500, KlingServerError),
        (502, KlingServerError),
        (503, KlingServerError),
    ],
)
@pytest.mark.parametrize("shape", ["string", "integer"])
def test_error_mapping_both_shapes(status: int, cls: type, shape: str) -> None:
    code = status if shape == "integer" else "some_code"
    err = error_from_response(vendor(status, code, message="Readable reason", param="duration"), what="creating")
    assert type(err) is cls
    assert err.status_code == status
    assert err.code == str(code)
    assert "Readable reason" in err.message
    assert "duration" in err.message


@pytest.mark.parametrize("body", [b"", b"<html><body>502 Bad Gateway</body></html>", b"{not json", b"[1,2]", b"null"])
def test_unreadable_error_bodies_never_crash(body: bytes) -> None:
    err = error_from_response(raw(502, body), what="querying")
    assert isinstance(err, KlingServerError)
    assert "HTTP 502" in err.message
