"""#4 Parse cost: a DAG of 200 Kling operator tasks against the same DAG built with EmptyOperator,
and a DAG of 200 mapped Kling operators (``.partial(...).expand(prompt=<XComArg>)``, whose
literal ``partial()`` arguments are checked while parsing) against both, in the same run.

Parse = a fresh interpreter importing the DAG file (``runpy.run_path``), timed by this process
around the subprocess, minus a bare interpreter's start (``python -c pass``), median of several
runs, Kling/Empty/bare runs interleaved so drift on a busy machine hits all three alike. Each child
also reports how long ``import airflow.sdk`` took and how long the DAG body took after it.

DAG body = the child's own clock around running the DAG file once ``airflow.sdk`` is imported:
the provider's import, the DAG and its 200 operators built with every parse-time check, against
the same body with ``EmptyOperator`` (its import included). Interpreter start and the Airflow
import are left out of both alike; median of the same runs. Target: at most 2x.

The children run with bytecode caches, as a deployment has them (pip compiles a wheel's modules
when it installs them): ``PYTHONDONTWRITEBYTECODE`` is dropped from their environment and the
caches go to a temporary ``PYTHONPYCACHEPREFIX``, written by the warm-up run. Without them every
child would compile the provider's modules from source (~25 ms here), a cost EmptyOperator's
modules, compiled at install, never pay.

Import cost: ``python -X importtime -c "import airflow.sdk; import kling_provider.operators.kling"``,
the cumulative time of the ``kling_provider.operators.kling`` line (what the import adds once
``airflow.sdk`` is loaded), median of several runs.
"""

from __future__ import annotations

import argparse
import os
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
MAPPED = (
    HEADER.replace("from airflow.sdk import DAG", "from airflow.sdk import DAG, task").replace(
        "    for i in",
        """
    @task
    def prompts() -> list[str]:
        return ["a ceramic mug turning slowly on a marble table, studio light"]

    listed = prompts()
    for i in""",
    )
    + """        KlingTextToVideoOperator.partial(
            task_id=f"video_{{i}}",
            duration=5 + i % 6,
            quality=("720p", "1080p")[i % 2],
            output_uri="s3://videos/{{{{ ds }}}}/" + f"{{i}}" + "-{{{{ ti.map_index }}}}.mp4",
            output_conn_id="aws_default",
        ).expand(prompt=listed)
"""
)
#: Airflow's own cost of a mapped task, with an operator that checks nothing (BashOperator).
BASH_MAPPED = MAPPED.replace(
    """        KlingTextToVideoOperator.partial(
            task_id=f"video_{{i}}",
            duration=5 + i % 6,
            quality=("720p", "1080p")[i % 2],
            output_uri="s3://videos/{{{{ ds }}}}/" + f"{{i}}" + "-{{{{ ti.map_index }}}}.mp4",
            output_conn_id="aws_default",
        ).expand(prompt=listed)""",
    """        BashOperator.partial(task_id=f"video_{{i}}", env={{"N": str(i)}}).expand(bash_command=listed)""",
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


def write_dags(folder: Path) -> tuple[Path, Path, Path, Path]:
    kling = folder / "kling_dag.py"
    mapped = folder / "mapped_dag.py"
    bash = folder / "bash_mapped_dag.py"
    empty = folder / "empty_dag.py"
    imports = "\nfrom kling_provider.operators.kling import KlingTextToVideoOperator"
    kling.write_text(KLING.format(name="kling", tasks=TASKS, imports=imports))
    mapped.write_text(MAPPED.format(name="mapped", tasks=TASKS, imports=imports))
    bash_import = "\nfrom airflow.providers.standard.operators.bash import BashOperator"
    bash.write_text(BASH_MAPPED.format(name="bash", tasks=TASKS, imports=bash_import))
    empty.write_text(
        EMPTY.format(
            name="empty", tasks=TASKS, imports="\nfrom airflow.providers.standard.operators.empty import EmptyOperator"
        )
    )
    return kling, mapped, bash, empty


#: The children's environment: bytecode caches allowed, written under a temporary
#: PYTHONPYCACHEPREFIX that main() sets (see the module docstring).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed_run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True, env=CHILD_ENV)
    return time.perf_counter() - start, done.stdout


def cumulative_import_ms(module: str, statement: str) -> float:
    """The cumulative time ``python -X importtime`` reports for ``module`` while running ``statement``, in ms."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=CHILD_ENV,
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
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        kling, mapped, bash, empty = write_dags(Path(tmp))
        child = Path(tmp) / "child.py"
        child.write_text(CHILD)
        dags = {"kling": kling, "mapped": mapped, "bash": bash, "empty": empty}
        # Warm the OS file cache and write Python's bytecode caches once.
        for path in dags.values():
            timed_run([sys.executable, str(child), str(path)])
        walls: dict[str, list[float]] = {name: [] for name in [*dags, "bare"]}
        bodies: dict[str, list[float]] = {name: [] for name in dags}
        sdk: list[float] = []
        for _ in range(args.repeats):
            for name, path in dags.items():
                wall, out = timed_run([sys.executable, str(child), str(path)])
                sdk_s, body_s = (float(x) for x in out.split())
                walls[name].append(wall)
                bodies[name].append(body_s)
                sdk.append(sdk_s)
            walls["bare"].append(timed_run([sys.executable, "-c", "pass"])[0])
        imports = [import_cost() for _ in range(args.repeats)]
        sdk_imports = [sdk_import_cost() for _ in range(3)]
    bare = median(walls["bare"])
    parse = {name: median(walls[name]) - bare for name in bodies}
    body = {name: median(bodies[name]) / TASKS for name in bodies}  # per task
    # What Kling adds to a task: over EmptyOperator for a plain one, over a mapped BashOperator
    # (Airflow's own mapping, nothing checked) for a mapped one.
    kling_share = body["kling"] - body["empty"]
    mapped_share = body["mapped"] - body["bash"]
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
            f"DAG body: provider import + {TASKS} operators built, parse-time checks (- start, - airflow.sdk)",
            body["kling"] * TASKS * 1000,
            body["empty"] * TASKS * 1000,
            "ms",
            "<= 2.0x",
            body["kling"] <= 2.0 * body["empty"],
            "EmptyOperator",
        ),
        Row("  per task, DAG body", body["kling"] * 1e6, body["empty"] * 1e6, "us", "", None, "EmptyOperator"),
        Row(
            "mapped: parse, fresh process (- interpreter start)",
            parse["mapped"] * 1000,
            parse["empty"] * 1000,
            "ms",
            "<= 1.15x",
            parse["mapped"] <= 1.15 * parse["empty"],
            "EmptyOperator",
        ),
        Row("  mapped, per task, DAG body", body["mapped"] * 1e6, body["kling"] * 1e6, "us", "", None, "plain Kling"),
        Row("  mapped, per task, DAG body", body["mapped"] * 1e6, body["empty"] * 1e6, "us", "", None, "EmptyOperator"),
        Row(
            "  Airflow's own mapping: mapped BashOperator, per task",
            body["bash"] * 1e6,
            body["empty"] * 1e6,
            "us",
            "",
            None,
            "EmptyOperator",
        ),
        Row(
            "  Kling's share per task: mapped (- mapped Bash) vs plain (- Empty)",
            mapped_share * 1e6,
            kling_share * 1e6,
            "us",
            "<= 1.0x",
            mapped_share <= kling_share,
            "plain Kling's share",
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
