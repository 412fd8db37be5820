"""DAGs for the reliability tests (tests/reliability); behaviour comes from ``params`` / run conf.

``reliability_matrix_{deferred,worker}``: one image-to-video generation from a local image, so a
single run goes through every phase (upload, submit, poll, download). Small backoffs keep the
fault matrix fast; ``retries=2`` lets a transient fault that outlasts the hook's own retries
spill into an Airflow retry, which must re-attach rather than pay again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from kling_provider.operators.kling import KlingImageToVideoOperator

#: Poll about every 0.1 s: simulated generations take a fraction of a second.
FAST_POLL = {"min_interval": 0.05, "max_interval": 0.1, "margin": 0.02, "max_tail_interval": 0.1}
#: The hook retries each call this many times, backing off only milliseconds.
MATRIX_MAX_ATTEMPTS = 3
FAST_RETRY = {"max_attempts": MATRIX_MAX_ATTEMPTS, "backoff_base": 0.01, "backoff_cap": 0.05}
#: Airflow retries of a matrix task (each must re-attach to the task a previous try paid for).
MATRIX_RETRIES = 2
START = datetime(2026, 1, 1)

for deferrable in (True, False):
    with DAG(
        dag_id=f"reliability_matrix_{'deferred' if deferrable else 'worker'}",
        start_date=START,
        schedule=None,
        catchup=False,
        params={"image": "/tmp/unused.png", "output_uri": "/tmp/unused.mp4", "marker": "m"},
        tags=["kling", "reliability"],
    ):
        KlingImageToVideoOperator(
            task_id="generate",
            image_start="{{ params.image }}",
            prompt="the lighthouse beam sweeps over the waves ({{ params.marker }})",
            duration=3,
            output_uri="{{ params.output_uri }}",
            deferrable=deferrable,
            timeout=60,
            retries=MATRIX_RETRIES,
            retry_delay=timedelta(0),
            poll_policy=FAST_POLL,
            http_retry_policy=FAST_RETRY,
        )
