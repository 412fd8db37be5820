"""Offline tests of product_video.py: the bundled EvoLink simulator stands in for the API.

``kling_connection`` (from the pytest plugin installed with airflow-provider-kling) starts the
simulator on a loopback port and points the ``kling_default`` connection at it.
Run from the project folder with AIRFLOW_HOME set to a scratch folder and
AIRFLOW__CORE__DAGS_FOLDER to dags/: dag.test() runs DAGs from the files in the DAGs folder only.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kling_provider.testing import Fault
from kling_provider.testing.media import mp4_info


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    """dag.test() needs a metadata database: migrate the one in AIRFLOW_HOME."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def test_the_dag_saves_one_playable_video(kling_connection, tmp_path):
    from product_video import dag

    run = dag.test(run_conf={"output_dir": str(tmp_path)})

    assert run.state == "success"
    [video] = tmp_path.glob("teaser-*.mp4")
    assert mp4_info(video).duration_s == pytest.approx(5, abs=0.1)
    assert kling_connection.sim.count(method="POST", phase="submit") == 1  # billed once


def test_a_refused_prompt_fails_without_paying_again(kling_connection, tmp_path):
    from product_video import dag

    kling_connection.sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation"))

    run = dag.test(run_conf={"output_dir": str(tmp_path)})

    assert run.state == "failed"
    assert kling_connection.sim.count(method="POST", phase="submit") == 1  # no retry on a refusal
    assert list(tmp_path.iterdir()) == []
