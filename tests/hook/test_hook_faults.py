"""Every fault the simulator injects on submit and poll, and every way a task can end badly.

Each case states the outcome (success or the typed error, with words a person needs in its
message) and how many requests the simulator saw. The bill-once rules under test are in
:mod:`kling_provider.hooks.retry`: a submission is retried only when it provably created no
task; a poll is retried on anything transient, up to ``max_attempts``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from kling_provider.exceptions import (
    NON_RETRYABLE_TASK_CODES,
    RETRYABLE_TASK_CODES,
    KlingAuthenticationError,
    KlingError,
    KlingInsufficientCreditsError,
    KlingNotFoundError,
    KlingPermissionError,
    KlingRateLimitError,
    KlingServerError,
    KlingSubmissionUnknownError,
    KlingTimeoutError,
    KlingValidationError,
    is_retryable_task_code,
)
from kling_provider.models import Task, TaskStatus
from kling_provider.testing import Fault

from .support import (
    API_KEY,
    MAX_ATTEMPTS,
    SHORT_TIMEOUT,
    WRONG_KEY,
    Caller,
    Loopback,
    SimEnv,
    SleepLog,
    assert_request_log_secret_free,
    assert_secret_free,
    open_env,
    text_request,
)


@dataclass(frozen=True)
class Case:
    """Faults to inject, and what the hook must make of them."""

    faults: tuple[dict[str, Any], ...]
    #: None: the call succeeds.
    error: type[KlingError] | None
    #: Requests of the phase under test the simulator must see.
    requests: int
    #: Tasks that exist afterwards (submit cases).
    tasks: int = 0
    #: Words the error message must contain.
    words: tuple[str, ...] = ()
    #: (low, high) bounds of the first delay the hook waited, when the server said how long.
    first_delay: tuple[float, float] | None = None
    sim: dict[str, Any] = field(default_factory=dict)
    #: Client timeout (connection extra "timeout").
    timeout: float = 5.0


def _configure(env: SimEnv, case: Case) -> None:
    """Simulator settings and the connection (read by hooks when they first need it)."""
    for name, value in case.sim.items():
        setattr(env.sim, name, value)
    env.connect(timeout=case.timeout)


def _arm(env: SimEnv, case: Case, phase: str) -> list[Fault]:
    return [env.sim.faults.add(Fault(**{"phase": phase, **spec})) for spec in case.faults]


_GAVE_UP = f"gave up after {MAX_ATTEMPTS} attempts"
_UNKNOWN_WORDS = ("may or may not have created a task", "not retried", "kling-v3-text-to-video", "duration=5")
_BACKOFF = (0.005, 0.05)  # FAST_RETRY: half-jittered, capped at 0.05 s

SUBMIT_CASES: dict[str, Case] = {
    # Refused before anything was created: retried, one task in the end.
    "429-retry-after-header": Case(({"status": 429, "retry_after": 7},), None, 2, 1, first_delay=(7, 7.7)),
    "429-body-hint-string": Case(({"status": 429, "retry_hint": 3},), None, 2, 1, first_delay=(3, 3.3)),
    "429-body-hint-integer": Case(
        ({"status": 429, "retry_hint": 4, "error_shape": "integer"},), None, 2, 1, first_delay=(4, 4.4)
    ),
    "429-integer-default-hint": Case(
        ({"status": 429},), None, 2, 1, first_delay=(60, 61), sim={"error_shape": "integer"}
    ),
    "429-header-beats-body-hint": Case(
        ({"status": 429, "retry_after": 7, "error_shape": "integer"},), None, 2, 1, first_delay=(7, 7.7)
    ),
    "429-no-hint": Case(({"status": 429},), None, 2, 1, first_delay=_BACKOFF),
    "429-burst": Case(({"status": 429, "times": MAX_ATTEMPTS - 1},), None, MAX_ATTEMPTS, 1),
    "429-exhausted": Case(
        ({"status": 429, "rate": 1.0},), KlingRateLimitError, MAX_ATTEMPTS, 0, (_GAVE_UP, "429", "rate_limit")
    ),
    "429-wait-too-long": Case(
        ({"status": 429, "retry_after": 600},), KlingRateLimitError, 1, 0, ("429", "rate_limit_rpm")
    ),
    "503-burst": Case(({"status": 503, "times": 2},), None, 3, 1, first_delay=_BACKOFF),
    "503-integer-hint": Case(({"status": 503, "error_shape": "integer"},), None, 2, 1, first_delay=(60, 61)),
    "503-exhausted": Case(
        ({"status": 503, "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, 0, (_GAVE_UP, "503", "service_unavailable")
    ),
    # The API itself said the request failed: not retried, nothing created.
    "500-vendor": Case(({"status": 500},), KlingServerError, 1, 0, ("HTTP 500", "internal_error")),
    "502-vendor": Case(({"status": 502},), KlingServerError, 1, 0, ("HTTP 502", "upstream_error")),
    "502-vendor-integer": Case(({"status": 502, "error_shape": "integer"},), KlingServerError, 1, 0, ("HTTP 502",)),
    # Ambiguous: the request may have created a task. Never retried.
    "400-vendor": Case(
        ({"status": 400, "code": "invalid_parameters", "message": "duration is not allowed"},),
        KlingValidationError,
        1,
        0,
        ("HTTP 400", "invalid_parameters", "duration is not allowed"),
    ),
    "408-vendor": Case(({"status": 408},), KlingSubmissionUnknownError, 1, 0, (*_UNKNOWN_WORDS, "408")),
    "504-vendor": Case(({"status": 504},), KlingSubmissionUnknownError, 1, 0, (*_UNKNOWN_WORDS, "504")),
    "slow-past-timeout": Case(
        ({"kind": "slow", "delay": 30},), KlingSubmissionUnknownError, 1, 1, _UNKNOWN_WORDS, timeout=SHORT_TIMEOUT
    ),
    "slow-gateway-504": Case(
        ({"kind": "slow", "delay": 0.01, "processed": False},), KlingSubmissionUnknownError, 1, 0, _UNKNOWN_WORDS
    ),
    "drop": Case(({"kind": "drop"},), KlingSubmissionUnknownError, 1, 0, _UNKNOWN_WORDS),
    "malformed-html-502": Case(({"kind": "malformed", "malformed": "html"},), KlingSubmissionUnknownError, 1, 0),
    "malformed-html-503": Case(
        ({"kind": "malformed", "malformed": "html", "status": 503},), KlingSubmissionUnknownError, 1, 0, ("503",)
    ),
    # A proxy's own 429 page is a refusal too, but not the API's: not retried blindly either.
    "malformed-html-429": Case(
        ({"kind": "malformed", "malformed": "html", "status": 429},), KlingRateLimitError, 1, 0, ("HTTP 429",)
    ),
    "malformed-empty-200": Case(
        ({"kind": "malformed", "malformed": "empty"},), KlingSubmissionUnknownError, 1, 0, ("could not be read",)
    ),
    "malformed-invalid-json-200": Case(
        ({"kind": "malformed", "malformed": "invalid_json"},), KlingSubmissionUnknownError, 1, 0
    ),
    "lost-response-drop": Case(({"kind": "lost_submit_response"},), KlingSubmissionUnknownError, 1, 1, _UNKNOWN_WORDS),
    "lost-response-timeout": Case(
        ({"kind": "lost_submit_response", "lost_as": "timeout", "delay": 30},),
        KlingSubmissionUnknownError,
        1,
        1,
        _UNKNOWN_WORDS,
        timeout=SHORT_TIMEOUT,
    ),
    # A late answer within the client's timeout is just an answer.
    "slow-within-timeout": Case(({"kind": "slow", "delay": 0.05},), None, 1, 1),
    # An error object under HTTP 200 is no task and no documented refusal: the outcome stays open.
    "vendor-error-under-200": Case(
        ({"status": 200, "code": "invalid_parameters", "message": "duration is not allowed"},),
        KlingSubmissionUnknownError,
        1,
        0,
        ("could not be read",),
    ),
}


@pytest.mark.parametrize("name", list(SUBMIT_CASES))
def test_submit_fault(env: SimEnv, caller: Caller, sleeps: SleepLog, name: str) -> None:
    case = SUBMIT_CASES[name]
    _configure(env, case)
    faults = _arm(env, case, "submit")
    hook = env.hook()
    request = text_request()

    if case.error is None:
        task = caller.submit(hook, request)
        assert task.status is TaskStatus.PENDING
        assert env.sim.task(task.id).body == request.to_body()
    else:
        with pytest.raises(case.error) as info:
            caller.submit(hook, request)
        err = info.value
        assert type(err) is case.error
        for word in case.words:
            assert word in err.message, f"{word!r} missing from: {err.message}"
        assert_secret_free(err)
        if isinstance(err, KlingSubmissionUnknownError):
            # Everything needed to find the task in the console, and the advice not to resubmit.
            assert err.model == "kling-v3-text-to-video"
            assert "duration=5" in err.request_summary and "lighthouse" in err.request_summary
            assert "console" in err.message

    assert env.sim.count(method="POST", phase="submit") == case.requests
    assert len(env.sim.tasks) == case.tasks
    assert env.requests_by_phase() == {"submit": case.requests}
    assert sum(f.hits for f in faults) >= 1
    if case.first_delay is not None:
        low, high = case.first_delay
        assert low <= sleeps.delays[0] <= high, sleeps.delays
    assert_request_log_secret_free(env.sim)


def test_submit_is_never_retried_after_a_lost_answer(env: SimEnv, caller: Caller) -> None:
    """The headline rule: the task was created and its answer lost; the hook raises, once."""
    env.sim.faults.add(Fault(kind="lost_submit_response"))
    hook = env.hook()
    with pytest.raises(KlingSubmissionUnknownError):
        caller.submit(hook, text_request())
    assert env.sim.count(method="POST") == 1
    assert len(env.sim.tasks) == 1
    # The created task really exists and is billed: it can be found and followed.
    (created,) = env.sim.tasks
    assert env.sim.credits_spent == created.spec.credits
    assert caller.get_task(hook, created.id).id == created.id


POLL_CASES: dict[str, Case] = {
    "429-retry-after-header": Case(({"status": 429, "retry_after": 5},), None, 2, first_delay=(5, 5.5)),
    "429-body-hint-string": Case(({"status": 429, "retry_hint": 2},), None, 2, first_delay=(2, 2.2)),
    "429-body-hint-integer": Case(
        ({"status": 429, "retry_hint": 9, "error_shape": "integer"},), None, 2, first_delay=(9, 9.9)
    ),
    "429-no-hint": Case(({"status": 429},), None, 2, first_delay=_BACKOFF),
    "429-wait-too-long": Case(({"status": 429, "retry_after": 600},), KlingRateLimitError, 1, words=("HTTP 429",)),
    "408-burst": Case(({"status": 408, "times": 2},), None, 3),
    "504-burst": Case(({"status": 504, "times": 2},), None, 3),
    "429-exhausted": Case(({"status": 429, "rate": 1.0},), KlingRateLimitError, MAX_ATTEMPTS, words=(_GAVE_UP,)),
    "500-burst": Case(({"status": 500, "times": 2},), None, 3, first_delay=_BACKOFF),
    "502-burst": Case(({"status": 502, "times": 3},), None, 4),
    "503-burst": Case(({"status": 503, "times": 2},), None, 3),
    "mixed-burst": Case(({"status": 500}, {"status": 502}, {"status": 503}), None, 4),
    "503-exhausted": Case(
        ({"status": 503, "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, words=(_GAVE_UP, "HTTP 503", "querying task")
    ),
    "500-exhausted-integer": Case(
        ({"status": 500, "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        words=(_GAVE_UP,),
        sim={"error_shape": "integer"},
    ),
    "slow-past-timeout": Case(({"kind": "slow", "delay": 30},), None, 2, timeout=SHORT_TIMEOUT),
    "slow-within-timeout": Case(({"kind": "slow", "delay": 0.05},), None, 1),
    "slow-exhausted": Case(
        ({"kind": "slow", "delay": 30, "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        words=(_GAVE_UP, "could not be reached", "Timeout"),
        timeout=SHORT_TIMEOUT,
    ),
    "drop": Case(({"kind": "drop"},), None, 2),
    "drop-exhausted": Case(({"kind": "drop", "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, words=(_GAVE_UP,)),
    "malformed-html": Case(({"kind": "malformed", "malformed": "html"},), None, 2),
    "malformed-empty": Case(({"kind": "malformed", "malformed": "empty"},), None, 2),
    "malformed-invalid-json": Case(({"kind": "malformed", "malformed": "invalid_json"},), None, 2),
    "malformed-exhausted": Case(
        ({"kind": "malformed", "malformed": "invalid_json", "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        words=(_GAVE_UP, "unreadable answer"),
    ),
    # An error object under HTTP 200 is not a task: read as garbage, and a query is free to repeat.
    "vendor-error-under-200": Case(({"status": 200, "code": "invalid_request"},), None, 2),
    "vendor-error-under-200-exhausted": Case(
        ({"status": 200, "code": 400, "error_shape": "integer", "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        words=(_GAVE_UP, "unreadable answer"),
    ),
}


@pytest.mark.parametrize("name", list(POLL_CASES))
def test_poll_fault(env: SimEnv, caller: Caller, sleeps: SleepLog, name: str) -> None:
    case = POLL_CASES[name]
    _configure(env, case)
    hook = env.hook()
    task = hook.submit(text_request())
    env.finish(task.id)
    faults = _arm(env, case, "poll")

    if case.error is None:
        polled = caller.get_task(hook, task.id)
        assert polled.status is TaskStatus.COMPLETED and polled.video_url
    else:
        with pytest.raises(case.error) as info:
            caller.get_task(hook, task.id)
        err = info.value
        assert type(err) is case.error
        for word in case.words:
            assert word in err.message, f"{word!r} missing from: {err.message}"
        assert_secret_free(err)

    assert env.requests_by_phase() == {"submit": 1, "poll": case.requests}
    assert env.sim.count(phase="poll", task_id=task.id) == case.requests
    assert sum(f.hits for f in faults) >= 1
    if case.first_delay is not None:
        low, high = case.first_delay
        assert low <= sleeps.delays[0] <= high, sleeps.delays
    assert len(sleeps.delays) == case.requests - 1  # one wait between attempts, none after the last


def test_wait_for_task_outlasts_failed_polls(env: SimEnv, sleeps: SleepLog) -> None:
    """A poll whose retries are spent is tolerated (max_failed_polls - 1 times in a row)."""
    hook = env.hook()
    task = hook.submit(text_request())
    env.finish(task.id)
    env.sim.faults.add(Fault(phase="poll", kind="status", status=503, times=MAX_ATTEMPTS + 1))
    done = hook.wait_for_task(task.id, max_failed_polls=3)
    assert done.status is TaskStatus.COMPLETED
    assert env.sim.count(phase="poll") == MAX_ATTEMPTS + 2
    assert env.sim.count(phase="submit") == 1


def test_wait_for_task_honours_a_long_retry_after(env: SimEnv, sleeps: SleepLog) -> None:
    """A poll refused with a wait longer than one call may spend (Retry-After 600 s > the
    policy's max_server_wait) fails that call at once; the wait loop must then come back when
    the server said, not after the short poll interval."""
    hook = env.hook()
    task = hook.submit(text_request())
    env.finish(task.id)
    env.sim.faults.add(Fault(phase="poll", kind="status", status=429, retry_after=600))
    done = hook.wait_for_task(task.id, max_failed_polls=3)
    assert done.status is TaskStatus.COMPLETED
    assert env.sim.count(phase="poll") == 2
    assert len(sleeps.delays) == 1 and sleeps.delays[0] >= 600, sleeps.delays


def test_wait_for_task_deadline_caps_a_long_retry_after(env: SimEnv, sleeps: SleepLog) -> None:
    hook = env.hook()
    task = hook.submit(text_request())
    env.sim.faults.add(Fault(phase="poll", kind="status", status=429, retry_after=600))
    with pytest.raises(KlingTimeoutError):
        hook.wait_for_task(task.id, timeout=30, max_failed_polls=3)
    assert len(sleeps.delays) == 1 and 0 < sleeps.delays[0] <= 30, sleeps.delays


def test_wait_for_task_gives_up_after_failed_polls(env: SimEnv, sleeps: SleepLog) -> None:
    hook = env.hook()
    task = hook.submit(text_request())
    env.sim.faults.add(Fault(phase="poll", kind="status", status=502, rate=1.0))
    with pytest.raises(KlingServerError) as info:
        hook.wait_for_task(task.id, max_failed_polls=2)
    assert _GAVE_UP in info.value.message
    assert env.sim.count(phase="poll") == 2 * MAX_ATTEMPTS
    assert env.sim.count(phase="submit") == 1
    assert_secret_free(info.value)


@pytest.mark.parametrize("shape", ["string", "integer"])
@pytest.mark.parametrize(
    ("status", "error", "code", "words"),
    [
        (404, KlingNotFoundError, {"string": "task_not_found", "integer": "404"}, ("HTTP 404",)),
        (403, KlingPermissionError, {"string": "permission_denied", "integer": "403"}, ("HTTP 403", "console")),
        (400, KlingError, {"string": "invalid_request", "integer": "400"}, ("HTTP 400",)),
    ],
)
def test_poll_client_errors_are_final(
    env: SimEnv,
    caller: Caller,
    shape: str,
    status: int,
    error: type[KlingError],
    code: dict[str, str],
    words: tuple[str, ...],
) -> None:
    env.sim.error_shape = shape  # type: ignore[assignment]
    hook = env.hook()
    task = hook.submit(text_request())
    env.sim.faults.add(Fault(phase="poll", kind="status", status=status))
    with pytest.raises(error) as info:
        caller.get_task(hook, task.id)
    err = info.value
    assert err.status_code == status
    assert err.code == code[shape]
    for word in words:
        assert word in err.message
    assert env.sim.count(phase="poll") == 1
    assert_secret_free(err)


def test_unknown_task_is_not_found(env: SimEnv, caller: Caller) -> None:
    hook = env.hook()
    with pytest.raises(KlingNotFoundError) as info:
        caller.get_task(hook, "task-unified-1757169743-nosuchid")
    assert "task-unified-1757169743-nosuchid" in info.value.message
    assert env.requests_by_phase() == {"poll": 1}


@pytest.mark.parametrize("shape", ["string", "integer"])
def test_wrong_key(env: SimEnv, caller: Caller, shape: str) -> None:
    env.sim.error_shape = shape  # type: ignore[assignment]
    env.connect(key=WRONG_KEY)
    hook = env.hook()
    with pytest.raises(KlingAuthenticationError) as info:
        caller.submit(hook, text_request())
    err = info.value
    assert err.status_code == 401
    assert err.code == {"string": "unauthorized", "integer": "401"}[shape]
    assert "API key" in err.message
    assert_secret_free(err, hook, key=WRONG_KEY)
    assert env.sim.count(phase="submit") == 1 and env.sim.tasks == []
    assert WRONG_KEY not in repr(env.sim.requests)


@pytest.mark.parametrize("shape", ["string", "integer"])
def test_insufficient_credits(env: SimEnv, caller: Caller, shape: str) -> None:
    env.sim.error_shape = shape  # type: ignore[assignment]
    env.sim.state.credits = 10.0  # a 5 s 720p clip reserves 27
    with pytest.raises(KlingInsufficientCreditsError) as info:
        caller.submit(env.hook(), text_request())
    assert info.value.code == {"string": "insufficient_quota", "integer": "402"}[shape]
    assert "top up" in info.value.message
    assert env.sim.count(phase="submit") == 1 and env.sim.tasks == []


def test_denied_model(env: SimEnv, caller: Caller) -> None:
    env.sim.denied_models = frozenset({"kling-v3-text-to-video"})
    with pytest.raises(KlingPermissionError) as info:
        caller.submit(env.hook(), text_request())
    assert info.value.code == "model_access_denied"
    assert "kling-v3-text-to-video" in info.value.message
    assert env.sim.count(phase="submit") == 1 and env.sim.tasks == []


def test_simulator_rate_limit_is_honoured(env: SimEnv, caller: Caller, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's own per-key limit (not an injected fault): the hook waits as told, then
    gets through. The simulator's clock is moved by exactly the waits the hook asks for."""
    sleeps = SleepLog(then=env.sim.clock.advance).install(monkeypatch)
    env.sim.rate_limit_rpm = 1
    hook = env.hook()
    first = caller.submit(hook, text_request())
    env.sim.clock.advance(1.0)
    polled = caller.get_task(hook, first.id)
    assert polled.id == first.id
    assert env.sim.count(phase="poll", status=429) == 1
    assert env.sim.count(phase="poll", status=200) == 1
    assert len(sleeps.delays) == 1 and 59 <= sleeps.delays[0] <= 60, sleeps.delays


def test_simulator_rate_limit_exhausted(env: SimEnv, caller: Caller, sleeps: SleepLog) -> None:
    """Same limit, but time does not pass: the hook gives up with the server's wait on the error."""
    env.sim.rate_limit_rpm = 1
    hook = env.hook()
    first = caller.submit(hook, text_request())
    env.sim.clock.advance(1.0)
    with pytest.raises(KlingRateLimitError) as info:
        caller.get_task(hook, first.id)
    err = info.value
    assert err.status_code == 429
    assert err.retry_after == 59
    assert _GAVE_UP in err.message
    assert env.sim.count(phase="poll", status=429) == MAX_ATTEMPTS
    assert all(59 <= d <= 60 for d in sleeps.delays), sleeps.delays
    assert_secret_free(err)


@dataclass(frozen=True)
class _RawRequest:
    """A body the client-side models would refuse, to reach the vendor's own validation."""

    body: dict[str, Any]
    model: str = "kling-v3-text-to-video"

    def to_body(self) -> dict[str, Any]:
        return dict(self.body)


@pytest.mark.parametrize("shape", ["string", "integer"])
def test_vendor_validation_error_names_the_field(env: SimEnv, caller: Caller, shape: str) -> None:
    env.sim.error_shape = shape  # type: ignore[assignment]
    request = _RawRequest({"model": "kling-v3-text-to-video", "prompt": "a cat", "duration": 42})
    with pytest.raises(KlingValidationError) as info:
        caller.submit(env.hook(), request)
    err = info.value
    assert err.status_code == 400
    assert err.param == "duration"
    assert "field: duration" in err.message
    assert env.sim.count(phase="submit") == 1 and env.sim.tasks == []


def test_submit_to_an_unreachable_host_is_retried(
    monkeypatch: pytest.MonkeyPatch, loopback: Loopback, caller: Caller, sleeps: SleepLog
) -> None:
    """Connection refused: provably nothing was sent, so even a submission is tried again."""
    with socket.socket() as unused, open_env("loopback", monkeypatch, loopback) as env:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        env.base_url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        env.connect()
        hook = env.hook()
        with pytest.raises(KlingServerError) as info:
            caller.submit(hook, text_request())
        assert "could not be reached" in info.value.message and "ConnectError" in info.value.message
        assert _GAVE_UP in info.value.message
        assert len(sleeps.delays) == MAX_ATTEMPTS - 1
        ok, message = hook.test_connection()
        assert ok is False and "could not be reached" in message
        assert env.sim.requests == []


@pytest.mark.parametrize("task_id", ["", "task-unified-1/../quota", " task-unified-1", "a/b"])
def test_malformed_task_id_is_refused_without_a_request(env: SimEnv, caller: Caller, task_id: str) -> None:
    with pytest.raises(KlingValidationError) as info:
        caller.get_task(env.hook(), task_id)
    assert info.value.param == "task_id"
    assert env.sim.requests == []


# -- task outcomes ------------------------------------------------------------------------------


def _ticker(env: SimEnv, seconds: float) -> Callable[[Task], None]:
    """An ``on_poll`` that moves the simulated clock ``seconds`` after each poll."""

    def tick(_: Task) -> None:
        env.sim.clock.advance(seconds)

    return tick


def _follow(env: SimEnv, task: Task) -> Task:
    """wait_for_task, the simulated clock moving 1 s per poll."""
    return env.hook().wait_for_task(task.id, on_poll=_ticker(env, 1.0))


@pytest.mark.parametrize("code", sorted(NON_RETRYABLE_TASK_CODES | RETRYABLE_TASK_CODES))
def test_task_failure_per_code(env: SimEnv, sleeps: SleepLog, code: str) -> None:
    env.sim.faults.add(Fault(kind="fail_task", error_code=code, message=f"simulated {code}"))
    hook = env.hook()
    task = hook.submit(text_request())
    failed = _follow(env, task)
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == code
    assert failed.error.message == f"simulated {code}"
    assert failed.video_url is None
    assert is_retryable_task_code(failed.error.code) is (code in RETRYABLE_TASK_CODES)
    assert failed.is_cancelled is (code == "request_cancelled")
    assert env.sim.count(phase="submit") == 1
    assert env.sim.count(phase="poll") == 4  # fails when it would have completed, at t = 3 s
    assert len(sleeps.delays) == 3  # one wait between polls, none after the last


def test_task_no_longer_queryable(env: SimEnv, sleeps: SleepLog) -> None:
    """A task past the vendor's retention answers 404: the wait stops at once, without retrying."""
    env.sim.task_ttl = 2.0
    hook = env.hook()
    task = hook.submit(text_request())
    with pytest.raises(KlingNotFoundError) as info:
        hook.wait_for_task(task.id, on_poll=_ticker(env, 5.0))
    assert task.id in info.value.message and info.value.status_code == 404
    assert env.sim.count(phase="poll") == 2  # pending at t = 0, gone at t = 5
    assert env.sim.count(phase="submit") == 1


def test_task_failure_at_progress(env: SimEnv, sleeps: SleepLog) -> None:
    env.sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation", at_progress=40))
    hook = env.hook()
    task = hook.submit(text_request())
    seen: list[Task] = []

    def on_poll(polled: Task) -> None:
        seen.append(polled)
        env.sim.clock.advance(0.5)

    failed = hook.wait_for_task(task.id, on_poll=on_poll)
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None and failed.error.code == "content_policy_violation"
    assert 39 <= failed.progress <= 41
    assert not is_retryable_task_code(failed.error.code)
    assert all(t.progress < 40 for t in seen[:-1])


def test_unknown_task_code_counts_as_transient(env: SimEnv, sleeps: SleepLog) -> None:
    env.sim.faults.add(Fault(kind="fail_task", error_code="brand_new_code"))
    failed = _follow(env, env.hook().submit(text_request()))
    assert failed.error is not None and failed.error.code == "brand_new_code"
    assert is_retryable_task_code(failed.error.code)


@pytest.mark.parametrize(
    ("style", "status", "code"),
    [("cancelled", TaskStatus.CANCELLED, None), ("failed", TaskStatus.FAILED, "request_cancelled")],
)
@pytest.mark.parametrize("how", ["fault", "simulator-style", "cancel-call"])
def test_cancellation(
    env: SimEnv, sleeps: SleepLog, style: str, status: TaskStatus, code: str | None, how: str
) -> None:
    hook = env.hook()
    if how == "fault":
        env.sim.faults.add(Fault(kind="cancel_task", cancel_as=style, at_progress=30))  # type: ignore[arg-type]
    elif how == "simulator-style":
        env.sim.cancel_style = style  # type: ignore[assignment]
        env.sim.faults.add(Fault(kind="cancel_task"))
    task = hook.submit(text_request())
    if how == "cancel-call":
        env.sim.clock.advance(1.0)
        assert env.sim.cancel(task.id, as_failed=style == "failed")
    ended = _follow(env, task)
    assert ended.status is status
    assert ended.is_terminal and ended.is_cancelled
    assert ended.video_url is None
    if code is None:
        assert ended.error is None
    else:
        assert ended.error is not None and ended.error.code == code
        assert not is_retryable_task_code(ended.error.code)
    assert env.sim.count(phase="submit") == 1


def test_retry_sleeps_are_async_in_the_async_client(env: SimEnv, sleeps: SleepLog) -> None:
    """The async client waits with asyncio.sleep (recorded by the stand-in), never time.sleep."""
    env.sim.faults.add(Fault(phase="poll", kind="status", status=503, times=2))
    hook = env.hook()
    task = hook.submit(text_request())
    assert sleeps.delays == []
    with Caller.open("async") as caller:
        caller.get_task(hook, task.id)
    assert len(sleeps.delays) == 2
    assert env.sim.count(phase="poll") == 3
    assert API_KEY not in repr(env.sim.requests)
