"""DAGs for the re-run tests (tests/test_operators_rerun.py): the same request twice at one output.

Prompt, output and image come from ``params`` / run conf, so a test can change one of them
between runs; ``if_exists`` is not templated, so each mode has its own DAG.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from kling_provider.operators.kling import KlingImageToVideoOperator, KlingTextToVideoOperator

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}
START = datetime(2026, 1, 1)


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False, params=params)


# Local paths and file:// URIs, deferred (the default) and on the worker.
for mode in ("skip", "overwrite", "fail"):
    for deferrable in (True, False):
        with _dag(f"rerun_{mode}{'' if deferrable else '_worker'}", prompt="a red kite", output_uri="/tmp/unused.mp4"):
            KlingTextToVideoOperator(
                task_id="video",
                prompt="{{ params.prompt }}",
                duration=5,
                output_uri="{{ params.output_uri }}",
                if_exists=mode,
                deferrable=deferrable,
                poll_policy=FAST,
            )

# s3:// through Airflow's object storage (connection aws_moto, set by the test).
for mode in ("skip", "overwrite", "fail"):
    with _dag(f"rerun_s3_{mode}", prompt="a red kite", bucket="unused"):
        KlingTextToVideoOperator(
            task_id="video",
            prompt="{{ params.prompt }}",
            duration=5,
            output_uri="s3://{{ params.bucket }}/teasers/kite.mp4",
            output_conn_id="aws_moto",
            if_exists=mode,
            poll_policy=FAST,
        )

# A local first frame: the fingerprint names it by content, not by the upload's URL.
with _dag("rerun_i2v", image="/tmp/unused.png", output_uri="/tmp/unused.mp4"):
    KlingImageToVideoOperator(
        task_id="video",
        prompt="the kite takes off",
        image_start="{{ params.image }}",
        duration=5,
        output_uri="{{ params.output_uri }}",
        poll_policy=FAST,
    )

# Retries, for a first try that dies between saving the video and finishing.
with _dag("rerun_retrying", prompt="a red kite", output_uri="/tmp/unused.mp4"):
    from datetime import timedelta

    KlingTextToVideoOperator(
        task_id="video",
        prompt="{{ params.prompt }}",
        duration=5,
        output_uri="{{ params.output_uri }}",
        retries=1,
        retry_delay=timedelta(seconds=0),
        poll_policy=FAST,
    )

# kling_conn_id names a connection nobody created (tests/test_connection_errors.py).
with _dag("rerun_missing_connection", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="a red kite",
        duration=5,
        output_uri="{{ params.output_uri }}",
        kling_conn_id="kling_nowhere",
        poll_policy=FAST,
    )
