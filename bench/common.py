"""What the benchmarks share: the simulator process, samplers, percentiles, tables, results."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
SIM_KEY = "sk-sim-local"
_PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the simulator, as a separate process ----------------------------------------------------


class SimProcess:
    """``with SimProcess("--generation-seconds", "40") as sim: sim.base_url``: ``bench.simproc``."""

    def __init__(self, *args: str, port: int = 0) -> None:
        self.args = ["--host", "127.0.0.1", "--port", str(port), *args]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> SimProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.simproc", *self.args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start (said {self.base_url!r})")
        deadline = time.monotonic() + 30
        while True:  # the port is bound before the URL is printed; uvicorn accepts a moment later
            try:
                httpx.get(self.base_url + "/_bench/log", timeout=5, params={"ping": 1})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self

    def log(self) -> dict[str, Any]:
        """The simulator's request log and tasks (see ``bench.simproc``)."""
        response = httpx.get(self.base_url + "/_bench/log", timeout=120)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def connection_env(base_url: str, **extra: Any) -> dict[str, str]:
    """``AIRFLOW_CONN_KLING_DEFAULT`` for the simulator at ``base_url``."""
    value = {"conn_type": "kling", "host": base_url, "password": SIM_KEY, "extra": {"files_host": base_url, **extra}}
    return {"AIRFLOW_CONN_KLING_DEFAULT": json.dumps(value)}


def quiet_logs() -> None:
    """Airflow's logging as a triggerer subprocess sets it up (JSON lines), written to /dev/null."""
    from airflow.sdk.log import configure_logging, reset_logging

    reset_logging()
    configure_logging(json_output=True, output=open(os.devnull, "wb", buffering=0), sending_to_supervisor=True)  # noqa: SIM115


# -- measuring --------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """Peak RSS of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class LoopSampler:
    """Event-loop lag (a 10 ms sleep's overshoot) and RSS, sampled while a benchmark runs."""

    period: float = 0.010
    lags: list[float] = field(default_factory=list)
    rss_peak: int = 0
    _stop: bool = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        while not self._stop:
            start = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - start - self.period))
            tick += 1
            if tick % 10 == 0:
                self.rss_peak = max(self.rss_peak, rss_bytes())

    def stop(self) -> None:
        self._stop = True


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- reporting --------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure, its baseline from the same run, and the target it is held to."""

    metric: str
    value: float
    baseline: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    baseline_name: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or math.isnan(self.baseline):
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
        }


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def print_table(title: str, rows: Sequence[Row]) -> None:
    header = ("metric", "value", "baseline", "ratio", "target", "met")
    body = [
        (
            r.metric,
            fmt(r.value, r.unit),
            (fmt(r.baseline, r.unit) + (f" ({r.baseline_name})" if r.baseline_name else ""))
            if r.baseline is not None
            else "-",
            f"{r.ratio:.2f}x" if r.ratio is not None else "-",
            r.target or "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in (header, *body)) for i in range(len(header))]
    print(f"\n== {title}")
    for line in (header, tuple("-" * w for w in widths), *body):
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    sys.stdout.flush()


def write_result(name: str, rows: Sequence[Row], notes: dict[str, Any] | None = None) -> None:
    """Save the rows (for run_all's summary) under bench/.results/<name>.json."""
    out = REPO / "bench" / ".results"
    out.mkdir(exist_ok=True)
    payload = {"name": name, "rows": [r.as_dict() for r in rows], "notes": notes or {}, "machine": machine()}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=1))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


@contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"   ({label}: {time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
