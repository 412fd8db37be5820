"""DAGs for the reliability tests (tests/reliability); behaviour comes from ``params`` / run conf.

``reliability_matrix_{deferred,worker}``: one image-to-video generation from a local image, so a
single run goes through every phase (upload, submit, poll, download). Small backoffs keep the
fault matrix fast; ``retries=2`` lets a transient fault that outlasts the hook's own retries
spill into an Airflow retry, which must re-attach rather than pay again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from kling_provider.operators.kling import KlingImageToVideoOperator, KlingTextToVideoOperator

#: Poll about every 0.1 s: simulated generations take a fraction of a second.
FAST_POLL = {"min_interval": 0.05, "max_interval": 0.1, "margin": 0.02, "max_tail_interval": 0.1, "settle": 0}
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


# -- on a real Airflow (tests/reliability/test_process_faults.py, test_load.py, test_secrets.py) ---------

#: Polls every 0.5-2 s: generations there take tens of seconds, and 100 of them poll at once.
CLUSTER_POLL = {"min_interval": 0.5, "max_interval": 2.0, "margin": 0.2, "max_tail_interval": 1.0}
CLUSTER_RETRY = {"max_attempts": 4, "backoff_base": 0.2, "backoff_cap": 1.0}
#: The deadline probe's wait: it must run out while the triggerer is down (test_process_faults).
PROBE_TIMEOUT = 40
FIFTY, HUNDRED = 50, 100
_CLUSTER_PARAMS = {"prompt": "p", "output_uri": "/tmp/unused.mp4", "marker": "m", "out_dir": "/tmp", "image": "x"}


def _cluster_dag(dag_id: str) -> DAG:
    return DAG(
        dag_id=dag_id,
        start_date=START,
        schedule=None,
        catchup=False,
        params=_CLUSTER_PARAMS,
        tags=["kling", "reliability"],
        max_active_tasks=HUNDRED,
    )


for deferrable in (True, False):
    # One generation; a killed worker or triggerer must cost nothing more (one retry allowed).
    with _cluster_dag(f"reliability_cluster_{'deferred' if deferrable else 'worker'}"):
        KlingTextToVideoOperator(
            task_id="generate",
            prompt="{{ params.prompt }}",
            duration=3,
            output_uri="{{ params.output_uri }}",
            deferrable=deferrable,
            timeout=600,
            retries=1,
            retry_delay=timedelta(seconds=1),
            poll_policy=CLUSTER_POLL,
            http_retry_policy=CLUSTER_RETRY,
        )

# Fifty generations waiting in the triggerer at once; no retries, so nothing hides a lost wait.
with _cluster_dag("reliability_fifty"):
    KlingTextToVideoOperator.partial(
        task_id="generate",
        duration=3,
        output_uri="{{ params.out_dir }}/video-{{ ti.map_index }}.mp4",
        deferrable=True,
        timeout=900,
        retries=0,
        poll_policy=CLUSTER_POLL,
        http_retry_policy=CLUSTER_RETRY,
    ).expand(prompt=[f"generation {i} of {FIFTY} ({{{{ params.marker }}}})" for i in range(FIFTY)])

# A wait whose deadline passes while the triggerer is down: it must end at the original deadline.
with _cluster_dag("reliability_deadline_probe"):
    KlingTextToVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        duration=3,
        deferrable=True,
        timeout=PROBE_TIMEOUT,
        retries=0,
        poll_policy=CLUSTER_POLL,
        http_retry_policy=CLUSTER_RETRY,
    )

# The load run: a hundred image-to-video generations from one local image, through transient
# faults; Airflow retries may re-attach, never pay again.
with _cluster_dag("reliability_load"):
    KlingImageToVideoOperator.partial(
        task_id="generate",
        image_start="{{ params.image }}",
        duration=3,
        output_uri="{{ params.out_dir }}/video-{{ ti.map_index }}.mp4",
        deferrable=True,
        timeout=900,
        retries=3,
        retry_delay=timedelta(seconds=1),
        poll_policy=CLUSTER_POLL,
        http_retry_policy=CLUSTER_RETRY,
    ).expand(prompt=[f"scene {i} of {HUNDRED} ({{{{ params.marker }}}})" for i in range(HUNDRED)])

# A task that logs the API key on purpose (logging and print): the task log must show it masked.
with _cluster_dag("reliability_secret_probe"):

    @task(task_id="log_the_key")
    def log_the_key() -> str:
        import logging

        from kling_provider.hooks.kling import KlingHook

        key = KlingHook().settings.api_key
        logging.getLogger("kling.reliability").warning("the API key is %s (logging)", key)
        print(f"the API key is {key} (print)")
        return "logged"

    log_the_key()
