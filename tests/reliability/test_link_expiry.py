"""An expired result link fails the task for good, with the message that says why, on every
supported Airflow (3.0's AirflowFailException lives in airflow.exceptions, not airflow.sdk)."""

from __future__ import annotations

from typing import Any

import pytest

from kling_provider._compat import AirflowFailException
from kling_provider.exceptions import KlingLinkExpiredError
from kling_provider.models import Task
from kling_provider.operators.kling import KlingTextToVideoOperator

LINK = "https://files.example.com/results/task-unified-1-abc.mp4?expires=1"


class _ExpiredLinks:
    """A hook whose result link has expired, and whose task query hands back the same link."""

    def __init__(self) -> None:
        self.queried = 0

    def download(self, url: str, destination: str, **_: Any) -> Any:
        raise KlingLinkExpiredError(f"The result link on files.example.com no longer serves the video: {url}")

    def get_task(self, task_id: str) -> Task:
        self.queried += 1
        return _task()


def _task() -> Task:
    return Task.model_validate(
        {"id": "task-unified-1-abc", "status": "completed", "progress": 100, "created": 1, "results": [LINK]}
    )


def test_an_unchanged_expired_link_fails_the_task_without_retries(tmp_path: Any) -> None:
    op = KlingTextToVideoOperator(task_id="t", prompt="a kite", output_uri=str(tmp_path / "v.mp4"))
    hook = _ExpiredLinks()
    with pytest.raises(AirflowFailException, match="no longer serves the video"):
        op._download(hook, _task(), "1970-01-02T00:00:01+00:00")  # type: ignore[arg-type]
    assert hook.queried == 1, "asked EvoLink once for a fresh link"
    assert not (tmp_path / "v.mp4").exists()
