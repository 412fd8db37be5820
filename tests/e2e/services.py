"""Throwaway PostgreSQL and Redis servers for a production-shaped Airflow, on loopback.

Each lives in a folder of the test's own (data, socket, log), on a free port of 127.0.0.1, and
is gone after :meth:`stop`: no system service is used or touched. The binaries are Debian's
``postgresql`` and ``redis-server`` packages (``make services`` installs them when missing).
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user the
package created, its data in a fresh folder of that user's under the system's temp folder (a
test's own temp folder is closed to other users), removed on :meth:`stop`.

Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``; Redis saves
nothing): the data dies with the test, and on a shared two-core machine the flushes would only
slow Airflow down. Transactions, locks and isolation are PostgreSQL's own, which is the point.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .cluster import PRODUCTION_COMPONENTS, AirflowCluster, free_port, wait_for

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServiceUnavailable",
    "find_postgres_bin",
    "find_redis_server",
    "production_cluster",
]


class ServiceUnavailable(RuntimeError):
    """A server's binaries are not installed (``make services`` installs them)."""


def find_postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server binaries (initdb, postgres, pg_ctl), newest first."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServiceUnavailable("PostgreSQL's server binaries are not installed: run `make services` (apt: postgresql)")


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceUnavailable("redis-server is not installed: run `make services` (apt: redis-server)")
    return found


def _version_key(folder: str) -> tuple[int, ...]:
    version = Path(folder).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class PostgresServer:
    """``initdb`` + ``postgres`` in ``root``, listening on 127.0.0.1:``port``, trust auth for the
    superuser ``airflow``, with one database ``airflow``."""

    user = "airflow"
    database = "airflow"

    def __init__(self, root: Path, *, max_connections: int = 300) -> None:
        self.root = root
        self.log_path = root / "postgres.log"
        self.port = free_port()
        self.max_connections = max_connections
        self.bin = find_postgres_bin()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # As root, the server (and initdb) run as the package's postgres user.
        self._as: list[str] = []
        self._uid: int | None = None
        self._own_base: Path | None = None
        base = root
        if os.geteuid() == 0:
            self._uid = pwd.getpwnam("postgres").pw_uid
            self._as = ["runuser", "-u", "postgres", "--"]
            base = self._own_base = Path(tempfile.mkdtemp(prefix="kling-postgres-"))
            os.chown(base, self._uid, -1)
        self.data = base / "data"
        self.socket_dir = base / "socket"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``airflow`` database (psycopg2)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """libpq connection string of the ``airflow`` database."""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={self.database}"

    def start(self, *, timeout: float = 60.0) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.data, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            if self._uid is not None:
                os.chown(folder, self._uid, -1)
        self.data.chmod(0o700)
        init = subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self._as, str(self.bin / "postgres"), "-D", str(self.data)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for("PostgreSQL accepting connections", self._ready, timeout=timeout, interval=0.2, check=self._alive)
        created = subprocess.run(
            [*self._psql("postgres"), "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {self.database}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed:\n{created.stdout}\n{created.stderr}")
        return self

    def _psql(self, database: str) -> list[str]:
        return [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database]

    def _ready(self) -> bool | None:
        probe = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-q"],
            check=False,
        )
        return True if probe.returncode == 0 else None

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back, disconnect everyone), SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            _stop(self.process, signal.SIGINT)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_base is not None:
            shutil.rmtree(self._own_base, ignore_errors=True)
            self._own_base = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, saving nothing, working in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.log_path = root / "redis.log"
        self.binary = find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 30.0) -> RedisServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *(self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for("Redis answering PING", self._ready, timeout=timeout, interval=0.1, check=self._alive)
        return self

    def _ready(self) -> bool | None:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return True if sock.recv(16).startswith(b"+PONG") else None
        except OSError:
            return None

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _stop(self.process, signal.SIGTERM)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals, grace: float = 20.0) -> None:
    """Signal the server's process group (runuser, the server and its children), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Background workers of PostgreSQL may outlive the postmaster by a moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)


@contextmanager
def production_cluster(
    root: Path,
    *,
    dag_files: Iterable[Path] = (),
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    components: Sequence[str] = PRODUCTION_COMPONENTS,
    worker_concurrency: int = 8,
    cluster_class: type[AirflowCluster] = AirflowCluster,
) -> Iterator[AirflowCluster]:
    """A started Airflow as teams run it: PostgreSQL, Redis + Celery executor, two Celery workers
    and two triggerers (by default), scheduler, dag-processor, api-server; all torn down after."""
    with PostgresServer(root / "postgres") as database, RedisServer(root / "redis") as broker:
        cluster = cluster_class(
            root / "airflow",
            connections=connections,
            extra_env=extra_env,
            database_url=database.url,
            database_dsn=database.dsn,
            celery_broker_url=broker.url,
            worker_concurrency=worker_concurrency,
        )
        cluster.add_dag_files(dag_files)
        try:
            cluster.start(components, timeout=240)
            yield cluster
        except BaseException:
            print(cluster.diagnostics(), file=sys.stderr)
            print(f"===== postgres =====\n{database.log_tail()}", file=sys.stderr)
            raise
        finally:
            cluster.stop()
