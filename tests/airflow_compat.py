"""Airflow names the tests use that moved between 3.0 and 3.3.

``make test-airflow-min`` runs this suite on the oldest Airflow the provider supports: tests import
these names from here so one spelling works on both. (Provider code has its own shims, in
``kling_provider/_compat.py``: a shim here must never make a provider import pass that would fail
in a user's 3.0 deployment.)
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

AIRFLOW_BASE_VERSION = Version(Version(AIRFLOW_VERSION).base_version)
#: Airflow 3.3 added the task state store (AIP-103); older 3.x keep the task id in a Variable.
HAS_TASK_STATE_STORE = Version("3.3") <= AIRFLOW_BASE_VERSION

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.1
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]

try:
    from airflow.sdk.exceptions import AirflowNotFoundException, TaskDeferred
except ImportError:  # Airflow < 3.1
    from airflow.exceptions import AirflowNotFoundException, TaskDeferred  # type: ignore[no-redef,attr-defined]

try:
    from airflow.sdk.bases.hook import BaseHook
except ImportError:  # Airflow < 3.1
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

__all__ = [
    "AIRFLOW_BASE_VERSION",
    "AIRFLOW_VERSION",
    "HAS_TASK_STATE_STORE",
    "AirflowNotFoundException",
    "BaseHook",
    "DagBag",
    "TaskDeferred",
]
