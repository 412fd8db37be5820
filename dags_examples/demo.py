"""``make demo``: run the example DAG against the bundled simulator and write a real MP4.

No key and no network: the simulator (``python -m kling_provider.testing``) serves EvoLink's
API on loopback, the ``kling_default`` connection points at it, and ``dag.test()`` runs
``kling_teaser`` with its trigger in-line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO / "demo-output"
SIM_KEY = "sk-sim-local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the simulator exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the simulator did not start listening on port {port} within {deadline_s:.0f} s")


def main() -> int:
    home = REPO / ".airflow-home"
    home.mkdir(exist_ok=True)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
            "AIRFLOW_CONN_KLING_DEFAULT": json.dumps(
                {"conn_type": "kling", "host": base_url, "password": SIM_KEY, "extra": {"files_host": base_url}}
            ),
        }
    )
    simulator = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "kling_provider.testing", "--host", "127.0.0.1", "--port", str(port)]
    )
    try:
        _wait_for_port(port, simulator)
        print(f"Simulator listening on {base_url}", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(REPO / "dags_examples")).get_dag("kling_teaser")
        assert dag is not None, "dags_examples/kling_teaser.py did not load"
        OUTPUT_DIR.mkdir(exist_ok=True)
        started = time.time()
        run = dag.test(run_conf={"output_dir": str(OUTPUT_DIR)})
        state = str(getattr(run, "state", ""))
        videos = sorted(OUTPUT_DIR.glob("teaser-*.mp4"), key=lambda p: p.stat().st_mtime)
        if "success" not in state or not videos:
            print(f"Demo failed: DAG run state {state!r}, videos {videos}", file=sys.stderr)
            return 1
        from kling_provider.testing.media import mp4_info

        info = mp4_info(videos[-1])
        # A second `make demo` the same day asks for the same video: the operator returns the saved
        # one and sends nothing (if_exists="skip", docs/reliability.md). Say which it was.
        reused = videos[-1].stat().st_mtime < started
        print(
            f"\n{'Already generated (re-run: nothing sent, nothing paid)' if reused else 'Generated'} "
            f"{videos[-1]} ({videos[-1].stat().st_size} bytes, {info.width}x{info.height}, "
            f"{info.duration_s:.1f} s, {info.frame_count} frames)"
        )
        return 0
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
