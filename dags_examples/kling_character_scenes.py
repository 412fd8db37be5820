"""Create a reusable character once, then render scenes with it.

The element operator returns ``{"element_id": ...}``; the scenes refer to it as
``<<<element_1>>>`` in their prompts.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from kling_provider.operators.kling import KlingCreateElementOperator, KlingImageToVideoOperator

with DAG(
    dag_id="kling_character_scenes",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={
        "frontal": "https://example.com/mascot-front.png",
        "side": "https://example.com/mascot-side.png",
        "background": "https://example.com/beach.png",
        "output_dir": "/tmp/kling-videos/scenes",
    },
    tags=["kling", "example"],
) as dag:
    mascot = KlingCreateElementOperator(
        task_id="create_mascot",
        element_name="Mascot",
        element_description="A friendly orange fox mascot in a blue scarf",
        frontal_image="{{ params.frontal }}",
        refer_images=["{{ params.side }}"],
    )
    KlingImageToVideoOperator(
        task_id="beach_scene",
        image_start="{{ params.background }}",
        prompt="<<<element_1>>> waves at the camera, then runs along the beach",
        elements=["{{ ti.xcom_pull(task_ids='create_mascot')['element_id'] }}"],
        duration=5,
        output_uri="{{ params.output_dir }}/beach.mp4",
    ).set_upstream(mascot)
