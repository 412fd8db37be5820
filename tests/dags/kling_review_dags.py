"""DAGs for the review tests (tests/test_video_review_dag.py): verification, poster frames, contact sheets.

Where the files go comes from ``params`` / run conf; the S3 connection ``aws_moto`` is set by the test.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from kling_provider.operators.kling import KlingTextToVideoOperator
from kling_provider.video.sheet import contact_sheet

FAST = {"min_interval": 0.1, "margin": 0.1, "max_tail_interval": 0.3, "settle": 0}
#: Downloads of a truncated file fail fast: three tries, no waiting.
QUICK_DOWNLOADS = {"max_attempts": 3, "backoff_base": 0, "backoff_cap": 0}
START = datetime(2026, 1, 1)
QUALITIES = ("720p", "1080p", "4k")
ASPECTS = ("16:9", "9:16", "1:1")
PROMPTS = ("paper boat on a rainy street", "red kite over green hills", "neon fox in the snow")


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False, params=params)


# Every quality x aspect ratio, sound on and off: the XCom "video" of each real MP4.
with _dag("review_matrix", folder="/tmp/unused"):
    for i, (quality, aspect) in enumerate((q, a) for q in QUALITIES for a in ASPECTS):
        KlingTextToVideoOperator(
            task_id=f"v_{quality}_{aspect.replace(':', 'x')}",
            prompt=f"{PROMPTS[i % 3]} {i}",
            duration=3,
            quality=quality,
            aspect_ratio=aspect,
            sound=i % 2 == 0,
            output_uri="{{ params.folder }}/" + f"v{i}.mp4",
            asset_alias=None,
            poll_policy=FAST,
        )

# One video, verified and with a poster frame, to any URI (local, file://, s3:// + connection).
for sound in (True, False):
    for on_mismatch in ("warn", "fail"):
        with _dag(
            f"review_one_{'sound' if sound else 'silent'}_{on_mismatch}",
            output_uri="/tmp/unused.mp4",
            conn_id="",
        ):
            KlingTextToVideoOperator(
                task_id="video",
                prompt="paper boat on a rainy street",
                duration=5,
                aspect_ratio="16:9",
                sound=sound,
                output_uri="{{ params.output_uri }}",
                output_conn_id="{{ params.conn_id }}",
                on_mismatch=on_mismatch,
                poster=True,
                retries=1,
                retry_delay=timedelta(0),
                http_retry_policy=QUICK_DOWNLOADS,
                poll_policy=FAST,
            )

# A poster frame at a chosen time.
with _dag("review_poster_at", output_uri="/tmp/unused.mp4"):
    KlingTextToVideoOperator(
        task_id="video",
        prompt="red kite over green hills",
        duration=5,
        aspect_ratio="9:16",
        output_uri="{{ params.output_uri }}",
        poster=True,
        poster_at=1.0,
        poll_policy=FAST,
    )


# A batch of variants (mapped) and their contact sheet: what a review DAG does.
@task
def sheet(results: Any, output_uri: str) -> dict[str, Any]:
    return contact_sheet(results, output_uri, captions=[p.split()[0] for p in PROMPTS])


with _dag("review_batch", folder="/tmp/unused"):
    variants = KlingTextToVideoOperator.partial(
        task_id="variant",
        duration=5,
        aspect_ratio="16:9",
        output_uri="{{ params.folder }}/variant-{{ ti.map_index }}.mp4",
        poster=True,
        asset_alias=None,
        poll_policy=FAST,
    ).expand(prompt=list(PROMPTS))
    sheet(variants.output, output_uri="{{ params.folder }}/sheet.png")
