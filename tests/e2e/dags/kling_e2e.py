"""DAGs for the end-to-end tests: one Kling text-to-video task each, steered by the run's conf.

``conf`` (validated as params): ``prompt`` carries a marker unique to the test, so the test can
find its own requests in the simulator's log; ``output_uri`` is where the MP4 goes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from kling_provider.operators.kling import KlingTextToVideoOperator

PARAMS = {"prompt": "a ceramic coffee mug on a marble table", "output_uri": "/tmp/kling-e2e/unset.mp4"}


def _dag(dag_id: str, **operator_kwargs: Any) -> DAG:
    with DAG(
        dag_id=dag_id,
        start_date=datetime(2026, 1, 1),
        schedule=None,
        catchup=False,
        params=PARAMS,
        tags=["kling", "e2e"],
    ) as dag:
        KlingTextToVideoOperator(
            task_id="generate",
            prompt="{{ params.prompt }}",
            duration=5,
            quality="720p",
            aspect_ratio="16:9",
            output_uri="{{ params.output_uri }}",
            max_credits=50,
            **operator_kwargs,
        )
    return dag


#: Waits in the triggerer.
deferrable = _dag("kling_e2e_deferrable", deferrable=True)
#: Waits on the worker.
blocking = _dag("kling_e2e_blocking", deferrable=False)
#: Waits on the worker; a killed worker's retry must re-attach, not pay again.
worker_retry = _dag("kling_e2e_worker_retry", deferrable=False, retries=1, retry_delay=timedelta(seconds=1))
#: Waits in the triggerer, which the test kills and replaces; no retries, so nothing hides a failure.
#: Re-checks after 2 s of a long wait, so the first poll (the test's cue to kill) lands mid-generation
#: instead of at the estimated end.
triggerer_restart = _dag("kling_e2e_triggerer_restart", deferrable=True, retries=0, poll_policy={"recheck_after": 2.0})
