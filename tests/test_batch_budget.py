"""The batch budget: totals, messages, and the guard operator's parse-time check of literal lists."""

from __future__ import annotations

from typing import Any

import pytest

from kling_provider.batch_budget import KlingBatchBudgetError, check_batch_budget, estimate_batch
from kling_provider.exceptions import KlingValidationError
from kling_provider.operators.budget import KlingBatchBudgetOperator

ROWS: list[dict[str, Any]] = [
    {"sku": "kite", "prompt": "a kite", "duration": 5},
    {"sku": "lamp", "prompt": "a lamp", "duration": 15, "quality": "1080p", "sound": True},
    {"sku": "boat", "prompt": "a boat", "duration": 10},
    {"sku": "cup", "prompt": "a cup"},
]


def test_the_total_uses_rows_then_defaults_then_the_operators_defaults() -> None:
    batch = estimate_batch(ROWS)
    assert batch.count == 4
    assert batch.credits == pytest.approx(27 + 162 + 54 + 27)
    assert batch.usd == pytest.approx(0.375 + 2.25 + 0.75 + 0.375)
    with_defaults = estimate_batch(ROWS, defaults={"quality": "1080p", "prompt": "ignored"})
    # 1080p silent is 7.1982 credits/s: 5 + 10 + 5 s of it, and the lamp row's own 1080p with sound.
    assert with_defaults.credits == pytest.approx(7.1982 * 20 + 162)
    assert [item.index for item in batch.most_expensive(2)] == [1, 2]
    assert batch.worst_case_credits(2) == pytest.approx(3 * 270)


def test_over_budget_names_the_total_the_count_and_the_most_expensive() -> None:
    with pytest.raises(KlingBatchBudgetError) as info:
        check_batch_budget(ROWS, max_credits=200, label_field="sku")
    message = str(info.value)
    assert message.startswith(
        "batch budget: the 4 items would cost an estimated 270.0 credits (~$3.75), more than max_credits=200; "
        "nothing was submitted. Most expensive: item 1 (sku=lamp): 162.0 credits (~$2.25) for 15 s at 1080p, sound on; "
        "item 2 (sku=boat): 54.0 credits"
    )
    assert message.endswith("item 0 (sku=kite): 27.0 credits (~$0.375) for 5 s at 720p, sound off")  # ties: first
    assert "sku=cup" not in message  # three are named
    assert info.value.param == "max_credits"
    assert isinstance(info.value, KlingValidationError)
    with pytest.raises(KlingBatchBudgetError, match=r"more than max_usd=3"):
        check_batch_budget(ROWS, max_usd=3)
    assert check_batch_budget(ROWS, max_credits=270, max_usd=3.75).credits == 270.0  # at the limit is within


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([{}, {}, {"duration": 20}], {"max_credits": 99}, "item 2: duration: must be an integer from 3 to 15 (got 20)"),
        ([{}, {"quality": "HD"}], {"max_credits": 99}, "item 1: quality: must be one of"),
        ([{}, "a row"], {"max_credits": 99}, "item 1: must be a mapping of operator arguments (got str)"),
        ({"duration": 5}, {"max_credits": 99}, "rows: must be a list of operator arguments"),
        ([{"quality": "4k"}], {"max_credits": 99}, "batch budget: cannot be checked: 1 item: total unknown"),
        ([{}], {}, "max_credits: give max_credits or max_usd"),
        ([{}], {"max_credits": 0}, "max_credits: must be a positive number (got 0)"),
        ([{}], {"max_usd": float("nan")}, "max_usd: must be a positive number (got nan)"),
        ([{}], {"max_credits": 99, "defaults": {"duration": 2}}, "defaults: duration: must be an integer"),
    ],
)
def test_bad_batches_and_limits_name_the_item_or_the_argument(rows: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(KlingValidationError) as info:
        check_batch_budget(rows, **kwargs)
    assert str(info.value).startswith(message), str(info.value)


def test_a_literal_list_is_checked_when_the_dag_file_is_parsed() -> None:
    from airflow.sdk import DAG

    with DAG("literal_budget", schedule=None):
        KlingBatchBudgetOperator(task_id="ok", rows=ROWS, max_credits=300)
        with pytest.raises(KlingBatchBudgetError, match=r"the 4 items would cost an estimated 270\.0 credits"):
            KlingBatchBudgetOperator(task_id="over", rows=ROWS, max_credits=100)
        with pytest.raises(KlingValidationError, match="item 0: duration"):
            KlingBatchBudgetOperator(task_id="bad", rows=[{"duration": 1}], max_credits=100)
        with pytest.raises(KlingValidationError, match="max_credits: give max_credits or max_usd"):
            KlingBatchBudgetOperator(task_id="no_limit", rows=ROWS)
        # A templated limit is known at run time only; the other, literal one is still checked now.
        KlingBatchBudgetOperator(task_id="daily", rows=ROWS, max_credits="{{ var.value.kling_daily_credits }}")
        with pytest.raises(KlingValidationError, match=r"max_usd: must be a positive number \(got 0\)"):
            KlingBatchBudgetOperator(task_id="zero_usd", rows=ROWS, max_credits="{{ params.c }}", max_usd=0)


def test_a_list_known_only_at_run_time_is_checked_then() -> None:
    from airflow.sdk import DAG, task

    with DAG("xcom_budget", schedule=None):

        @task
        def rows() -> list[dict[str, Any]]:
            return ROWS

        # Over budget, but the rows come from a task: nothing to check while parsing.
        KlingBatchBudgetOperator(task_id="later", rows=rows(), max_credits=100)
        templated = [{"duration": "{{ params.d }}"}]
        KlingBatchBudgetOperator(task_id="templated", rows=templated, max_credits=100)
