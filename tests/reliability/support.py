"""Shared by the reliability tests: a distinctive API key, the simulator server, DAG runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kling_provider.testing import EvoLinkSimulator, SimulatorServer

#: The API key every reliability test uses: distinctive, so a scan for it finds only leaks.
CANARY_KEY = "sk-kling-canary-5f0c2e7a9b14d36e8a71c0f4"
DAGS = Path(__file__).resolve().parents[1] / "dags"
DAG_FILE = DAGS / "kling_reliability_dags.py"
#: No reliability test needs the process-wide request spacing; it would only make runs slow.
FAST_RPM = 6_000_000


def connection_json(base_url: str, *, key: str = CANARY_KEY, timeout: float = 30.0) -> dict[str, Any]:
    return {
        "conn_type": "kling",
        "host": base_url,
        "password": key,
        "extra": {"files_host": base_url, "timeout": timeout, "rate_limit_rpm": FAST_RPM},
    }


@contextmanager
def simulator_server(**options: Any) -> Iterator[SimulatorServer]:
    """A loopback simulator that accepts only :data:`CANARY_KEY`, on real time."""
    options.setdefault("generation_seconds", 0.3)
    options.setdefault("pending_seconds", 0.05)
    with SimulatorServer(EvoLinkSimulator(api_keys=CANARY_KEY, **options)) as server:
        yield server


@contextmanager
def kling_default(base_url: str, *, timeout: float = 30.0) -> Iterator[None]:
    """``kling_default`` pointing at ``base_url`` for the duration of the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection_json(base_url, timeout=timeout)))
        yield


def load_dag(dag_id: str) -> Any:
    """A DAG from tests/dags/kling_reliability_dags.py (parsed once per process)."""
    return _dagbag().get_dag(dag_id)


_BAG: Any = None


def _dagbag() -> Any:
    global _BAG
    if _BAG is None:
        from airflow_compat import DagBag

        _BAG = DagBag(str(DAG_FILE))
        assert not _BAG.import_errors, _BAG.import_errors
    return _BAG


def run_dag_test(dag_id: str, conf: dict[str, str], task_id: str = "generate") -> Any:
    """``dag.test()`` one run of ``dag_id``; return the task instance ``task_id``."""
    dag = load_dag(dag_id)
    assert dag is not None, f"{dag_id} is not in {DAG_FILE}"
    run = dag.test(run_conf=conf)
    (ti,) = [t for t in run.get_task_instances() if t.task_id == task_id]
    return ti


def dag_constants() -> Any:
    """tests/dags/kling_reliability_dags.py as a module (its constants: FIFTY, PROBE_TIMEOUT...)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kling_reliability_dags", DAG_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
