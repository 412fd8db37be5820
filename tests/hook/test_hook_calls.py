"""KlingHook happy paths against the simulator, in-process and over loopback HTTP, sync and async.

Every generation is counted: exactly one POST per task, polls as many as the test made happen,
and the downloaded file is the simulator's video byte for byte.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kling_provider.exceptions import KlingSubmissionUnknownError, KlingTimeoutError
from kling_provider.models import Task, TaskStatus
from kling_provider.testing import Fault, SimClock
from kling_provider.testing.media import make_png, mp4_info

from .support import (
    API_KEY,
    FLAVOURS,
    MODES,
    WRONG_KEY,
    Caller,
    Flavour,
    Loopback,
    Mode,
    SimEnv,
    assert_request_log_secret_free,
    assert_secret_free,
    open_env,
    part_files,
    text_request,
)


@pytest.mark.parametrize(
    ("quality", "aspect_ratio", "duration", "size"),
    [("720p", "16:9", 5, (1280, 720)), ("1080p", "9:16", 3, (1080, 1920))],
)
def test_submit_poll_download(
    env: SimEnv,
    caller: Caller,
    tmp_path: Path,
    quality: str,
    aspect_ratio: str,
    duration: int,
    size: tuple[int, int],
) -> None:
    hook = env.hook()
    request = text_request(duration=duration, quality=quality, aspect_ratio=aspect_ratio)

    created = caller.submit(hook, request)
    assert created.status is TaskStatus.PENDING
    assert created.id.startswith("task-unified-")
    assert created.estimated_time == 3
    assert created.usage is not None and created.usage.credits_reserved == env.sim.task(created.id).spec.credits

    running = caller.get_task(hook, created.id)
    assert running.status is TaskStatus.PENDING and running.video_url is None
    env.finish(created.id)
    done = caller.get_task(hook, created.id)
    assert done.status is TaskStatus.COMPLETED and done.progress == 100
    assert done.video_url is not None and done.video_url.startswith(env.base_url + "/files/results/")

    target = tmp_path / "out" / "teaser.mp4"
    saved = hook.download(done.video_url, target)

    expected = env.sim.video(created.id)
    data = target.read_bytes()
    assert saved.uri == target.resolve().as_uri()
    assert saved.size == len(expected) == len(data)
    assert data == expected
    assert data[4:8] == b"ftyp"
    info = mp4_info(target)
    assert (info.width, info.height) == size
    assert info.duration_s == pytest.approx(duration)
    assert part_files(tmp_path) == []
    assert env.sim.count(method="POST", phase="submit") == 1
    assert len(env.sim.tasks) == 1
    assert env.requests_by_phase() == {"submit": 1, "poll": 2, "download": 1}
    assert_request_log_secret_free(env.sim)


def test_wait_for_task_follows_the_task_to_the_end(env: SimEnv) -> None:
    """The clock moves 1 s per poll: pending, processing (rising), completed; one POST."""
    hook = env.hook()
    task = hook.submit(text_request())
    seen: list[Task] = []

    def on_poll(polled: Task) -> None:
        seen.append(polled)
        env.sim.clock.advance(1.0)

    done = hook.wait_for_task(task.id, on_poll=on_poll)

    assert done.status is TaskStatus.COMPLETED and done.video_url
    statuses = [t.status for t in seen]
    assert statuses[0] is TaskStatus.PENDING
    assert TaskStatus.PROCESSING in statuses
    assert statuses[-1] is TaskStatus.COMPLETED
    progress = [t.progress for t in seen]
    assert progress == sorted(progress)
    assert env.sim.count(phase="submit") == 1
    assert env.sim.count(phase="poll") == len(seen) == 4  # t = 0, 1, 2 (processing), 3 (done)


def test_wait_for_task_on_a_running_clock(monkeypatch: pytest.MonkeyPatch, loopback: Loopback, tmp_path: Path) -> None:
    """No help from the test: the simulator runs on real time and the hook polls until done."""
    with open_env(
        "loopback", monkeypatch, loopback, clock=SimClock(speed=1.0), generation_seconds=0.3, pending_seconds=0.05
    ) as env:
        hook = env.hook()
        task = hook.submit(text_request())
        done = hook.wait_for_task(task.id, timeout=20)
        assert done.status is TaskStatus.COMPLETED
        assert done.video_url is not None
        saved = hook.download(done.video_url, tmp_path / "v.mp4")
        assert mp4_info(tmp_path / "v.mp4").width == 1280
        assert saved.size == (tmp_path / "v.mp4").stat().st_size
        assert env.sim.count(phase="submit") == 1
        assert env.sim.count(phase="poll") >= 2


def test_wait_for_task_deadline(env: SimEnv) -> None:
    """The clock stands still, so the task never ends: the wait gives up, the task is not resubmitted."""
    hook = env.hook()
    task = hook.submit(text_request())
    with pytest.raises(KlingTimeoutError) as info:
        hook.wait_for_task(task.id, timeout=0.2)
    err = info.value
    assert err.task_id == task.id
    assert task.id in err.message and "re-attach" in err.message
    assert env.sim.count(phase="submit") == 1
    assert env.sim.count(phase="poll") >= 1
    assert_secret_free(err)


def test_connection_with_the_right_key(env: SimEnv) -> None:
    ok, message = env.hook().test_connection()
    assert ok is True
    assert env.base_url in message and "accepted" in message
    assert API_KEY not in message
    assert env.requests_by_phase() == {"poll": 1}
    assert env.sim.tasks == []  # nothing created, nothing billed


def test_connection_with_a_wrong_key(env: SimEnv) -> None:
    env.connect(key=WRONG_KEY)
    hook = env.hook()
    ok, message = hook.test_connection()
    assert ok is False
    assert "401" in message and "API key" in message
    assert WRONG_KEY not in message
    assert env.requests_by_phase() == {"poll": 1}  # a 401 is final: not retried
    assert [r.authorized for r in env.sim.requests] == [False]
    assert WRONG_KEY not in repr(env.sim.requests)
    assert_secret_free(hook, hook.settings, key=WRONG_KEY)


def test_the_key_never_shows(
    env: SimEnv,
    caller: Caller,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """repr of the hook and its settings, errors, the simulator's log and the hook's own log lines.

    The hook logs through Airflow's structlog logger, which writes to stdout outside a task
    runner, so both the logging records (caplog) and the process output (capsys) are checked.
    """
    caplog.set_level(logging.DEBUG)
    env.sim.faults.add(Fault(phase="submit", kind="status", status=429, times=1))
    env.sim.faults.add(Fault(phase="upload", kind="status", status=503, times=1))
    env.sim.faults.add(Fault(phase="poll", kind="drop", times=1))
    env.sim.faults.add(Fault(phase="download", kind="drop", processed=True, times=1))
    hook = env.hook()
    hook.upload_image(make_png(640, 480), field="image_start")
    task = caller.submit(hook, text_request())
    env.finish(task.id)
    done = caller.get_task(hook, task.id)
    assert done.video_url is not None
    hook.download(done.video_url, tmp_path / "v.mp4")
    env.sim.faults.add(Fault(kind="lost_submit_response"))
    with pytest.raises(KlingSubmissionUnknownError) as lost:
        caller.submit(hook, text_request())

    assert_secret_free(hook, hook.settings, lost.value)
    assert_request_log_secret_free(env.sim)
    assert all(r.authorized for r in env.sim.requests if r.phase != "download")
    assert env.requests_by_phase() == {"upload": 2, "submit": 3, "poll": 2, "download": 2}
    # The retries above were logged; none of those lines (nor anything else captured) shows the key.
    out = capsys.readouterr()
    logged = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records), out.out, out.err])
    assert logged.count("retrying in") >= 3 and task.id in logged
    assert "Download attempt 1 failed" in logged
    assert API_KEY not in logged


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", MODES)
def test_each_call_sends_the_bearer_key(
    monkeypatch: pytest.MonkeyPatch, loopback: Loopback, mode: Mode, flavour: Flavour
) -> None:
    """The simulator only accepts the configured key: every API call carried it."""
    with open_env(mode, monkeypatch, loopback) as env:
        hook = env.hook()
        with Caller.open(flavour) as caller:
            task = caller.submit(hook, text_request())
            caller.get_task(hook, task.id)
        records = env.sim.requests
        assert [(r.method, r.phase, r.status, r.authorized) for r in records] == [
            ("POST", "submit", 200, True),
            ("GET", "poll", 200, True),
        ]
