"""A DAG in your project: one product video a day, saved where ``params.output_dir`` says."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from kling_provider.operators.kling import KlingTextToVideoOperator

with DAG(
    dag_id="product_video",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    params={"product": "a ceramic coffee mug", "output_dir": "/data/videos"},
) as dag:
    KlingTextToVideoOperator(
        task_id="teaser",
        prompt="{{ params.product }} slowly rotating on a marble table, soft studio light",
        duration=5,
        quality="720p",
        output_uri="{{ params.output_dir }}/teaser-{{ ds }}.mp4",
        max_credits=50,
        retries=1,
    )
