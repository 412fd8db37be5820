"""DAGs for the output tests (tests/test_operators_storage.py): object storage, asset events, links.

Behaviour comes from ``params`` / run conf; the S3 connection ``aws_moto`` is set by the test.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, AssetAlias

from kling_provider.operators.kling import DEFAULT_ASSET_ALIAS, KlingTextToVideoOperator

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}
START = datetime(2026, 1, 1)


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False, params=params)


# s3:// through Airflow's object storage, with a templated key and a connection id.
with _dag("storage_t2v_s3", bucket="unused"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="a paper boat on a rainy street",
        duration=5,
        output_uri="s3://{{ params.bucket }}/{{ ds }}/v.mp4",
        output_conn_id="aws_moto",
        asset_alias=DEFAULT_ASSET_ALIAS,
        poll_policy=FAST,
    )

# Any URI (file://, s3://...) given whole by the run conf, no connection id.
with _dag("storage_t2v_uri", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="a paper boat on a rainy street",
        duration=5,
        output_uri="{{ params.output_uri }}",
        asset_alias=DEFAULT_ASSET_ALIAS,
        poll_policy=FAST,
    )

# No output_uri: the video stays at EvoLink's link, and the log says until when.
with _dag("storage_t2v_link_only"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="a paper boat on a rainy street",
        duration=5,
        poll_policy=FAST,
    )


# Scheduled on every saved video: the operators report them under this alias.
with DAG(
    dag_id="storage_on_new_video",
    start_date=START,
    schedule=[AssetAlias(DEFAULT_ASSET_ALIAS)],
    catchup=False,
):
    EmptyOperator(task_id="consume")
