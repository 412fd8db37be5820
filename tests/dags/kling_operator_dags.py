"""DAGs the operator tests run with ``dag.test()``; behaviour comes from ``params`` / run conf."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from kling_provider.operators.kling import (
    KlingCreateElementOperator,
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
)

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}
START = datetime(2026, 1, 1)


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False, params=params)


for deferrable in (True, False):
    with _dag(f"t2v_{'deferred' if deferrable else 'worker'}", output_uri="/tmp/unused.mp4"):
        KlingTextToVideoOperator(
            task_id="teaser",
            prompt="a red kite over green hills",
            duration=4,
            aspect_ratio="9:16",
            output_uri="{{ params.output_uri }}",
            deferrable=deferrable,
            poll_policy=FAST,
        )

with _dag("t2v_retrying", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="something",
        output_uri="{{ params.output_uri }}",
        retries=2,
        retry_delay=timedelta(0),
        poll_policy=FAST,
    )

with _dag("t2v_retrying_briefly", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="something",
        output_uri="{{ params.output_uri }}",
        retries=1,
        retry_delay=timedelta(0),
        poll_policy=FAST,
        http_retry_policy={"max_attempts": 2, "backoff_base": 0.01},
    )

with _dag("t2v_rendered_too_long"):
    KlingTextToVideoOperator(task_id="too_long", prompt="{{ 'x' * 2600 }}", poll_policy=FAST)

with _dag("element_then_scene", frontal="", side="", frame="", output_uri="/tmp/unused.mp4"):
    mascot = KlingCreateElementOperator(
        task_id="mascot",
        element_name="Mascot",
        element_description="An orange fox in a blue scarf",
        frontal_image="{{ params.frontal }}",
        refer_images=["{{ params.side }}"],
        poll_policy=FAST,
    )
    scene = KlingImageToVideoOperator(
        task_id="scene",
        image_start="{{ params.frame }}",
        prompt="<<<element_1>>> waves",
        elements=["{{ ti.xcom_pull(task_ids='mascot')['element_id'] }}"],
        output_uri="{{ params.output_uri }}",
        poll_policy=FAST,
    )
    mascot >> scene

with _dag("i2v_image", frame=""):
    KlingImageToVideoOperator(task_id="animate", image_start="{{ params.frame }}", poll_policy=FAST)
