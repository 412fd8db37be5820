"""Mapped Kling operators that must parse and run, run by tests/test_operators_mapped.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from kling_provider.operators.kling import KlingTextToVideoOperator

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}

with DAG(
    dag_id="mapped_teasers",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={"out": "/tmp/unused", "product": "kite"},
):

    @task
    def prompts() -> list[str]:
        return ["a red kite over hills", "a red kite at dusk"]

    @task
    def durations() -> list[int]:
        return [4]

    # An XComArg list; the partial() arguments are literal and checked while parsing.
    KlingTextToVideoOperator.partial(
        task_id="from_xcom",
        duration=3,
        quality="720p",
        max_credits=20,
        output_uri="{{ params.out }}/xcom-{{ ti.map_index }}.mp4",
        poll_policy=FAST,
    ).expand(prompt=prompts())

    # A literal list, checked item by item; the shots add up to a duration known only at run time.
    KlingTextToVideoOperator.partial(
        task_id="literal",
        output_uri="{{ params.out }}/literal-{{ ti.map_index }}.mp4",
        poll_policy=FAST,
        max_credits=30,
    ).expand(prompt=["a paper boat", "a glass lamp"], duration=durations())

    # expand_kwargs over literal rows with templated values.
    rows: list[dict[str, Any]] = [
        {
            "prompt": "a {{ params.product }} on a white table",
            "duration": 3,
            "output_uri": "{{ params.out }}/row-0.mp4",
        },
        {
            "prompt": "a {{ params.product }} in the rain",
            "duration": 4,
            "output_uri": "{{ params.out }}/row-1.mp4",
        },
    ]
    KlingTextToVideoOperator.partial(task_id="rows", quality="720p", poll_policy=FAST).expand_kwargs(rows)
