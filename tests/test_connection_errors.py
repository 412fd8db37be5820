"""Errors name the connection (``kling_conn_id``), never the key; a missing one says how to create it.

Real HTTP to the simulator on loopback; connections come from ``AIRFLOW_CONN_*`` variables, as a
deployment's would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kling_provider.exceptions import (
    KlingAuthenticationError,
    KlingConnectionNotFoundError,
    KlingValidationError,
)
from kling_provider.hooks.kling import KlingHook

CONN_ID = "kling_video_prod"
WRONG_KEY = "sk-wrong-canary-7f3a"
pytestmark = [pytest.mark.usefixtures("airflow_db")]


def _connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "kling", **fields}))


def test_a_refused_key_names_the_connection_not_the_key(
    kling_simulator_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = kling_simulator_server.base_url
    _connect(monkeypatch, CONN_ID, host=base, password=WRONG_KEY, extra={"files_host": base})
    with KlingHook(CONN_ID) as hook, pytest.raises(KlingAuthenticationError) as err:
        hook.get_task("task-unified-1-abc")
    assert f"check the API key in the password field of connection '{CONN_ID}'" in err.value.message
    assert WRONG_KEY not in str(err.value) and WRONG_KEY not in repr(err.value)
    assert kling_simulator_server.sim.count(status=401) == 1


def test_a_missing_key_and_a_bad_host_name_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _connect(monkeypatch, CONN_ID, password="")
    with pytest.raises(KlingAuthenticationError, match=f"password field of connection '{CONN_ID}'"):
        KlingHook(CONN_ID).settings  # noqa: B018 - the lookup is the point
    _connect(monkeypatch, CONN_ID, host="http://api.evolink.ai", password="sk-x")
    with pytest.raises(KlingValidationError, match=f"connection '{CONN_ID}': host: plain http://") as err:
        KlingHook(CONN_ID).settings  # noqa: B018
    assert err.value.param == "host"


def _assert_how_to_create(message: str, conn_id: str) -> None:
    assert f"Connection '{conn_id}' (kling_conn_id) is not defined" in message
    assert f'AIRFLOW_CONN_{conn_id.upper()}=\'{{"conn_type": "kling", "password": ' in message
    assert "Admin > Connections" in message and "Kling video (EvoLink)" in message
    assert f"airflow connections add {conn_id} --conn-type kling" in message


def test_a_missing_connection_says_how_to_create_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_KLING_NOWHERE", raising=False)
    with pytest.raises(KlingConnectionNotFoundError) as err:
        KlingHook("kling_nowhere").get_task("task-unified-1-abc")
    _assert_how_to_create(err.value.message, "kling_nowhere")
    assert err.value.conn_id == "kling_nowhere"

    async def lookup() -> None:
        hook = KlingHook("kling_nowhere")
        try:
            await hook.aget_task("task-unified-1-abc")
        finally:
            await hook.aclose()

    with pytest.raises(KlingConnectionNotFoundError) as async_err:
        asyncio.run(lookup())
    _assert_how_to_create(async_err.value.message, "kling_nowhere")


@pytest.mark.kling_simulator(generation_seconds=1)
@pytest.mark.newer_airflow("3.0's dag.test() logs the task's error where caplog/capfd do not see it")
def test_an_operator_with_a_missing_connection_fails_before_any_request(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_compat import DagBag

    dag = DagBag(str(Path(__file__).parent / "dags" / "kling_rerun_dags.py")).get_dag("rerun_missing_connection")
    assert dag is not None
    run = dag.test(run_conf={"output_uri": str(tmp_path / "v.mp4")})
    assert "failed" in str(run.state)
    assert kling_connection.sim.requests == []
    _assert_how_to_create(capfd.readouterr().out.replace("\\'", "'"), "kling_nowhere")
