"""A real Airflow for the reliability tests: tests/e2e's harness, plus what these tests need.

:class:`ReliabilityCluster` adds a second triggerer (the e2e harness runs one of each component)
and maps triggerer job ids to processes. :class:`StallingDownloads` wraps the simulator app so a
result download sends part of the video and then holds the connection open, for killing a task
process mid-download with bytes already on disk.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from e2e.cluster import AirflowCluster, wait_for

from kling_provider.testing import EvoLinkSimulator, SimulatorServer

from .support import DAG_FILE, connection_json

__all__ = ["ReliabilityCluster", "StallingDownloads", "start_cluster", "wait_for"]

#: Client timeout of the cluster's connection: long, so a held download is killed, not timed out.
CLUSTER_CLIENT_TIMEOUT = 60.0


class ReliabilityCluster(AirflowCluster):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Triggerer process name -> the TriggererJob id it registered.
        self.job_of: dict[str, int] = {}

    def start_triggerer(self, name: str) -> subprocess.Popen[bytes]:
        """Start one more ``airflow triggerer`` process, tracked (and stopped) as ``name``."""
        return self.spawn(name, ["triggerer"])

    def kill_triggerer(self, name: str) -> None:
        """SIGKILL a triggerer process (and its children) and stop tracking it: it is meant to be dead."""
        self.stop_component(name, sig=signal.SIGKILL)
        self.processes.pop(name, None)
        self.job_of.pop(name, None)

    def triggerer_jobs(self) -> dict[int, dict[str, Any]]:
        """TriggererJob rows by id."""
        rows = self.query("SELECT id, state, latest_heartbeat FROM job WHERE job_type = 'TriggererJob'")
        return {int(r["id"]): r for r in rows}

    def wait_new_triggerer_job(self, known: set[int], *, timeout: float = 90.0) -> int:
        """The id of a TriggererJob that is running and not in ``known`` (a triggerer just started)."""

        def new_job() -> int | None:
            fresh = [i for i, r in self.triggerer_jobs().items() if i not in known and r["state"] == "running"]
            return max(fresh) if fresh else None

        return wait_for("a new triggerer job", new_job, timeout=timeout, check=self.check_alive)

    def start_triggerer_with_job(self, name: str, *, timeout: float = 90.0) -> int:
        """Start a triggerer process as ``name`` (the harness's own when ``name == "triggerer"``) and
        return the id of the job it registered."""
        known = set(self.triggerer_jobs())
        if name == "triggerer":
            self.start_component(name)
        else:
            self.start_triggerer(name)
        self.job_of[name] = self.wait_new_triggerer_job(known, timeout=timeout)
        return self.job_of[name]

    def trigger_rows(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's deferred task instances with their trigger (kwargs decrypted)."""
        rows = self.query(
            "SELECT ti.task_id, ti.map_index, ti.state, ti.try_number, t.id AS trigger_id, t.kwargs, "
            "t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
            "WHERE ti.dag_id = ? AND ti.run_id = ?",
            (dag_id, run_id),
        )
        for row in rows:
            row["kwargs_plain"] = self.decrypt(row["kwargs"])
        return rows

    def task_states(self, dag_id: str, run_id: str) -> dict[int, str | None]:
        """map_index -> state of every task instance of the run."""
        rows = self.query(
            "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        )
        return {int(r["map_index"]): r["state"] for r in rows}


def start_cluster(root: Path, base_url: str, **extra_env: str) -> ReliabilityCluster:
    """A started cluster whose DAGs folder holds tests/dags/kling_reliability_dags.py."""
    connection = connection_json(base_url, timeout=CLUSTER_CLIENT_TIMEOUT)
    connection["extra"]["rate_limit_rpm"] = 1200
    env = {
        # Many short tasks on two cores: more LocalExecutor slots than cores keeps the queue moving
        # while task processes wait on the network.
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "100",
        "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64",
        **extra_env,
    }
    cluster = ReliabilityCluster(root, connections={"kling_default": connection}, extra_env=env)
    cluster.add_dag_files([DAG_FILE])
    try:
        cluster.start()
        cluster.job_of["triggerer"] = cluster.wait_new_triggerer_job(set())
        for dag_id in ("reliability_cluster_deferred", "reliability_fifty", "reliability_load"):
            cluster.wait_for_dag(dag_id, timeout=180)
    except BaseException:
        print(cluster.diagnostics(), file=sys.stderr)
        cluster.stop()
        raise
    return cluster


class StallingDownloads:
    """ASGI wrapper: while armed, a result download sends its headers and the first half of the
    video, then holds the connection open until :meth:`release` (or the client goes away)."""

    def __init__(self, sim: EvoLinkSimulator) -> None:
        self.sim = sim
        self.armed = False
        self.stalled = threading.Event()  # a download is being held now
        self._release = threading.Event()

    def arm(self) -> None:
        """Hold the next result download (and only that one)."""
        self.stalled.clear()
        self._release.clear()
        self.armed = True

    def release(self) -> None:
        self.armed = False
        self._release.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" else ""
        if not (self.armed and path.startswith("/files/results/") and scope.get("method") == "GET"):
            await self.sim(scope, receive, send)
            return
        self.armed = False  # one download is held; the retry's download goes through

        async def half_then_hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                body = message["body"]
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
                self.stalled.set()
                # Set from the test's thread, so a threading.Event, waited for off the event loop.
                await anyio.to_thread.run_sync(self._release.wait, abandon_on_cancel=True)
                return
            await send(message)

        await self.sim(scope, receive, half_then_hold)


@contextmanager
def served(app: Any) -> Iterator[SimulatorServer]:
    """Serve any ASGI app (the simulator, or a wrapper of it) on loopback."""
    with SimulatorServer(app) as server:
        yield server


def sim_of(server: SimulatorServer) -> EvoLinkSimulator:
    app = server.sim
    return app.sim if isinstance(app, StallingDownloads) else app
