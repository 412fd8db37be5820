"""The main example: one product teaser a day, saved as an MP4 where ``output_dir`` says.

Run it against the bundled simulator with ``make demo`` (no key, no network), or against
EvoLink by setting ``AIRFLOW_CONN_KLING_DEFAULT='{"conn_type": "kling", "password": "<key>"}'``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from kling_provider.operators.kling import KlingTextToVideoOperator

with DAG(
    dag_id="kling_teaser",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    params={"product": "a ceramic coffee mug", "output_dir": "/tmp/kling-videos"},
    tags=["kling", "example"],
) as dag:
    KlingTextToVideoOperator(
        task_id="teaser",
        prompt="{{ params.product }} slowly rotating on a marble table, soft studio light, shallow depth of field",
        negative_prompt="text, watermark, blur",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        output_uri="{{ params.output_dir }}/teaser-{{ ds }}.mp4",
        max_credits=50,
    )
