"""The soak's DAG (tests/soak): one run maps ``params.count`` image-to-video generations.

Each generation's prompt names the soak, the run and its index, so the simulator's request log
ties every create call to one generation. The video goes to ``<out_dir>/video-<map index>.mp4``
(the soak gives each run its own folder). Retries are generous: chaos kills workers, triggerers
and the scheduler, and every killed try must be picked up by a retry that re-attaches, never by
paying again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from kling_provider.operators.kling import KlingImageToVideoOperator

#: Generations take 10-40 s here; polls every 0.5-3 s keep completion detection close.
SOAK_POLL = {"min_interval": 0.5, "max_interval": 3.0, "margin": 0.2, "max_tail_interval": 1.5}
SOAK_RETRY = {"max_attempts": 4, "backoff_base": 0.2, "backoff_cap": 2.0}
SOAK_RETRIES = 6

with DAG(
    dag_id="kling_soak",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={"marker": "m", "out_dir": "/tmp", "image": "x", "count": 1, "run": 0},
    tags=["kling", "soak"],
    max_active_tasks=2000,
    max_active_runs=100,
):

    @task(retries=SOAK_RETRIES, retry_delay=timedelta(seconds=2))
    def scenes(params: dict[str, object] | None = None) -> list[str]:
        """One prompt per generation: "soak <marker> run <r> scene <i>"."""
        assert params is not None
        return [f"soak {params['marker']} run {params['run']} scene {i}" for i in range(int(str(params["count"])))]

    KlingImageToVideoOperator.partial(
        task_id="generate",
        image_start="{{ params.image }}",
        duration=3,
        output_uri="{{ params.out_dir }}/video-{{ ti.map_index }}.mp4",
        deferrable=True,
        timeout=3600,
        retries=SOAK_RETRIES,
        retry_delay=timedelta(seconds=2),
        poll_policy=SOAK_POLL,
        http_retry_policy=SOAK_RETRY,
    ).expand(prompt=scenes())
