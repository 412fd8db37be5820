"""#4 Parse cost: a DAG of 200 Kling operator tasks against the same DAG built with EmptyOperator.

Parse = a fresh interpreter importing the DAG file (``runpy.run_path``), timed by this process
around the subprocess, minus a bare interpreter's start (``python -c pass``), median of several
runs, Kling/Empty/bare runs interleaved so drift on a busy machine hits all three alike. Each child
also reports how long ``import airflow.sdk`` took and how long the DAG body took after it, so the
provider's own share (importing it, building and validating 200 operators) is visible next to
EmptyOperator's.

Import cost: ``python -X importtime -c "import airflow.sdk; import kling_provider.operators.kling"``,
the cumulative time of the ``kling_provider.operators.kling`` line (what the import adds once
``airflow.sdk`` is loaded), median of several runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, Row, median, print_table, write_result

TASKS = 200
HEADER = """\
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
{imports}

with DAG("parse_bench_{name}", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    for i in range({tasks}):
"""
KLING = (
    HEADER
    + """\
        KlingTextToVideoOperator(
            task_id=f"video_{{i}}",
            prompt=f"Product shot {{i}}: a ceramic mug turning slowly on a marble table, studio light",
            duration=5 + i % 6,
            quality=("720p", "1080p")[i % 2],
            output_uri="s3://videos/{{{{ ds }}}}/" + f"{{i}}.mp4",
            output_conn_id="aws_default",
        )
"""
)
EMPTY = (
    HEADER
    + """\
        EmptyOperator(task_id=f"video_{{i}}")
"""
)
CHILD = """\
import runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
runpy.run_path(sys.argv[1])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def write_dags(folder: Path) -> tuple[Path, Path]:
    kling = folder / "kling_dag.py"
    empty = folder / "empty_dag.py"
    kling.write_text(
        KLING.format(
            name="kling", tasks=TASKS, imports="\nfrom kling_provider.operators.kling import KlingTextToVideoOperator"
        )
    )
    empty.write_text(
        EMPTY.format(
            name="empty", tasks=TASKS, imports="\nfrom airflow.providers.standard.operators.empty import EmptyOperator"
        )
    )
    return kling, empty


def timed_run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def cumulative_import_ms(module: str, statement: str) -> float:
    """The cumulative time ``python -X importtime`` reports for ``module`` while running ``statement``, in ms."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == f" {module}":
            return int(parts[1]) / 1000
    raise RuntimeError(f"{module} not in the -X importtime output")


def import_cost() -> float:
    """What importing the operators costs once ``airflow.sdk`` is loaded."""
    module = "kling_provider.operators.kling"
    return cumulative_import_ms(module, f"import airflow.sdk; import {module}")


def sdk_import_cost() -> float:
    return cumulative_import_ms("airflow.sdk", "import airflow.sdk")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kling-parse-") as tmp:
        kling, empty = write_dags(Path(tmp))
        child = Path(tmp) / "child.py"
        child.write_text(CHILD)
        # Warm the OS file cache and Python's bytecode caches once.
        timed_run([sys.executable, str(child), str(kling)])
        timed_run([sys.executable, str(child), str(empty)])
        walls: dict[str, list[float]] = {"kling": [], "empty": [], "bare": []}
        bodies: dict[str, list[float]] = {"kling": [], "empty": []}
        sdk: list[float] = []
        for _ in range(args.repeats):
            for name, path in (("kling", kling), ("empty", empty)):
                wall, out = timed_run([sys.executable, str(child), str(path)])
                sdk_s, body_s = (float(x) for x in out.split())
                walls[name].append(wall)
                bodies[name].append(body_s)
                sdk.append(sdk_s)
            walls["bare"].append(timed_run([sys.executable, "-c", "pass"])[0])
        imports = [import_cost() for _ in range(args.repeats)]
        sdk_imports = [sdk_import_cost() for _ in range(3)]
    bare = median(walls["bare"])
    parse = {name: median(walls[name]) - bare for name in ("kling", "empty")}
    body = {name: median(bodies[name]) for name in ("kling", "empty")}
    imp = median(imports)
    rows = [
        Row(
            "parse, fresh process (- interpreter start)",
            parse["kling"] * 1000,
            parse["empty"] * 1000,
            "ms",
            "<= 1.15x",
            parse["kling"] <= 1.15 * parse["empty"],
            "EmptyOperator",
        ),
        Row(
            "  of which the DAG body after airflow.sdk",
            body["kling"] * 1000,
            body["empty"] * 1000,
            "ms",
            "",
            None,
            "EmptyOperator",
        ),
        Row(
            "  per task, DAG body",
            body["kling"] / TASKS * 1e6,
            body["empty"] / TASKS * 1e6,
            "us",
            "",
            None,
            "EmptyOperator",
        ),
        Row("  import airflow.sdk (in the same children)", median(sdk) * 1000, None, "ms", "", None),
        Row(
            "import kling_provider.operators.kling after airflow.sdk",
            imp,
            median(sdk_imports),
            "ms",
            "<= 20 ms",
            imp <= 20,
            "import airflow.sdk",
        ),
        Row("interpreter start (subtracted)", bare * 1000, None, "ms", "", None),
    ]
    print_table(f"#4 parse cost: DAG of {TASKS} tasks, medians of {args.repeats} fresh processes each", rows)
    write_result("parse", rows, {"walls": walls, "bodies": bodies, "imports_ms": imports})


if __name__ == "__main__":
    main()
