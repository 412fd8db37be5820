"""The "Kling video" extra link outlives EvoLink's link (docs/logs.md, kling_provider/operators/links.py).

Airflow 3 stores what ``get_link`` returns as each try ends (XCom ``_link_KlingVideoLink``), and
the UI shows that value: these tests read it back from the metadata database after ``dag.test()``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_operators_rerun import run_dag, sidecar_of

from kling_provider.operators.links import browser_url
from kling_provider.operators.reuse import SIDECAR_SUFFIX

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]
LINK_KEY = "_link_KlingVideoLink"


def _s3(endpoint: str | None = None) -> Any:
    """What ``browser_url`` reads of an ObjectStoragePath: its s3fs filesystem's endpoint."""
    return SimpleNamespace(fs=SimpleNamespace(endpoint_url=endpoint, client_kwargs={}))


@pytest.mark.parametrize(
    ("uri", "destination", "expected"),
    [
        (
            "s3://videos/2026-12-06/teaser 1.mp4",
            _s3(),
            "https://console.aws.amazon.com/s3/object/videos?prefix=2026-12-06%2Fteaser%201.mp4",
        ),
        ("s3://videos/teaser.mp4", _s3("http://127.0.0.1:9000"), None),
        ("gs://videos/a/b.mp4", None, "https://console.cloud.google.com/storage/browser/_details/videos/a/b.mp4"),
        ("https://cdn.example.com/v.mp4", None, "https://cdn.example.com/v.mp4"),
        ("file:///data/videos/v.mp4", None, None),
        ("/data/videos/v.mp4", None, None),
        ("s3://bucket-only", _s3(), None),
        (None, None, None),
    ],
)
def test_where_a_browser_can_open_a_saved_video(uri: str | None, destination: Any, expected: str | None) -> None:
    assert browser_url(uri, destination) == expected


def test_an_aws_endpoint_in_the_environment_is_not_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio.internal:9000")
    assert browser_url("s3://videos/v.mp4", _s3()) is None


def test_the_link_is_evolinks_while_it_lives_for_a_local_video(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("rerun_skip", output_uri=tmp_path / "kite.mp4")
    result = run.xcom()
    assert result["video_url"].startswith(kling_connection.base_url + "/files/results/")
    assert run.xcom(LINK_KEY) == result["video_url"] == run.xcom("kling_video_url")


def test_a_day_later_the_link_says_evolinks_has_expired(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A re-run a day later returns the saved result; EvoLink's link in it is dead by then, and a
    local file cannot be opened from the UI: the link is left empty and the log says why."""
    video = tmp_path / "kite.mp4"
    run_dag("rerun_skip", output_uri=video)
    sidecar = video.with_name(video.name + SIDECAR_SUFFIX)
    document = sidecar_of(video)
    yesterday = (datetime.now(tz=timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")
    document["result"]["expires_at"] = yesterday  # as if the first run had been 25 hours ago
    sidecar.write_text(json.dumps(document))
    capfd.readouterr()

    again = run_dag("rerun_skip", output_uri=video)
    assert "success" in again.state
    assert again.xcom()["expires_at"] == yesterday
    assert again.xcom(LINK_KEY) == ""
    assert again.xcom("kling_video_url") is None
    log = capfd.readouterr().out
    expected = f"The 'Kling video' link is left empty: EvoLink's link expired at {yesterday}; the video is saved at "
    assert expected + video.as_uri() in log, log[-3000:]


def test_a_task_that_fails_before_submitting_has_an_empty_link_and_no_xcom_error(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "theirs.mp4"
    other.write_bytes(b"not ours")
    refused = run_dag("rerun_fail", output_uri=other)
    assert "failed" in refused.task_state
    assert refused.xcom(LINK_KEY) == ""
    log = capfd.readouterr().out
    assert "XCom not found" not in log
    assert "Failed to push an xcom for task operator extra link" not in log
