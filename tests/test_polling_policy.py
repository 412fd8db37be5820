"""Server-guided polling: few queries, and a look shortly after the task should be done."""

from __future__ import annotations

import pytest

from kling_provider.hooks.polling import PollPolicy
from kling_provider.models.responses import Task

POLICY = PollPolicy(min_interval=2, max_interval=120, recheck_after=45, margin=1)


def task(progress: float = 0, estimated_time: float | None = 180) -> Task:
    return Task.model_validate(
        {
            "id": "task-unified-1-x",
            "status": "processing",
            "progress": progress,
            "task_info": {"estimated_time": estimated_time},
        }
    )


def test_first_wait_is_split_when_the_estimate_is_long() -> None:
    # Right after submit, 180 s expected: wait ~60 % of it, then re-check with progress.
    delay = POLICY.next_delay(task(0), elapsed=0)
    assert 100 <= delay <= 120


def test_progress_predicts_the_end() -> None:
    # 90 s in at 50 %: 90 s remain; the wait is split once because it is long.
    assert POLICY.next_delay(task(50), elapsed=90) == pytest.approx(54)
    # 150 s in at 90 %: ~16.7 s remain; sleep to just after the predicted end.
    assert POLICY.next_delay(task(90), elapsed=150) == pytest.approx(150 * 10 / 90 + 1)


def test_overdue_tasks_are_polled_at_the_tail_interval() -> None:
    assert POLICY.next_delay(task(100), elapsed=400) == pytest.approx(180 * POLICY.tail_fraction)
    # Stuck at 99.9 % long after the estimate: still the tail interval, not the 2 s floor.
    assert POLICY.next_delay(task(99.9), elapsed=400) == pytest.approx(180 * POLICY.tail_fraction)
    assert POLICY.next_delay(task(0, estimated_time=10), elapsed=30) == 2  # floor


def test_without_estimate_the_default_is_used() -> None:
    assert POLICY.next_delay(task(0, estimated_time=None), elapsed=0) == pytest.approx(108)


def test_bounds_hold() -> None:
    for progress in (0, 1, 5, 50, 99):
        for elapsed in (0, 1, 10, 100, 1000):
            delay = POLICY.next_delay(task(progress), elapsed)
            assert POLICY.min_interval <= delay <= POLICY.max_interval


def test_first_query_waits_for_the_estimate_after_submission() -> None:
    # Just submitted (progress 0, 40 s expected): the first look is just after the estimate.
    assert POLICY.first_delay(elapsed=0.5, estimate=40) == pytest.approx(40.5)
    # A long estimate is split as next_delay splits it, so a drifting estimate is corrected once.
    assert POLICY.first_delay(elapsed=0, estimate=180) == POLICY.next_delay(task(0, estimated_time=180), elapsed=0)
    # Picked up past its estimate (another triggerer, a restart): look at once.
    assert POLICY.first_delay(elapsed=50, estimate=40) == 0
