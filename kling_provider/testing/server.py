"""Run the simulator on a real loopback socket (uvicorn in a background thread).

For tests that need a real HTTP exchange (timeouts, dropped connections, another process
such as an Airflow triggerer talking to it). The socket is bound before the thread starts, so
the port is known at once even when ``port=0`` asks for any free one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

import uvicorn

from kling_provider.testing.app import EvoLinkSimulator

__all__ = ["SimulatorServer"]


class SimulatorServer:
    """``with SimulatorServer(sim) as server: httpx.get(server.base_url + ...)``.

    :param sim: the simulator to serve (default: a new one with default settings).
    :param host: interface to bind; keep it on loopback.
    :param port: 0 picks a free port; read it back from :attr:`port` / :attr:`base_url`.
    :param log_level: uvicorn's log level ("warning" keeps test output quiet; dropped
        connections still log an error, which is expected).
    :param startup_timeout: seconds to wait for uvicorn to start serving.
    """

    def __init__(
        self,
        sim: EvoLinkSimulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self.sim = sim if sim is not None else EvoLinkSimulator()
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``: both the API host and the files host of the simulator."""
        if self.port is None:
            raise RuntimeError("the server is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Bind, start uvicorn in a daemon thread, and return once it serves requests."""
        if self._thread is not None:
            raise RuntimeError("already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.sim,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            # A "slow" fault may hold a request open; shutdown must not wait for it.
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"kling-sim-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError("the simulator server failed to start (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the simulator server did not start within {self._startup_timeout:g} s")
            time.sleep(0.005)  # polling uvicorn's readiness flag, not waiting for a guess
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for its thread, close the socket. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        self._server = self._thread = self._socket = None
        self.port = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port is not None else "stopped"
        return f"SimulatorServer({where})"
