"""Fault injection, each kind in-process and over real loopback HTTP, with real httpx clients."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kling_provider.testing import (
    DEFAULT_API_KEY,
    EvoLinkSimulator,
    Fault,
    SimClock,
    SimulatedConnectionDrop,
    SimulatedReadTimeout,
    SimulatorServer,
)

BASE = "http://evolink-sim.localhost"
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
T2V = {"model": "kling-v3-text-to-video", "prompt": "A cat running on grass"}
#: Short read timeout so "slow" faults time out fast; plenty for a local answer.
TIMEOUT = httpx.Timeout(5.0, read=0.5)


@dataclass
class Env:
    sim: EvoLinkSimulator
    client: httpx.Client
    mode: str

    def submit(self) -> str:
        response = self.client.post("/v1/videos/generations", json=T2V)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def poll(self, task_id: str) -> httpx.Response:
        return self.client.get(f"/v1/tasks/{task_id}")


@pytest.fixture(params=["in-process", "loopback"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    sim = EvoLinkSimulator(clock=SimClock(speed=0), seed=3)
    if request.param == "in-process":
        with httpx.Client(transport=sim.sync_transport(), base_url=BASE, headers=AUTH, timeout=TIMEOUT) as client:
            yield Env(sim, client, request.param)
    else:
        with (
            SimulatorServer(sim) as server,
            httpx.Client(base_url=server.base_url, headers=AUTH, timeout=TIMEOUT) as client,
        ):
            yield Env(sim, client, request.param)


# -- status -----------------------------------------------------------------------------------


def test_status_burst_then_recovery(env: Env) -> None:
    task_id = env.submit()
    fault = env.sim.faults.add(Fault(phase="poll", kind="status", status=503, times=2))
    for _ in range(2):
        response = env.poll(task_id)
        assert response.status_code == 503
        assert response.json()["error"] == {
            "code": "service_unavailable",
            "message": "Service temporarily unavailable",
            "type": "api_error",
        }
    assert env.poll(task_id).status_code == 200
    assert fault.hits == 2 and fault.exhausted and len(env.sim.faults) == 0
    assert [r.status for r in env.sim.requests] == [200, 503, 503, 200]
    assert [r.fault for r in env.sim.requests] == [None, "status", "status", None]


def test_status_429_with_and_without_retry_after(env: Env) -> None:
    env.sim.faults.add(Fault(phase="submit", kind="status", status=429, retry_after=7))
    env.sim.faults.add(Fault(phase="submit", kind="status", status=429))
    first = env.client.post("/v1/videos/generations", json=T2V)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    second = env.client.post("/v1/videos/generations", json=T2V)
    assert second.status_code == 429 and "Retry-After" not in second.headers
    assert env.sim.tasks == []  # an unprocessed request creates nothing


def test_integer_shape_with_retry_hint(env: Env) -> None:
    env.sim.faults.add(Fault(phase="any", kind="status", status=429, error_shape="integer", retry_hint=60))
    body = env.client.post("/v1/videos/generations", json=T2V).json()
    assert body["error"]["code"] == 429
    assert body["error"]["fallback_suggestion"] == "retry after 60 seconds"
    assert "param" in body["error"]


@pytest.mark.parametrize(("status", "code"), [(500, "internal_error"), (502, "upstream_error"), (401, "unauthorized")])
def test_status_codes_carry_the_vendor_code(env: Env, status: int, code: str) -> None:
    env.sim.faults.add(Fault(phase="poll", kind="status", status=status))
    response = env.poll("task-unified-1-abcdefgh")
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_processed_status_fault_creates_the_task_then_fails(env: Env) -> None:
    env.sim.faults.add(Fault(phase="submit", kind="status", status=500, processed=True))
    assert env.client.post("/v1/videos/generations", json=T2V).status_code == 500
    assert len(env.sim.tasks) == 1 and env.sim.credits_spent == 27.0
    assert env.sim.requests[0].task_id == env.sim.tasks[0].id


def test_status_faults_on_file_phases(env: Env) -> None:
    env.sim.faults.add(Fault(phase="upload", kind="status", status=503, retry_hint=5))
    env.sim.faults.add(Fault(phase="quota", kind="status", status=500))
    upload = env.client.post("/api/v1/files/upload/base64", json={"base64_data": "AAAA"})
    assert upload.status_code == 503
    assert upload.json() == {"success": False, "code": 503, "msg": "Service Unavailable, retry after 5 seconds"}
    assert env.client.get("/api/v1/files/quota").json()["success"] is False


# -- slow -------------------------------------------------------------------------------------


def test_slow_poll_times_out_the_client(env: Env) -> None:
    task_id = env.submit()
    env.sim.faults.add(Fault(phase="poll", kind="slow", delay=30))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as caught:
        env.poll(task_id)
    assert time.monotonic() - started < 5
    if env.mode == "in-process":
        assert isinstance(caught.value, SimulatedReadTimeout)
    assert env.poll(task_id).status_code == 200
    assert env.sim.requests[1].status is None and env.sim.requests[1].fault == "slow"


def test_slow_but_in_time_answers_late(env: Env) -> None:
    task_id = env.submit()
    env.sim.faults.add(Fault(phase="poll", kind="slow", delay=0.2))
    started = time.monotonic()
    assert env.poll(task_id).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_slow_submit_still_creates_the_task(env: Env) -> None:
    env.sim.faults.add(Fault(phase="submit", kind="slow", delay=30))
    with pytest.raises(httpx.ReadTimeout):
        env.client.post("/v1/videos/generations", json=T2V)
    assert len(env.sim.tasks) == 1
    assert env.sim.requests[0].task_id == env.sim.tasks[0].id


def test_slow_unprocessed_request_ends_in_a_gateway_timeout(env: Env) -> None:
    env.sim.faults.add(Fault(phase="submit", kind="slow", delay=0.05, processed=False))
    response = env.client.post("/v1/videos/generations", json=T2V)
    assert response.status_code == 504 and env.sim.tasks == []


# -- drop -------------------------------------------------------------------------------------


def test_dropped_poll_is_a_transport_error(env: Env) -> None:
    task_id = env.submit()
    env.sim.faults.add(Fault(phase="poll", kind="drop"))
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        env.poll(task_id)
    assert isinstance(caught.value, httpx.TransportError)
    if env.mode == "in-process":
        assert isinstance(caught.value, SimulatedConnectionDrop)
    assert env.poll(task_id).status_code == 200  # the next connection works
    assert (env.sim.requests[1].status, env.sim.requests[1].fault) == (None, "drop")


def test_dropped_submit_creates_nothing(env: Env) -> None:
    env.sim.faults.add(Fault(phase="submit", kind="drop"))
    with pytest.raises(httpx.TransportError):
        env.client.post("/v1/videos/generations", json=T2V)
    assert env.sim.tasks == []


@pytest.mark.parametrize(("lost_as", "error"), [("drop", httpx.RemoteProtocolError), ("timeout", httpx.ReadTimeout)])
def test_lost_submit_response_creates_and_bills_the_task(env: Env, lost_as: str, error: type[Exception]) -> None:
    env.sim.faults.add(Fault(kind="lost_submit_response", lost_as=lost_as, delay=30))  # type: ignore[arg-type]
    with pytest.raises(error):
        env.client.post("/v1/videos/generations", json=T2V)
    (task,) = env.sim.tasks
    assert env.sim.credits_spent == 27.0
    assert env.sim.count(method="POST", phase="submit") == 1
    assert env.poll(task.id).status_code == 200  # it exists: a client that lists/polls would find it


def test_dropped_download_breaks_mid_body(env: Env) -> None:
    task_id = env.submit()
    env.sim.fast_forward()
    url = env.poll(task_id).json()["results"][0]
    env.sim.faults.add(Fault(phase="download", kind="drop"))
    with pytest.raises(httpx.RemoteProtocolError), env.client.stream("GET", url) as response:
        if env.mode == "loopback":
            assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
            assert int(response.headers["content-length"]) > 1000
        response.read()
    assert env.client.get(url).status_code == 200


# -- malformed --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("malformed", "status", "expected_status"),
    [("html", None, 502), ("html", 200, 200), ("empty", None, 200), ("invalid_json", None, 200)],
)
def test_malformed_bodies(env: Env, malformed: str, status: int | None, expected_status: int) -> None:
    task_id = env.submit()
    env.sim.faults.add(Fault(phase="poll", kind="malformed", malformed=malformed, status=status))  # type: ignore[arg-type]
    response = env.poll(task_id)
    assert response.status_code == expected_status
    if malformed == "html":
        assert response.headers["content-type"].startswith("text/html") and b"<html>" in response.content
    elif malformed == "empty":
        assert response.content == b""
    with pytest.raises(ValueError):
        response.json()


# -- selection --------------------------------------------------------------------------------


def test_after_skips_the_first_matching_requests(env: Env) -> None:
    task_id = env.submit()
    env.sim.faults.add(Fault(phase="poll", kind="status", status=500, after=2))
    assert [env.poll(task_id).status_code for _ in range(4)] == [200, 200, 500, 200]


def test_task_id_selects_one_task(env: Env) -> None:
    a, b = env.submit(), env.submit()
    env.sim.faults.add(Fault(phase="poll", kind="status", status=502, task_id=b, rate=1.0))
    assert [env.poll(a).status_code, env.poll(b).status_code, env.poll(b).status_code] == [200, 502, 502]


def test_any_phase_hits_the_next_request_whatever_it_is(env: Env) -> None:
    env.sim.faults.add(Fault(kind="status", status=503))
    assert env.client.get("/api/v1/files/quota").status_code == 503
    assert env.client.get("/api/v1/files/quota").status_code == 200


def test_probabilistic_faults_are_seeded() -> None:
    def pattern() -> list[int]:
        sim = EvoLinkSimulator(clock=SimClock(speed=0), seed=11)
        sim.faults.add(Fault(phase="poll", kind="status", status=503, rate=0.3))
        with httpx.Client(transport=sim.sync_transport(), base_url=BASE, headers=AUTH) as client:
            return [client.get("/v1/tasks/task-unified-1-abcdefgh").status_code for _ in range(200)]

    first = pattern()
    assert first == pattern()
    assert 35 <= first.count(503) <= 85  # unlimited hits at ~30 %


def test_fault_definitions_are_checked() -> None:
    with pytest.raises(ValueError):
        Fault(kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault(phase="everywhere")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault(rate=1.5)
    with pytest.raises(ValueError):
        Fault(phase="poll", kind="lost_submit_response")
    assert Fault(kind="lost_submit_response").phase == "submit"
    assert Fault().limit == 1 and Fault(rate=0.1).limit is None and Fault(times=3, rate=0.1).limit == 3


def test_fault_set_add_remove_clear() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0))
    fault = sim.faults.add(phase="poll", kind="drop", times=5)
    assert isinstance(fault, Fault) and len(sim.faults) == 1 and list(sim.faults) == [fault]
    sim.faults.remove(fault)
    sim.faults.add(Fault())
    sim.faults.clear()
    assert len(sim.faults) == 0


# -- async in-process -------------------------------------------------------------------------


async def test_async_transport_raises_the_same_errors() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0))
    async with httpx.AsyncClient(
        transport=sim.async_transport(), base_url=BASE, headers=AUTH, timeout=TIMEOUT
    ) as client:
        sim.faults.add(Fault(kind="lost_submit_response"))
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v1/videos/generations", json=T2V)
        task_id = sim.tasks[0].id
        sim.faults.add(Fault(phase="poll", kind="slow", delay=60))
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"/v1/tasks/{task_id}")
        sim.faults.add(Fault(phase="poll", kind="malformed", malformed="empty"))
        response = await client.get(f"/v1/tasks/{task_id}")
        assert response.status_code == 200 and response.content == b""
        ok: Any = (await client.get(f"/v1/tasks/{task_id}")).json()
        assert ok["status"] == "pending"
