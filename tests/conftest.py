"""Test-session setup: an isolated AIRFLOW_HOME, a migrated database on demand, simulator fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same property-test examples every time (a seed per test): a red CI then means this
# change broke something, never that a random draw found an old bug. Local runs keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Airflow reads its configuration at import time: point it at a throwaway home first.
_home = Path(os.environ.get("KLING_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="kling-airflow-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_home))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
REPO_ROOT = Path(__file__).resolve().parent.parent
# dag.test() syncs DAGs from the configured bundle: the operator tests' DAGs live here.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "tests" / "dags"))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database (SQLite in the test AIRFLOW_HOME), needed by ``dag.test()``."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return Path(os.environ["AIRFLOW_HOME"])
