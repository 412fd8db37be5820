"""Fixtures for the end-to-end tests: a simulator owned by the test process, one real Airflow per module.

The simulator runs in this process (``SimulatorServer`` on loopback), so a test can count the
requests Airflow's processes sent it and change how long generations take. The Airflow
components reach it through ``AIRFLOW_CONN_KLING_DEFAULT``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .cluster import AirflowCluster

if TYPE_CHECKING:
    from kling_provider.testing import SimulatorServer

DAGS = Path(__file__).resolve().parent / "dags"
SIM_KEY = "sk-sim-local"  # the simulator's DEFAULT_API_KEY
#: Default simulated generation length: long enough to see a task wait (deferred) for a while.
DEFAULT_GENERATION_SECONDS = 6.0
_CLUSTER_FIXTURE = "airflow_cluster"
#: The DAGs in ``dags/``; all must be parsed before a test starts.
DAG_IDS = ("kling_e2e_deferrable", "kling_e2e_blocking", "kling_e2e_worker_retry", "kling_e2e_triggerer_restart")


@pytest.fixture(scope="module")
def simulator_server() -> Iterator[SimulatorServer]:
    """EvoLink's API and file API on a loopback port, on real time."""
    from kling_provider.testing import EvoLinkSimulator, SimulatorServer

    sim = EvoLinkSimulator(api_keys=SIM_KEY, generation_seconds=DEFAULT_GENERATION_SECONDS, pending_seconds=0.5)
    with SimulatorServer(sim) as server:
        yield server


@pytest.fixture
def simulator(simulator_server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The module's simulator server; settings a test changes are put back afterwards."""
    sim = simulator_server.sim
    saved = sim.generation_seconds
    try:
        yield simulator_server
    finally:
        sim.generation_seconds = saved


@contextlib.contextmanager
def running_cluster(
    root: Path,
    simulator_server: SimulatorServer,
    dag_files: Iterable[Path],
    dag_ids: Iterable[str],
    **options: Any,
) -> Iterator[AirflowCluster]:
    """A started Airflow whose ``kling_default`` is the simulator, with ``dag_ids`` parsed; stopped after."""
    base_url = simulator_server.base_url
    cluster = AirflowCluster(
        root,
        connections={
            "kling_default": {
                "conn_type": "kling",
                "host": base_url,
                "password": SIM_KEY,
                "extra": {"files_host": base_url},
            }
        },
        **options,
    )
    try:
        cluster.add_dag_files(dag_files)
        try:
            cluster.start()
            for dag_id in dag_ids:
                cluster.wait_for_dag(dag_id)
        except Exception as err:
            pytest.fail(f"the Airflow cluster did not start: {err}\n{cluster.diagnostics()}", pytrace=False)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def airflow_cluster(
    simulator_server: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowCluster]:
    """Scheduler, triggerer, dag-processor and api-server on a fresh home, with the test DAGs parsed."""
    with running_cluster(
        tmp_path_factory.mktemp("airflow-e2e"), simulator_server, sorted(DAGS.glob("*.py")), DAG_IDS
    ) as cluster:
        yield cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, attach the tails of the Airflow components' logs to the report."""
    report = yield
    if report.failed:
        cluster = getattr(item, "funcargs", {}).get(_CLUSTER_FIXTURE)
        if isinstance(cluster, AirflowCluster):
            report.sections.append(("Airflow component logs", cluster.diagnostics()))
    return report
