"""Mapped batches behind a batch budget, run by tests/test_batch_budget_dag.py with ``dag.test()``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from kling_provider.operators.budget import KlingBatchBudgetOperator
from kling_provider.operators.kling import KlingTextToVideoOperator

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}

# Three rows: 5 s + 5 s + 10 s at 720p, silent = 27 + 27 + 54 = 108 credits.
for dag_id, max_credits in (("batch_in_budget", 120), ("batch_over_budget", 100)):
    with DAG(dag_id=dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, params={"out": "/tmp/x"}):

        @task
        def catalogue(**context: Any) -> list[dict[str, Any]]:
            out = context["params"]["out"]
            durations = {"kite": 5, "lamp": 5, "boat": 10}
            return [
                {"sku": sku, "prompt": f"a {sku} on a white table", "duration": d, "output_uri": f"{out}/{sku}.mp4"}
                for sku, d in durations.items()
            ]

        budget = KlingBatchBudgetOperator(
            task_id="budget", rows=catalogue(), max_credits=max_credits, defaults={"quality": "720p"}, label_field="sku"
        )
        KlingTextToVideoOperator.partial(task_id="teaser", quality="720p", poll_policy=FAST).expand_kwargs(
            budget.output.map(lambda row: {k: v for k, v in row.items() if k != "sku"})
        )

# Rows from a mapped task: the guard reads a lazy XCom sequence.
with DAG(
    dag_id="batch_from_mapped_rows", start_date=datetime(2026, 1, 1), schedule=None, catchup=False, params={"out": "/x"}
):

    @task
    def row(sku: str, **context: Any) -> dict[str, Any]:
        return {"prompt": f"a {sku}", "duration": 3, "output_uri": f"{context['params']['out']}/{sku}.mp4"}

    guard = KlingBatchBudgetOperator(task_id="budget", rows=row.expand(sku=["cup", "pen"]), max_credits=40)
    KlingTextToVideoOperator.partial(task_id="teaser", poll_policy=FAST).expand_kwargs(guard.output)

# Limits from the run's conf (a daily budget from a Variable works the same way): rendered at run time.
with DAG(
    dag_id="batch_templated_limit",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={"out": "/x", "budget": "40"},
):

    @task
    def rows(**context: Any) -> list[dict[str, Any]]:
        out = context["params"]["out"]
        return [{"prompt": f"a {sku}", "duration": 3, "output_uri": f"{out}/{sku}.mp4"} for sku in ("cup", "pen")]

    guard = KlingBatchBudgetOperator(task_id="budget", rows=rows(), max_credits="{{ params.budget }}")
    KlingTextToVideoOperator.partial(task_id="teaser", poll_policy=FAST).expand_kwargs(guard.output)
