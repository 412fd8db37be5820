"""Test-session setup: an isolated AIRFLOW_HOME, then the simulator fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Airflow reads its configuration at import time: point it at a throwaway home first.
_home = Path(os.environ.get("KLING_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="kling-airflow-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_home))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

REPO_ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["kling_provider.testing.pytest_plugin"]
