"""``http_retry_policy=`` on the operators: the hook and the trigger both use it (fast fault tests need it).

Not ``retry_policy``: Airflow 3.3's BaseOperator has that argument for task-level retries.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_compat import TaskDeferred

from kling_provider.exceptions import KlingValidationError
from kling_provider.hooks.retry import RetryPolicy
from kling_provider.operators.kling import KlingTextToVideoOperator
from kling_provider.triggers.kling import KlingTaskTrigger

FAST_RETRY = {"max_attempts": 3, "backoff_base": 0.01, "backoff_cap": 0.02}


def _operator(**kwargs: Any) -> KlingTextToVideoOperator:
    return KlingTextToVideoOperator(task_id="t", prompt="a kite", **kwargs)


def test_operator_hook_uses_the_retry_policy() -> None:
    hook = _operator(http_retry_policy=FAST_RETRY).get_hook()
    assert hook.retry_policy == RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)


@pytest.mark.newer_airflow("3.3: BaseOperator.retry_policy")
def test_default_retry_policy_is_the_hooks_default() -> None:
    op = _operator()
    assert op.get_hook().retry_policy == RetryPolicy()
    assert op.retry_policy is None, "Airflow's own task retry_policy is left alone"


def test_trigger_serialises_and_uses_the_retry_policy() -> None:
    trigger = KlingTaskTrigger("task-unified-1-abc", retry_policy=FAST_RETRY)
    _, kwargs = trigger.serialize()
    assert kwargs["retry_policy"] == FAST_RETRY
    rebuilt = KlingTaskTrigger(**kwargs)
    assert rebuilt._retry_policy() == RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)
    # A trigger serialised before the argument existed still loads, with the default policy.
    del kwargs["retry_policy"]
    assert KlingTaskTrigger(**kwargs)._retry_policy() == RetryPolicy()


def test_deferring_operator_hands_the_policies_to_the_trigger(kling_connection: Any) -> None:
    from types import SimpleNamespace

    op = _operator(http_retry_policy=FAST_RETRY, poll_policy={"min_interval": 0.1}, deferrable=True)
    store: dict[str, Any] = {}
    accessor = SimpleNamespace(get=store.get, set=store.__setitem__, delete=lambda k: store.pop(k, None))
    ti = SimpleNamespace(xcom_push=lambda **_: None)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti, "task_state_store": accessor, "run_id": "r"})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, KlingTaskTrigger)
    assert trigger.retry_policy == FAST_RETRY and trigger.poll_policy == {"min_interval": 0.1}


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("fast", "must be a mapping"),
        ({"max_attempt": 3}, "unknown setting 'max_attempt'"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"backoff_base": -1}, "backoff_base"),
        ({"backoff_cap": float("nan")}, "backoff_cap"),
        ({"max_server_wait": float("inf")}, "max_server_wait"),
        ({"backoff_base": "1"}, "backoff_base"),
    ],
)
def test_bad_retry_policies_are_rejected_by_field(policy: Any, words: str) -> None:
    with pytest.raises(KlingValidationError, match=words) as err:
        _operator(http_retry_policy=policy)
    assert err.value.param == "http_retry_policy"
