"""The Airflow-version shims live in ``kling_provider/_compat.py`` alone, and pick this Airflow's names.

``make test-airflow-min`` runs this file on Airflow 3.0.6 as well, where each fallback is the one taken.
"""

from __future__ import annotations

import ast
from pathlib import Path

from airflow.sdk import BaseOperator
from airflow_compat import AIRFLOW_BASE_VERSION
from packaging.version import Version

import kling_provider
from kling_provider import _compat

PACKAGE = Path(kling_provider.__file__).parent


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def test_no_import_fallback_outside_the_compat_module() -> None:
    """A second ``try: import ... except ImportError`` elsewhere is a shim nobody will find when its
    Airflow version is dropped (optional extras may add theirs here, saying so)."""
    found = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ExceptHandler) and node.type is not None and _catches_import_errors(node)
    ]
    assert found, "the scan finds nothing, not even _compat.py's own fallbacks: it proves nothing"
    assert {where.split(":")[0] for where in found} == {"_compat.py"}, found


def test_the_shims_pick_this_airflows_spelling() -> None:
    newer = Version("3.1") <= AIRFLOW_BASE_VERSION
    assert _compat.AirflowFailException.__module__.startswith("airflow.sdk" if newer else "airflow.exceptions")
    assert _compat.BaseHook.__module__ == ("airflow.sdk.bases.hook" if newer else "airflow.hooks.base")
    assert all(issubclass(error, Exception) for error in _compat.NOT_FOUND_ERRORS) and _compat.NOT_FOUND_ERRORS
    assert _compat.conf.getboolean("kling", "default_deferrable", fallback=True) in (True, False)


def test_the_review_base_is_human_in_the_loop_from_airflow_3_1() -> None:
    base, missing = _compat.hitl_branch_operator()
    if Version("3.1") <= AIRFLOW_BASE_VERSION:
        assert base.__name__ == "HITLBranchOperator" and missing is None
    else:
        assert base is BaseOperator and missing, "Airflow 3.0: the reason goes into the review operator's error"
