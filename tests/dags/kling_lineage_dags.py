"""DAGs the lineage tests (tests/test_lineage.py) run with ``dag.test()``; inputs come from ``params``."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from kling_provider.operators.kling import (
    KlingCreateElementOperator,
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
)

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}
START = datetime(2026, 1, 1)
#: A reference image by URL: the signature in its query must not reach lineage.
SIDE_VIEW_URL = "https://images.example.com/mascot/side.png?X-Amz-Signature=secret"


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False, params=params)


with _dag("lineage_t2v", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="teaser",
        prompt="a red kite over green hills",
        duration=4,
        output_uri="{{ params.output_uri }}",
        poll_policy=FAST,
    )

with _dag("lineage_element_then_scene", frontal="", frame="", end_frame="", output_uri="/tmp/unused.mp4"):
    mascot = KlingCreateElementOperator(
        task_id="mascot",
        element_name="Mascot",
        element_description="An orange fox in a blue scarf",
        frontal_image="{{ params.frontal }}",
        refer_images=[SIDE_VIEW_URL],
        poll_policy=FAST,
    )
    scene = KlingImageToVideoOperator(
        task_id="scene",
        image_start="{{ params.frame }}",
        image_end="{{ params.end_frame }}",
        prompt="<<<element_1>>> waves",
        elements=["{{ ti.xcom_pull(task_ids='mascot')['element_id'] }}"],
        output_uri="{{ params.output_uri }}",
        poll_policy=FAST,
    )
    mascot >> scene

# Images read from and the video written to S3 (the connection aws_moto is set by the test).
with _dag("lineage_s3", bucket="unused"):
    KlingImageToVideoOperator(
        task_id="animate",
        image_start="s3://{{ params.bucket }}/frames/start.png",
        image_conn_id="aws_moto",
        prompt="the lighthouse beam sweeps over the sea",
        output_uri="s3://{{ params.bucket }}/videos/{{ ds }}/animate.mp4",
        output_conn_id="aws_moto",
        poll_policy=FAST,
    )

with _dag("lineage_refused", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="refused",
        prompt="something the content policy refuses",
        output_uri="{{ params.output_uri }}",
        poll_policy=FAST,
    )

# Deferred, and still running at its deadline: the trigger's timeout event names the task.
with _dag("lineage_timeout", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="late",
        prompt="a slow sunrise over the dunes",
        output_uri="{{ params.output_uri }}",
        timeout=1,
        deferrable=True,
        poll_policy=FAST,
    )
