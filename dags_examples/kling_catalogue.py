"""Animate a catalogue: one image-to-video task per product image (dynamic task mapping).

Images may be https URLs, local paths or object-storage URIs; non-URLs are checked and uploaded
through EvoLink's file API before anything is billed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from kling_provider.operators.kling import KlingImageToVideoOperator

with DAG(
    dag_id="kling_catalogue",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={"images": [], "output_dir": "/tmp/kling-videos/catalogue"},
    tags=["kling", "example"],
) as dag:

    @task
    def list_images(**context: object) -> list[dict[str, str]]:
        params = context["params"]
        assert isinstance(params, dict)
        return [
            {"image_start": image, "output_uri": f"{params['output_dir']}/item-{number}.mp4"}
            for number, image in enumerate(params["images"])
        ]

    KlingImageToVideoOperator.partial(
        task_id="animate",
        prompt="gentle camera push-in, the product catches the light",
        duration=5,
        max_credits=30,
    ).expand_kwargs(list_images())
