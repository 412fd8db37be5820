"""The loopback server, the command line, the pytest fixtures and the in-process transports' threads."""

from __future__ import annotations

import gc
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kling_provider.testing import DEFAULT_API_KEY, EvoLinkSimulator, SimClock, SimulatorServer
from kling_provider.testing.pytest_plugin import IN_PROCESS_BASE_URL, KlingTestConnection

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
T2V = {"model": "kling-v3-text-to-video", "prompt": "A cat running on grass"}


def wait_for(predicate: Any, deadline_s: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- SimulatorServer --------------------------------------------------------------------------


def test_server_serves_and_stops_cleanly() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0))
    server = SimulatorServer(sim)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.port and server.base_url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError):
            server.start()
        response = httpx.post(f"{server.base_url}/v1/videos/generations", json=T2V, headers=AUTH)
        assert response.status_code == 200
        assert response.json()["id"] == sim.tasks[0].id
        port = server.port
    assert server.port is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/files/quota", headers=AUTH, timeout=2)
    server.stop()  # twice is fine


def test_server_threads_do_not_outlive_it() -> None:
    before = {t.name for t in threading.enumerate()}
    with SimulatorServer(EvoLinkSimulator()) as server:
        assert f"kling-sim-{server.port}" in {t.name for t in threading.enumerate()}
    assert {t.name for t in threading.enumerate()} - before == set()


def test_stop_does_not_wait_for_a_held_request() -> None:
    from kling_provider.testing import Fault

    sim = EvoLinkSimulator(clock=SimClock(speed=0))
    sim.faults.add(Fault(phase="quota", kind="slow", delay=60))
    server = SimulatorServer(sim).start()
    failure: list[BaseException] = []

    def held() -> None:
        try:
            httpx.get(f"{server.base_url}/api/v1/files/quota", headers=AUTH, timeout=30)
        except httpx.HTTPError as err:
            failure.append(err)

    thread = threading.Thread(target=held)
    thread.start()
    wait_for(lambda: sim.count(phase="quota") == 1, 5, "the held request to arrive")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    thread.join(10)
    assert not thread.is_alive()


def test_the_same_simulator_in_process_and_over_loopback() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0))
    with SimulatorServer(sim) as server, httpx.Client(base_url=server.base_url, headers=AUTH) as remote:
        task_id = remote.post("/v1/videos/generations", json=T2V).json()["id"]
        with httpx.Client(transport=sim.sync_transport(), base_url=IN_PROCESS_BASE_URL, headers=AUTH) as local:
            assert local.get(f"/v1/tasks/{task_id}").json()["status"] == "pending"
        sim.fast_forward()
        url = remote.get(f"/v1/tasks/{task_id}").json()["results"][0]
        assert url.startswith(f"{server.base_url}/files/results/")  # built from the asking host
        video = httpx.get(url)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert int(video.headers["content-length"]) == len(video.content)


def test_sync_transport_thread_ends_with_the_client() -> None:
    sim = EvoLinkSimulator(clock=SimClock(speed=0))

    def transport_threads() -> int:
        return sum(t.name == "kling-sim-transport" and t.is_alive() for t in threading.enumerate())

    base = transport_threads()
    with httpx.Client(transport=sim.sync_transport(), base_url=IN_PROCESS_BASE_URL, headers=AUTH) as client:
        assert client.get("/api/v1/files/quota").status_code == 200
        assert transport_threads() == base + 1
    assert transport_threads() == base
    forgotten = sim.sync_transport()
    httpx.Client(transport=forgotten).get(f"{IN_PROCESS_BASE_URL}/api/v1/files/quota", headers=AUTH)
    del forgotten
    gc.collect()
    wait_for(lambda: transport_threads() == base, 5, "the transport thread to stop after garbage collection")


# -- pytest fixtures --------------------------------------------------------------------------


def test_kling_simulator_fixture_stands_still(kling_simulator: EvoLinkSimulator) -> None:
    assert kling_simulator.clock.manual and kling_simulator.generation_seconds == 3.0
    assert kling_simulator.api_keys == {DEFAULT_API_KEY}


@pytest.mark.kling_simulator(error_shape="integer", clock_speed=5, rate_limit_rpm=10)
def test_marker_configures_the_fixtures(kling_simulator: EvoLinkSimulator) -> None:
    assert kling_simulator.error_shape == "integer"
    assert kling_simulator.clock.speed == 5 and kling_simulator.rate_limit_rpm == 10


def test_kling_connection_points_airflow_at_the_server(kling_connection: KlingTestConnection) -> None:
    value = json.loads(os.environ["AIRFLOW_CONN_KLING_DEFAULT"])
    assert value == {
        "conn_type": "kling",
        "host": kling_connection.base_url,
        "password": DEFAULT_API_KEY,
        "extra": {"files_host": kling_connection.base_url},
    }
    assert kling_connection.conn_id == "kling_default"
    assert DEFAULT_API_KEY not in repr(kling_connection)
    from airflow.models.connection import Connection

    conn = Connection.from_json(os.environ["AIRFLOW_CONN_KLING_DEFAULT"], conn_id="kling_default")
    assert conn.conn_type == "kling" and conn.host == kling_connection.base_url
    assert conn.password == DEFAULT_API_KEY and conn.extra_dejson == {"files_host": kling_connection.base_url}
    # It is a real server on real time with ~1 s tasks.
    with httpx.Client(base_url=kling_connection.base_url, headers=AUTH) as client:
        task_id = client.post("/v1/videos/generations", json=T2V).json()["id"]
        done = wait_for(
            lambda: (body := client.get(f"/v1/tasks/{task_id}").json())["status"] == "completed" and body,
            10,
            "a task on the real-time server",
        )
        assert client.get(done["results"][0]).status_code == 200


def test_kling_inprocess_connection(kling_inprocess_connection: KlingTestConnection) -> None:
    value = json.loads(os.environ[kling_inprocess_connection.env_var])
    assert value["host"] == value["extra"]["files_host"] == IN_PROCESS_BASE_URL
    sim = kling_inprocess_connection.sim
    with httpx.Client(transport=sim.sync_transport(), base_url=value["host"], headers=AUTH) as client:
        assert client.post("/v1/videos/generations", json=T2V).status_code == 200
    assert sim.count(phase="submit") == 1


# -- command line -----------------------------------------------------------------------------


@pytest.fixture
def cli() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kling_provider.testing", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        # selectors, not select.select: a long session may hold descriptors above select()'s 1024.
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(20), "the simulator printed no base URL within 20 s"
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), base_url
        wait_for(lambda: _answers(base_url), 20, "the command-line simulator to answer")
        return proc, base_url

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/api/v1/files/quota", timeout=1).status_code == 401
    except httpx.TransportError:
        return False


def test_cli_serves_quick_tasks_by_default(cli: Any) -> None:
    proc, base_url = cli("--generation-seconds", "0.5")
    with httpx.Client(base_url=base_url, headers=AUTH) as client:
        created = client.post("/v1/videos/generations", json=T2V).json()
        assert created["task_info"]["estimated_time"] == 1  # 0.5 s, rounded up
        done = wait_for(
            lambda: (body := client.get(f"/v1/tasks/{created['id']}").json())["status"] == "completed" and body,
            15,
            "a task on the command-line simulator",
        )
        video = client.get(done["results"][0])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    proc.terminate()
    assert proc.wait(timeout=10) in (0, -15)  # uvicorn shuts down, then re-raises SIGTERM
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_cli_options(cli: Any) -> None:
    _, base_url = cli("--error-shape", "integer", "--api-key", "sk-mine", "--realistic", "--rate-limit-rpm", "2")
    denied = httpx.post(f"{base_url}/v1/videos/generations", json=T2V, headers=AUTH)
    assert denied.status_code == 401 and denied.json()["error"]["code"] == 401
    mine = {"Authorization": "Bearer sk-mine"}
    created = httpx.post(f"{base_url}/v1/videos/generations", json=T2V, headers=mine).json()
    assert 60 <= created["task_info"]["estimated_time"] <= 180
    assert httpx.get(f"{base_url}/v1/tasks/{created['id']}", headers=mine).status_code == 200  # 2nd of 2
    limited = httpx.get(f"{base_url}/v1/tasks/{created['id']}", headers=mine)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kling_provider.testing", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for flag in ("--realistic", "--speed", "--error-shape", "--accept-any-key", "--rate-limit-rpm", "--link-lifetime"):
        assert flag in result.stdout
