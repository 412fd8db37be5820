"""The ``kling_review`` example DAG (dags_examples/kling_review.py), in the DAGs folder ``dag.test()`` syncs.

Loaded, not copied, so the tests run the example as users get it. Human-in-the-loop needs
Airflow 3.1+: on older Airflow this file defines nothing (the tests that use it are
``newer_airflow``).
"""

from __future__ import annotations

import runpy
from pathlib import Path

from kling_provider.operators import review

if review._HITL_MISSING is None:
    dag = runpy.run_path(str(Path(__file__).resolve().parents[2] / "dags_examples" / "kling_review.py"))["dag"]
