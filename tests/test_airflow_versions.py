"""Which task-state store the bill-once resume uses on the Airflow running the suite.

``make test`` runs this on Airflow 3.3 (``task_state_store``), ``make test-airflow-min`` on 3.0.6
(no such store: the Variable fallback). Either way a retry after a failed download saves the
video it already paid for, with one create call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_compat import AIRFLOW_BASE_VERSION, HAS_TASK_STATE_STORE
from test_operators_dag import posts, run_dag

from kling_provider.testing import Fault
from kling_provider.testing.media import mp4_info

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


def test_a_retry_resumes_through_this_airflows_store(
    kling_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kling_provider.operators import state

    original = state.state_store_for
    stores: list[Any] = []

    def spy(context: Any) -> Any:
        stores.append(original(context))
        return stores[-1]

    monkeypatch.setattr(state, "state_store_for", spy)
    kling_connection.sim.faults.add(Fault(phase="download", kind="drop", times=5))
    result = run_dag("t2v_retrying", output_uri=tmp_path / "v.mp4")

    assert "success" in result["video"]["state"], result
    assert result["video"]["try_number"] == 2
    assert posts(kling_connection.sim) == 1, "the retry saved the video it paid for"
    assert mp4_info(tmp_path / "v.mp4").frame_count > 0
    expected = "_AirflowTaskStateStore" if HAS_TASK_STATE_STORE else "_VariableTaskStateStore"
    assert {type(store).__name__ for store in stores} == {expected}, f"Airflow {AIRFLOW_BASE_VERSION}"


def test_an_event_from_an_earlier_try_starts_the_try_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.0 to 3.1.2 resume a retry at execute_complete with the previous try's event."""
    from types import SimpleNamespace

    from kling_provider.exceptions import KlingError
    from kling_provider.operators.kling import KlingTextToVideoOperator

    operator = KlingTextToVideoOperator(task_id="t", prompt="a kite", deferrable=True)
    fresh: list[Any] = []
    monkeypatch.setattr(KlingTextToVideoOperator, "execute", lambda self, context: fresh.append(context) or "fresh")
    event = {"status": "failed", "task_id": "task-unified-1-a", "message": "failed", "retryable": True, "task": None}

    stale = {"ti": SimpleNamespace(try_number=2)}
    assert operator.execute_complete(stale, {**event, "attempt": 1}) == "fresh"
    assert fresh == [stale]

    for same_try in ({**event, "attempt": 2}, event):  # the try that deferred, or a trigger that did not say
        with pytest.raises(KlingError, match="failed"):
            operator.execute_complete({"ti": SimpleNamespace(try_number=2)}, same_try)
    assert len(fresh) == 1
