"""Airflow-version shims, all in one place: names that moved between Airflow 3.0 and 3.3.

Airflow 3.3.2 is the target and 3.0.6 must keep working (the fast suite runs on both), so each name
that moved is imported here once, the newest spelling first, and the rest of the package imports
it from here. Each fallback says which Airflow needs it; drop it when that version is no longer
supported. Everything imported at module level here is already loaded by ``import airflow.sdk``
(no import cost); the human-in-the-loop operator is imported only by :func:`hitl_branch_operator`.
"""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowNotFoundException as _CoreNotFound
from airflow.sdk import BaseOperator

__all__ = [
    "NOT_FOUND_ERRORS",
    "AirflowFailException",
    "BaseHook",
    "conf",
    "hitl_branch_operator",
]

# The deployment's configuration (``[kling] ...`` options). Airflow 3.0: the Task SDK has no conf of
# its own yet (3.1 added ``airflow.sdk.conf``).
try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.0
    from airflow.configuration import conf  # type: ignore[assignment]

# The hooks' base class. Airflow 3.0: hooks still live in airflow-core.
try:
    from airflow.sdk.bases.hook import BaseHook
except ImportError:  # Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

# "Fail now, without the remaining retries". Airflow 3.0: only airflow.exceptions has it.
try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]


# What Airflow raises for a connection id it does not know: the Task SDK's own class since 3.1,
# and airflow.exceptions' (the only one on 3.0; the same class again on 3.3).
try:
    from airflow.sdk.exceptions import AirflowNotFoundException as _SdkNotFound
except ImportError:  # Airflow 3.0
    _SdkNotFound = _CoreNotFound  # type: ignore[misc]

#: ``except NOT_FOUND_ERRORS:`` catches an unknown connection id on every supported Airflow.
NOT_FOUND_ERRORS: tuple[type[BaseException], ...] = tuple(dict.fromkeys((_SdkNotFound, _CoreNotFound)))


def hitl_branch_operator() -> tuple[type, str | None]:
    """Airflow's ``HITLBranchOperator`` (Airflow 3.1+) and None; on Airflow 3.0, ``BaseOperator``
    and why the import failed, for the review operator's clear error when it is built.

    Imported here when asked, not with this module: only the review operator pays for it.
    """
    try:
        from airflow.providers.standard.operators.hitl import HITLBranchOperator
    except Exception as err:  # Airflow 3.0 raises AirflowOptionalProviderFeatureException
        return BaseOperator, f"{type(err).__name__}: {err}"
    base: Any = HITLBranchOperator
    return base, None
