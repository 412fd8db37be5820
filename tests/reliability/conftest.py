"""Reliability tests: the figures printed at the end of a run (the fault matrix for ``make faults``,
the hostile-input counts), and one real Airflow shared by every slow test that needs one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kling_provider.testing import SimulatorServer

    from .cluster_support import ReliabilityCluster


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .fault_matrix import RESULTS, render
    from .hostile import FIGURES

    if RESULTS:
        terminalreporter.write_sep("=", "Kling fault matrix")
        terminalreporter.write_line(render(RESULTS))
    if FIGURES.tried:
        terminalreporter.write_sep("=", "Kling hostile input")
        terminalreporter.write_line(
            f"inputs tried {FIGURES.tried}: accepted and submitted with a valid body {FIGURES.submitted}, "
            f"rejected by field {FIGURES.rejected_at_parse + FIGURES.rejected_at_execute} "
            f"({FIGURES.rejected_at_parse} when the DAG is parsed, {FIGURES.rejected_at_execute} at execute, "
            f"before any request), undefined connection ids {FIGURES.undefined_connection}, "
            f"s3 output unreachable here {FIGURES.storage_unreachable}, "
            f"other exceptions {FIGURES.crashed - FIGURES.undefined_connection - FIGURES.storage_unreachable}"
        )


# -- one real Airflow for every slow reliability test ---------------------------------------------


@pytest.fixture(scope="session")
def reliability_server() -> Iterator[SimulatorServer]:
    """The simulator (behind :class:`StallingDownloads`) on loopback, accepting only the canary key."""
    from kling_provider.testing import EvoLinkSimulator

    from .cluster_support import StallingDownloads, served
    from .support import CANARY_KEY

    sim = EvoLinkSimulator(api_keys=CANARY_KEY, generation_seconds=20.0, pending_seconds=0.5)
    with served(StallingDownloads(sim)) as server:
        yield server


@pytest.fixture(scope="session")
def reliability_cluster(
    reliability_server: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReliabilityCluster]:
    """Scheduler, triggerer, dag-processor and api-server with tests/dags/kling_reliability_dags.py."""
    from .cluster_support import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("reliability-airflow"), reliability_server.base_url)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(
    reliability_cluster: ReliabilityCluster, reliability_server: SimulatorServer
) -> Iterator[ReliabilityCluster]:
    """The session's cluster with one triggerer (named "triggerer") running, and the simulator's
    settings put back after the test."""
    from .cluster_support import sim_of

    sim = sim_of(reliability_server)
    saved = (sim.generation_seconds, sim.link_lifetime)
    _one_triggerer(reliability_cluster)
    try:
        yield reliability_cluster
    finally:
        sim.faults.clear()
        sim.generation_seconds, sim.link_lifetime = saved
        _one_triggerer(reliability_cluster)


def _one_triggerer(cluster: ReliabilityCluster) -> None:
    for name in [n for n in cluster.processes if n.startswith("triggerer-")]:
        cluster.kill_triggerer(name)
    process = cluster.processes.get("triggerer")
    if process is None or process.poll() is not None:
        cluster.start_triggerer_with_job("triggerer")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the tails of the Airflow components' logs to the report."""
    report = yield
    if report.failed:
        found = getattr(item, "funcargs", {}).get("cluster")
        if found is not None and hasattr(found, "diagnostics"):
            report.sections.append(("Airflow component logs", found.diagnostics()))
    return report
