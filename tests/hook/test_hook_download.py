"""KlingHook.download against the simulator's result links: faults, expiry, atomic files.

A download is retried on anything transient (it never resubmits the generation); whatever
happens, the destination holds either nothing new or the complete, checked video, and no
``.part-`` file is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kling_provider.exceptions import (
    KlingError,
    KlingLinkExpiredError,
    KlingNotFoundError,
    KlingRateLimitError,
    KlingServerError,
)
from kling_provider.models import Task, TaskStatus
from kling_provider.testing import Fault
from kling_provider.testing.media import mp4_info

from .support import (
    API_KEY,
    MAX_ATTEMPTS,
    SHORT_TIMEOUT,
    SimEnv,
    SleepLog,
    assert_secret_free,
    part_files,
    text_request,
)


def _completed(env: SimEnv) -> Task:
    hook = env.hook()
    task = hook.submit(text_request())
    env.finish(task.id)
    done = hook.get_task(task.id)
    assert done.status is TaskStatus.COMPLETED and done.video_url is not None
    return done


def _downloads(env: SimEnv) -> int:
    return env.sim.count(phase="download")


def _video(env: SimEnv) -> bytes:
    """What the simulator serves for the test's one (5 s 720p 16:9) task."""
    (task,) = env.sim.tasks
    return env.sim.video(task.id)


def _assert_complete(env: SimEnv, path: Path) -> None:
    data = path.read_bytes()
    assert data == _video(env)
    info = mp4_info(path)
    assert (info.width, info.height) == (1280, 720)
    assert info.duration_s == pytest.approx(5.0)


@pytest.mark.parametrize("form", ["path", "str", "file-uri", "object-storage"])
def test_destinations(env: SimEnv, tmp_path: Path, form: str) -> None:
    from airflow.sdk import ObjectStoragePath

    url = _completed(env).video_url
    assert url is not None
    target = tmp_path / "new" / "dir" / "clip.mp4"
    destination: Any = {
        "path": target,
        "str": str(target),
        "file-uri": target.as_uri(),
        "object-storage": ObjectStoragePath(target.as_uri()),
    }[form]
    saved = env.hook().download(url, destination)
    _assert_complete(env, target)
    assert saved.size == len(_video(env))
    assert saved.uri.endswith("/new/dir/clip.mp4")
    assert part_files(tmp_path) == []
    assert _downloads(env) == 1


def test_download_does_not_send_the_key(env: SimEnv, tmp_path: Path) -> None:
    """Result links are pre-signed and may point anywhere: no Authorization header goes there."""
    url = _completed(env).video_url
    assert url is not None
    env.hook().download(url, tmp_path / "v.mp4")
    (record,) = [r for r in env.sim.requests if r.phase == "download"]
    assert record.key_present is False
    assert record.status == 200
    assert API_KEY not in repr(record)


@dataclass(frozen=True)
class Case:
    faults: tuple[dict[str, Any], ...]
    error: type[KlingError] | None
    downloads: int
    words: tuple[str, ...] = ()
    first_delay: tuple[float, float] | None = None
    timeout: float = 5.0


_GAVE_UP = f"gave up after {MAX_ATTEMPTS} attempts"
_BACKOFF = (0.005, 0.05)

DOWNLOAD_CASES: dict[str, Case] = {
    "500-burst": Case(({"status": 500, "times": 2},), None, 3, first_delay=_BACKOFF),
    "502-burst": Case(({"status": 502, "times": 2},), None, 3),
    "503-burst": Case(({"status": 503, "times": MAX_ATTEMPTS - 1},), None, MAX_ATTEMPTS),
    "429-retry-after-header": Case(({"status": 429, "retry_after": 5},), None, 2, first_delay=(5, 5.5)),
    "429-no-hint": Case(({"status": 429},), None, 2, first_delay=_BACKOFF),
    "503-exhausted": Case(({"status": 503, "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, (_GAVE_UP, "HTTP 503")),
    "429-exhausted": Case(
        ({"status": 429, "retry_after": 3, "rate": 1.0},), KlingRateLimitError, MAX_ATTEMPTS, (_GAVE_UP, "HTTP 429")
    ),
    "drop-mid-body": Case(({"kind": "drop", "processed": True},), None, 2),
    "drop-default": Case(({"kind": "drop"},), None, 2),
    "drop-before-the-video": Case(({"kind": "drop", "processed": False},), None, 2),
    "drop-exhausted": Case(
        ({"kind": "drop", "processed": True, "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, (_GAVE_UP, "interrupted")
    ),
    "slow-past-timeout": Case(({"kind": "slow", "delay": 30},), None, 2, timeout=SHORT_TIMEOUT),
    "slow-exhausted": Case(
        ({"kind": "slow", "delay": 30, "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        (_GAVE_UP, "Timeout"),
        timeout=SHORT_TIMEOUT,
    ),
    "slow-within-timeout": Case(({"kind": "slow", "delay": 0.05},), None, 1),
    "malformed-html-502": Case(({"kind": "malformed", "malformed": "html"},), None, 2),
    "malformed-empty-200": Case(({"kind": "malformed", "malformed": "empty"},), None, 2),
    "malformed-invalid-json-200": Case(({"kind": "malformed", "malformed": "invalid_json"},), None, 2),
    "malformed-exhausted": Case(
        ({"kind": "malformed", "malformed": "invalid_json", "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        (_GAVE_UP, "not an MP4"),
    ),
    # A 2xx that is not the video (no Range was asked for): nothing is written, asked again.
    "206-then-ok": Case(({"status": 206},), None, 2, first_delay=_BACKOFF),
    "206-exhausted": Case(({"status": 206, "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, (_GAVE_UP, "HTTP 206")),
    # The CDN says the object is gone or the signature no longer holds: final, not retried.
    "403": Case(({"status": 403},), KlingLinkExpiredError, 1, ("HTTP 403", "24 hours")),
    "404": Case(({"status": 404},), KlingLinkExpiredError, 1, ("HTTP 404",)),
    "410": Case(({"status": 410},), KlingLinkExpiredError, 1, ("HTTP 410",)),
}


@pytest.mark.parametrize("name", list(DOWNLOAD_CASES))
def test_download_fault(env: SimEnv, sleeps: SleepLog, tmp_path: Path, name: str) -> None:
    case = DOWNLOAD_CASES[name]
    env.connect(timeout=case.timeout)
    url = _completed(env).video_url
    assert url is not None
    faults = [env.sim.faults.add(Fault(**{"phase": "download", **spec})) for spec in case.faults]
    target = tmp_path / "out" / "clip.mp4"
    hook = env.hook()

    if case.error is None:
        saved = hook.download(url, target)
        _assert_complete(env, target)
        assert saved.size == len(_video(env))
    else:
        with pytest.raises(case.error) as info:
            hook.download(url, target)
        err = info.value
        assert type(err) is case.error
        for word in case.words:
            assert word in err.message, f"{word!r} missing from: {err.message}"
        assert_secret_free(err)
        assert not target.exists()
        status = case.faults[0].get("status")
        if status is not None:  # the HTTP status survives the retries, for callers that branch on it
            assert err.status_code == status
        if isinstance(err, KlingRateLimitError):
            assert err.retry_after == case.faults[0]["retry_after"]

    assert part_files(tmp_path) == []
    assert _downloads(env) == case.downloads
    assert env.sim.count(phase="submit") == 1  # a failed download never resubmits the generation
    assert sum(f.hits for f in faults) >= 1
    assert len(sleeps.delays) == case.downloads - 1
    if case.first_delay is not None:
        low, high = case.first_delay
        assert low <= sleeps.delays[0] <= high, sleeps.delays


def test_interrupted_download_leaves_the_old_file_alone(env: SimEnv, sleeps: SleepLog, tmp_path: Path) -> None:
    """A file already at the destination is only ever replaced by a complete video."""
    url = _completed(env).video_url
    assert url is not None
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"yesterday's video")
    env.sim.faults.add(Fault(phase="download", kind="drop", processed=True, rate=1.0))
    with pytest.raises(KlingServerError):
        env.hook().download(url, target)
    assert target.read_bytes() == b"yesterday's video"
    assert part_files(tmp_path) == []

    env.sim.faults.clear()
    env.hook().download(url, target)
    _assert_complete(env, target)
    assert part_files(tmp_path) == []
    assert _downloads(env) == MAX_ATTEMPTS + 1


@pytest.mark.parametrize("lifetime", [86400.0, 60.0])
def test_expired_link(env: SimEnv, sleeps: SleepLog, tmp_path: Path, lifetime: float) -> None:
    env.sim.link_lifetime = lifetime
    done = _completed(env)
    url = done.video_url
    assert url is not None
    expires_at = "2026-01-02T03:04:05+00:00"
    env.sim.clock.advance(lifetime + 1)
    target = tmp_path / "clip.mp4"

    with pytest.raises(KlingLinkExpiredError) as info:
        env.hook().download(url, target, expires_at=expires_at)

    err = info.value
    assert isinstance(err, KlingNotFoundError)
    assert err.status_code == 403
    assert f"expired at {expires_at}" in err.message
    assert "24 hours" in err.message and "not resubmitted" in err.message
    assert_secret_free(err)
    assert not target.exists()
    assert part_files(tmp_path) == []
    assert _downloads(env) == 1  # an expired link is not retried
    assert sleeps.delays == []
    assert env.sim.count(phase="submit") == 1


def test_link_valid_until_its_lifetime(env: SimEnv, tmp_path: Path) -> None:
    env.sim.link_lifetime = 60.0
    url = _completed(env).video_url
    assert url is not None
    env.sim.clock.advance(59)
    env.hook().download(url, tmp_path / "clip.mp4")
    _assert_complete(env, tmp_path / "clip.mp4")
