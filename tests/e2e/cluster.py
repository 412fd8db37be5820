"""A real Airflow for end-to-end tests: scheduler, triggerer, dag-processor and api-server.

Each component is its own process group on a throwaway ``AIRFLOW_HOME`` (SQLite, LocalExecutor),
so a test can kill one (a triggerer, a task process) and start it again. Given a PostgreSQL
database and a Redis broker (tests/e2e/services.py), the same cluster runs production-shaped:
PostgreSQL metadata database, Celery executor, and any number of Celery workers and triggerers,
each named ``<component>-<n>`` (``celery-worker-2``, ``triggerer-2``). The REST API is
reached without login (simple auth manager, everyone admin) unless the cluster is given a
``login``: then the simple auth manager knows that one admin user and password (the real login
page, as a user sees it) and :attr:`AirflowCluster.api` sends a token obtained with them. The
metadata database is read directly (read-only) for what the API does not show, such as the
``trigger`` table.

Waiting is always polling with a deadline (:func:`wait_for`); every component writes its
output to a file under ``<root>/component-logs`` and :meth:`AirflowCluster.diagnostics`
returns their tails for a failure report.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
import psutil
from cryptography.fernet import Fernet

__all__ = ["COMPONENTS", "PRODUCTION_COMPONENTS", "AirflowCluster", "free_port", "wait_for"]

T = TypeVar("T")

#: The long-running Airflow components, in start order.
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
#: What a production-shaped cluster runs: two Celery workers and two triggerers.
PRODUCTION_COMPONENTS: tuple[str, ...] = (*COMPONENTS, "triggerer-2", "celery-worker", "celery-worker-2")
#: Components that may run as several numbered processes (``triggerer-2``).
_KINDS = (*COMPONENTS, "celery-worker")
#: ``/api/v2/monitor/health`` section of each component that reports a heartbeat there.
_HEALTH_SECTIONS = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    check: Callable[[], None] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, or fail after ``timeout`` s.

    ``check`` runs on every round and may raise to stop early (a component died, the DAG failed).
    HTTP and database errors from ``probe`` count as "not yet" and are reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if check is not None:
            check()
        try:
            value = probe()
        except (httpx.HTTPError, *_db_errors()) as err:
            last_error, value = err, None
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise TimeoutError(f"{what}: not within {timeout:g} s{detail}")
        time.sleep(interval)


class AirflowCluster:
    """Airflow's components as separate processes on a fresh home under ``root``.

    :param root: an empty directory for the home, the DAGs folder and the component logs.
    :param connections: connection id -> JSON connection (``AIRFLOW_CONN_<ID>``), seen by every
        component and every task.
    :param extra_env: more environment (``AIRFLOW__SECTION__KEY``) on top of the defaults.
    :param login: ``(username, password)`` of an admin user: the API and UI require a login
        (without it, everyone is admin and nothing asks for one).
    :param database_url: SQLAlchemy URL of a PostgreSQL metadata database (default: SQLite in
        the home). ``database_dsn`` is the same database for :meth:`query` (psycopg2).
    :param celery_broker_url: a Redis URL: the Celery executor instead of LocalExecutor, its
        results in the metadata database; start ``celery-worker`` processes to run tasks.
    """

    def __init__(
        self,
        root: Path,
        *,
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        extra_env: Mapping[str, str] | None = None,
        login: tuple[str, str] | None = None,
        database_url: str | None = None,
        database_dsn: str | None = None,
        celery_broker_url: str | None = None,
        worker_concurrency: int = 8,
    ) -> None:
        if (database_url is None) != (database_dsn is None):
            raise ValueError("database_url and database_dsn go together")
        if celery_broker_url is not None and database_url is None:
            raise ValueError("the Celery executor needs a database other than SQLite")
        self.root = root
        self.home = root / "airflow-home"
        self.dags_folder = root / "dags"
        self.logs_dir = root / "component-logs"
        for folder in (self.home, self.dags_folder, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.db_path = self.home / "airflow.db"
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.fernet_key = Fernet.generate_key().decode()
        self.login = login
        self.database_url = database_url or f"sqlite:///{self.db_path}"
        self.database_dsn = database_dsn
        self.celery_broker_url = celery_broker_url
        self.worker_concurrency = worker_concurrency
        self.env = self._environment(connections or {}, extra_env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: Every log file a component wrote, oldest first (a restart starts a new file).
        self.component_logs: dict[str, list[Path]] = {}
        self._log_handles: list[IO[bytes]] = []
        self._api: httpx.Client | None = None
        #: Components stopped on purpose (not an error for :meth:`check_alive` until restarted).
        self.stopped: set[str] = set()

    # -- set-up -------------------------------------------------------------------------------

    def _environment(self, connections: Mapping[str, Mapping[str, Any]], extra: Mapping[str, str]) -> dict[str, str]:
        # Nothing Airflow-specific leaks in from the test process (its own AIRFLOW_HOME, connections).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                # Log servers on free ports: other Airflows may run on this machine.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
                # New DAG files are seen within seconds; a parsed file is not re-parsed constantly.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # A killed triggerer's triggers move to a new one after 10 s instead of 30 s.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            }
        )
        if self.login is not None:
            # The simple auth manager reads its users from config and their passwords from a JSON
            # file, generating a password only for a user the file does not list.
            username, password = self.login
            passwords_file = self.home / "simple_auth_manager_passwords.json"
            passwords_file.write_text(json.dumps({username: password}) + "\n")
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{username}:admin"
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords_file)
        if self.celery_broker_url is not None:
            env.update(self._celery_environment())
        for conn_id, value in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(value))
        env.update(extra)
        return env

    def _celery_environment(self) -> dict[str, str]:
        assert self.celery_broker_url is not None and self.database_url is not None
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.celery_broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            # A message a killed worker had taken comes back after 5 minutes, not the 24 hours
            # Airflow sets; longer than any task runs on a worker here, so no running task is
            # delivered twice (and a try already retried is refused by the execution API anyway).
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "300",
            # A task a worker took but never started (the worker died) is queued again within about
            # a minute; its Celery message would only come back after the visibility timeout.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
        }

    def add_dag_files(self, files: Iterable[Path]) -> list[Path]:
        """Copy DAG files into the DAGs folder (before :meth:`start` they are parsed at once)."""
        copied = []
        for source in files:
            target = self.dags_folder / source.name
            target.write_bytes(source.read_bytes())
            copied.append(target)
        return copied

    def airflow(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run a one-shot ``airflow`` CLI command in this cluster's environment; its output is logged."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        name = "cli-" + "-".join(a for a in args[:2] if not a.startswith("-"))
        (self.logs_dir / f"{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited with {result.returncode}:\n{_tail(result.stdout + result.stderr, 40)}"
            )
        return result

    def start(self, components: Sequence[str] = COMPONENTS, *, timeout: float = 120.0) -> None:
        """Migrate the database, start the components, and wait until each reports healthy."""
        self.airflow("db", "migrate")
        for name in components:
            self.start_component(name)
        self.wait_healthy(components, timeout=timeout)

    def start_component(self, name: str) -> subprocess.Popen[bytes]:
        """Start one component in its own process group, logging to a new file.

        ``name`` is a component (:data:`COMPONENTS`, or ``celery-worker`` on a Celery cluster),
        optionally numbered for a further instance: ``triggerer-2``, ``celery-worker-2``.
        """
        kind = component_kind(name)
        if kind not in _KINDS or (kind == "api-server" and name != kind):
            raise ValueError(f"unknown component {name!r}; one of {_KINDS} (numbered for more: triggerer-2)")
        if kind == "api-server":
            args = [name, "--port", str(self.api_port), "--host", "127.0.0.1"]
        elif kind == "celery-worker":
            if self.celery_broker_url is None:
                raise ValueError("celery-worker needs a cluster with celery_broker_url")
            # Each worker has its own Celery node name; the log server is skipped, as two workers
            # on one machine would want the same port (task logs are local files here anyway).
            args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
            args += ["--concurrency", str(self.worker_concurrency)]
        else:
            args = [kind]
        return self.spawn(name, args)

    def spawn(self, name: str, airflow_args: Sequence[str]) -> subprocess.Popen[bytes]:
        """Run ``airflow <airflow_args>`` as process ``name``: its own process group, a new log file."""
        running = self.processes.get(name)
        if running is not None and running.poll() is None:
            raise RuntimeError(f"{name} is already running (pid {running.pid})")
        logs = self.component_logs.setdefault(name, [])
        log_path = self.logs_dir / f"{name}.{len(logs) + 1}.log"  # triggerer-2.1.log: 1st start of triggerer-2
        logs.append(log_path)
        handle = log_path.open("ab")
        self._log_handles.append(handle)
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *airflow_args],
            env=self.env,
            cwd=self.root,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        self.stopped.discard(name)
        return process

    def stop_component(self, name: str, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Signal a component's whole process group, then make sure every process in it is gone."""
        process = self.processes.get(name)
        if process is None:
            return
        self.stopped.add(name)
        family = _family(process.pid)
        _signal_group(process, sig)
        _reap(process, family, time.monotonic() + timeout)

    def kill_component(self, name: str) -> None:
        """SIGKILL a component and everything it started: no clean shutdown, like a lost machine."""
        self.stop_component(name, sig=signal.SIGKILL)

    def restart_component(self, name: str, *, kill: bool = True, timeout: float = 90.0) -> None:
        """Kill (or stop) a component, start a fresh one, and wait until it reports healthy again."""
        self.stop_component(name, sig=signal.SIGKILL if kill else signal.SIGTERM)
        started = time.time()
        self.start_component(name)
        self.wait_healthy([name], timeout=timeout, heartbeat_after=started)

    def stop(self, *, grace: float = 15.0) -> None:
        """Stop every component at once (SIGTERM, SIGKILL after ``grace`` s). Safe to call twice."""
        families = {name: _family(process.pid) for name, process in self.processes.items()}
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, process in self.processes.items():
            try:
                _reap(process, families[name], deadline)
            except Exception as err:  # keep stopping the others
                print(f"could not stop {name}: {err}", file=sys.stderr)
        self.processes.clear()
        if self._api is not None:
            self._api.close()
            self._api = None
        for handle in self._log_handles:
            handle.close()
        self._log_handles.clear()

    def __enter__(self) -> AirflowCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- health -------------------------------------------------------------------------------

    def check_alive(self, names: Iterable[str] | None = None) -> None:
        """Raise if a component that should be running has exited."""
        for name in names or list(self.processes):
            process = self.processes.get(name)
            if name in self.stopped:
                continue
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with code {process.returncode}")

    def wait_healthy(
        self, components: Iterable[str] = COMPONENTS, *, timeout: float = 120.0, heartbeat_after: float | None = None
    ) -> None:
        """Wait until the API answers and each component reports a healthy heartbeat.

        ``heartbeat_after`` (unix time): only a heartbeat newer than this counts, so a restarted
        component is not mistaken for its predecessor.
        """
        names = list(components)

        def healthy() -> bool | None:
            if not all(self._worker_ready(name) for name in names if component_kind(name) == "celery-worker"):
                return None
            health = self.api.get("/api/v2/monitor/health")
            if health.status_code != 200:
                return None
            body = health.json()
            for name in names:
                section = _HEALTH_SECTIONS.get(component_kind(name))
                if section is None:
                    continue
                info = body.get(section) or {}
                if info.get("status") != "healthy":
                    return None
                if heartbeat_after is not None:
                    beat = _parse_time(info.get(f"latest_{section}_heartbeat"))
                    if beat is None or beat < heartbeat_after:
                        return None
            return True

        wait_for(f"components {names} healthy", healthy, timeout=timeout, check=lambda: self.check_alive(names))

    def _worker_ready(self, name: str) -> bool:
        """A Celery worker is ready once its current log says so (it reports no heartbeat to the API)."""
        logs = self.component_logs.get(name)
        return bool(logs) and logs[-1].exists() and " ready." in logs[-1].read_text(errors="replace")

    # -- REST API -----------------------------------------------------------------------------

    @property
    def api(self) -> httpx.Client:
        """An HTTP client on the api-server (logged in as :attr:`login`'s user if there is one)."""
        if self._api is None:
            auth = _TokenAuth(self.base_url, *self.login) if self.login is not None else None
            self._api = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(30.0, connect=5.0), auth=auth)
        return self._api

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> HTTP {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._json("GET", path, params=params or None)

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG is parsed and in the database; fail at once on an import error."""

        def import_errors() -> None:
            self.check_alive()
            errors = self.get("/api/v2/importErrors").get("import_errors", [])
            if errors:
                details = "\n".join(f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in errors)
                raise AssertionError(f"DAG files failed to import:\n{details}")

        def found() -> dict[str, Any] | None:
            response = self.api.get(f"/api/v2/dags/{quote(dag_id)}")
            return response.json() if response.status_code == 200 else None

        return wait_for(f"DAG {dag_id} parsed", found, timeout=timeout, interval=1.0, check=import_errors)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> str:
        """Create a manual DAG run (unpausing the DAG) and return its run id."""
        self._json("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": False})
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id is not None:
            body["dag_run_id"] = run_id
        run = self._json("POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def clear_run(self, dag_id: str, run_id: str) -> float:
        """Clear a whole DAG run (as "Clear" on the run in the UI): every task runs again.

        Returns the wall time just before the clear, for :meth:`wait_for_run` ``ended_after``."""
        cleared_at = time.time()
        self._json(
            "POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/clear", json={"dry_run": False}
        )
        return cleared_at

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}"))

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float, ended_after: float | None = None) -> str:
        """Wait until the DAG run ends; return its final state (``success`` or ``failed``).

        ``ended_after`` (unix time): only an end after this counts (a cleared run that ended before)."""

        def ended() -> str | None:
            run = self.dag_run(dag_id, run_id)
            state = run.get("state")
            if state not in TERMINAL_RUN_STATES:
                return None
            if ended_after is not None and (_parse_time(run.get("end_date")) or 0) < ended_after:
                return None
            return str(state)

        return wait_for(f"DAG run {dag_id}/{run_id} finished", ended, timeout=timeout, check=self.check_alive)

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(self._ti_path(dag_id, run_id, task_id)))

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], *, timeout: float
    ) -> dict[str, Any]:
        """Wait until the task instance is in one of ``states``; return it."""
        wanted = set(states)

        def reached() -> dict[str, Any] | None:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti.get("state") in wanted:
                return ti
            if ti.get("state") in ("failed", "upstream_failed", "removed") and not wanted & {"failed"}:
                raise AssertionError(f"task {task_id} ended as {ti.get('state')} while waiting for {sorted(wanted)}")
            return None

        return wait_for(
            f"task {dag_id}/{run_id}/{task_id} in {sorted(wanted)}",
            reached,
            timeout=timeout,
            interval=0.25,
            check=self.check_alive,
        )

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """The task instance's history, one entry per try (the current try included)."""
        return list(self.get(self._ti_path(dag_id, run_id, task_id) + "/tries")["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value, deserialized."""
        path = self._ti_path(dag_id, run_id, task_id) + f"/xcomEntries/{quote(key)}"
        return self.get(path, deserialize="true")["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """One try's log as text, as the UI shows it (task and trigger lines)."""
        response = self.api.get(
            self._ti_path(dag_id, run_id, task_id) + f"/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            return f"<log not available: HTTP {response.status_code}: {response.text[:500]}>"
        content = response.json().get("content")
        if isinstance(content, list):
            return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in content)
        return str(content)

    def run_report(self, dag_id: str, run_id: str, *, lines: int = 40) -> str:
        """Every task instance of the run with its state, the log tail of each one that did not
        succeed or skip, then the components' logs: what a failed end-to-end assertion prints."""
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        parts = [f"===== task instances of {dag_id}/{run_id} ====="]
        for ti in self.get(path, limit=100)["task_instances"]:
            where = f"{ti['task_id']}[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ti["task_id"]
            parts.append(f"{where}: {ti['state']} (try {ti.get('try_number')})")
            if ti["state"] not in ("success", "skipped") and ti.get("try_number"):
                log = self.task_log(dag_id, run_id, ti["task_id"], int(ti["try_number"]))
                parts.append(f"----- {where} log (last {lines} lines) -----\n{_tail(log, lines)}")
        return "\n".join(parts) + "\n" + self.diagnostics()

    @staticmethod
    def _ti_path(dag_id: str, run_id: str, task_id: str) -> str:
        return f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/{quote(task_id)}"

    # -- metadata database (read-only) ----------------------------------------------------------

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query on the metadata database (``?`` placeholders on either database)."""
        if self.database_dsn is not None:
            return _pg_query(self.database_dsn, sql.replace("?", "%s"), parameters)
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=15)
        try:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(sql, parameters)]
        finally:
            connection.close()

    def dump_database(self) -> str:
        """The whole metadata database as SQL text (to look for what must never be stored)."""
        if self.database_dsn is not None:
            return _pg_dump(self.database_dsn)
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=15)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()

    def decrypt(self, token: str) -> str:
        """Plain text of a Fernet-encrypted column (trigger kwargs, connection passwords)."""
        if token.startswith("{"):
            return token  # stored unencrypted
        return Fernet(self.fernet_key.encode()).decrypt(token.encode()).decode()

    # -- processes ------------------------------------------------------------------------------

    def task_process(self, ti_id: str) -> psutil.Process | None:
        """The process running a task instance's code: the Task SDK titles it ``airflow worker -- <ti id>``
        (its supervisor is ``airflow worker -- LocalExecutor: <ti id>``)."""
        title = f"airflow worker -- {ti_id}"
        for process in psutil.process_iter(["cmdline"]):
            # setproctitle rewrites argv; /proc shows the title split on spaces.
            cmdline = " ".join(process.info.get("cmdline") or []).strip()
            if cmdline == title:
                return process
        return None

    # -- diagnostics ----------------------------------------------------------------------------

    def diagnostics(self, lines: int = 60) -> str:
        """The last ``lines`` of every component's log (and of one-shot CLI commands)."""
        parts = []
        for path in sorted(self.logs_dir.glob("*.log"), key=lambda p: p.stat().st_mtime):
            text = path.read_text(errors="replace")
            parts.append(f"===== {path.name} (last {lines} lines) =====\n{_tail(text, lines)}")
        for name, process in self.processes.items():
            state = "running" if process.poll() is None else f"exited with {process.returncode}"
            parts.append(f"{name}: pid {process.pid}, {state}")
        return "\n".join(parts)

    def read_logs(self, component: str | None = None) -> str:
        """Everything the named component (default: all) wrote so far, restarts included."""
        names = [component] if component else list(self.component_logs)
        return "\n".join(
            path.read_text(errors="replace")
            for name in names
            for path in self.component_logs.get(name, [])
            if path.exists()
        )

    def task_log_files(self) -> list[Path]:
        """Task (and trigger) log files written under the home's ``logs`` folder."""
        return sorted((self.home / "logs").rglob("*.log")) if (self.home / "logs").exists() else []


class _TokenAuth(httpx.Auth):
    """A bearer token from the simple auth manager's ``POST /auth/token``, fetched on first use
    and again when the API answers 401 (expired)."""

    requires_response_body = True

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self._url = f"{base_url}/auth/token"
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for attempt in range(2):
            if self._token is None or attempt:
                response = yield httpx.Request("POST", self._url, json=self._credentials)
                if response.status_code != 201:
                    raise httpx.HTTPStatusError(
                        f"login as {self._credentials['username']!r} failed: HTTP {response.status_code}: "
                        f"{response.text[:500]}",
                        request=response.request,
                        response=response,
                    )
                self._token = str(response.json()["access_token"])
            request.headers["Authorization"] = f"Bearer {self._token}"
            answer = yield request
            if answer.status_code != 401:
                return


def component_kind(name: str) -> str:
    """``triggerer`` for ``triggerer-2``; a name without a number is its own kind."""
    base, _, number = name.rpartition("-")
    return base if number.isdigit() and base else name


def _db_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error]
    with contextlib.suppress(ImportError):
        import psycopg2

        errors.append(psycopg2.Error)
    return tuple(errors)


def _pg_query(dsn: str, sql: str, parameters: Sequence[Any]) -> list[dict[str, Any]]:
    import psycopg2
    import psycopg2.extras

    connection = psycopg2.connect(dsn, connect_timeout=15)
    try:
        connection.set_session(readonly=True, autocommit=True)
        with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute(sql, tuple(parameters))
            return [dict(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def _pg_dump(dsn: str) -> str:
    """Every row of every table in the public schema, one line each."""
    tables = [r["tablename"] for r in _pg_query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", ())]
    lines = []
    for table in sorted(tables):
        for row in _pg_query(dsn, f'SELECT * FROM "{table}"', ()):
            lines.append(f"{table}: {row!r}")
    return "\n".join(lines)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process group the component leads (its children stay in it unless they move)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _reap(process: subprocess.Popen[bytes], family: list[psutil.Process], deadline: float) -> None:
    """Wait for a signalled component until ``deadline``, then SIGKILL its group and stragglers."""
    try:
        process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Children that left the group (or outlived the leader) are ours too.
    _, alive = psutil.wait_procs([p for p in family if _alive(p)], timeout=max(0.1, deadline - time.monotonic()))
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)


def _family(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
