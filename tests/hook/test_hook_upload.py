"""KlingHook.upload_image against the simulator's file API: sources, local checks, faults.

An image that breaks EvoLink's rules is refused before a single request is made; a good one
comes back as the simulator's ``file_url``, usable as ``image_start``. Uploads are free, so
every transient fault is retried.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kling_provider.exceptions import (
    KlingAuthenticationError,
    KlingError,
    KlingPermissionError,
    KlingRateLimitError,
    KlingServerError,
    KlingValidationError,
)
from kling_provider.models import ImageToVideoRequest, TaskStatus
from kling_provider.testing import Fault
from kling_provider.testing.media import make_jpeg, make_png, mp4_info

from .support import (
    API_KEY,
    MAX_ATTEMPTS,
    SHORT_TIMEOUT,
    WRONG_KEY,
    SimEnv,
    SleepLog,
    assert_request_log_secret_free,
    assert_secret_free,
)

PNG = make_png(640, 480)
JPEG = make_jpeg(720, 1280)
TEN_MB = 10 * 1024 * 1024


def _source(form: str, data: bytes, tmp_path: Path, name: str) -> Any:
    if form == "bytes":
        return data
    path = tmp_path / name
    path.write_bytes(data)
    return {"path": path, "str": str(path), "file-uri": path.as_uri()}[form]


@pytest.mark.parametrize("form", ["bytes", "path", "str", "file-uri"])
@pytest.mark.parametrize(
    ("data", "mime", "size", "extension"),
    [(PNG, "image/png", (640, 480), "png"), (JPEG, "image/jpeg", (720, 1280), "jpg")],
    ids=["png", "jpeg"],
)
def test_upload(
    env: SimEnv,
    tmp_path: Path,
    form: str,
    data: bytes,
    mime: str,
    size: tuple[int, int],
    extension: str,
) -> None:
    # The local name's extension is wrong on purpose: the format is read from the content.
    source = _source(form, data, tmp_path, "portrait.bin")
    url = env.hook().upload_image(source, field="image_start")

    (stored,) = env.sim.files
    assert url == f"{env.base_url}/files/uploads/{stored.file_id}/{stored.file_name}"
    assert stored.data == data
    assert stored.mime_type == mime
    assert (stored.width, stored.height) == size
    expected_name = "image" if form == "bytes" else "portrait"
    assert stored.original_name == f"{expected_name}.{extension}"
    assert env.requests_by_phase() == {"upload": 1}
    (record,) = env.sim.requests
    assert record.path == "/api/v1/files/upload/stream" and record.status == 200 and record.authorized
    assert_request_log_secret_free(env.sim)


def test_uploaded_image_starts_a_generation(env: SimEnv, tmp_path: Path) -> None:
    """The returned file_url is what image_start takes: the simulator fetches it and adapts the
    output to the image (9:16 here), and the task completes with a video of that shape."""
    hook = env.hook()
    url = hook.upload_image(JPEG, field="image_start")
    request = ImageToVideoRequest.build(image_start=url, prompt="she turns to the camera", duration=5)
    task = hook.submit(request)
    env.finish(task.id)
    done = hook.get_task(task.id)
    assert done.status is TaskStatus.COMPLETED and done.video_url is not None
    hook.download(done.video_url, tmp_path / "v.mp4")
    info = mp4_info(tmp_path / "v.mp4")
    assert (info.width, info.height) == (720, 1280)
    assert env.requests_by_phase() == {"upload": 1, "submit": 1, "poll": 1, "download": 1}


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 20, 30)).save(out, "GIF")
    return out.getvalue()


INVALID: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "gif": (_gif, ("JPG or PNG",)),
    "webp-named-png": (lambda: b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(64), ("JPG or PNG",)),
    "text": (lambda: b"this is not an image at all", ("JPG or PNG",)),
    "empty": (lambda: b"", ("empty",)),
    "png-200x200": (lambda: make_png(200, 200), ("at least 300 px", "200x200")),
    "jpeg-299-wide": (lambda: make_jpeg(299, 600), ("at least 300 px",)),
    "png-3-to-1": (lambda: make_png(900, 300), ("aspect ratio", "900x300")),
    "jpeg-1-to-3": (lambda: make_jpeg(400, 1200), ("aspect ratio",)),
    "over-10-mb": (lambda: make_png(640, 480) + bytes(TEN_MB), ("at most 10 MB",)),
}


@pytest.mark.parametrize("form", ["bytes", "path", "file-uri"])
@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_image_is_refused_before_any_request(env: SimEnv, tmp_path: Path, form: str, name: str) -> None:
    make, words = INVALID[name]
    source = _source(form, make(), tmp_path, "frame.png")
    hook = env.hook()
    with pytest.raises(KlingValidationError) as info:
        hook.upload_image(source, field="image_end")
    err = info.value
    assert err.param == "image_end"
    assert err.message.startswith("image_end: ")
    for word in words:
        assert word in err.message, f"{word!r} missing from: {err.message}"
    assert_secret_free(err)
    assert env.sim.requests == []
    assert env.sim.files == []


@pytest.mark.parametrize("form", ["bytes", "path"])
def test_exactly_ten_megabytes_is_accepted(env: SimEnv, tmp_path: Path, form: str) -> None:
    png = make_png(640, 480)
    data = png + bytes(TEN_MB - len(png))  # padding after IEND: still a PNG, exactly at the limit
    url = env.hook().upload_image(_source(form, data, tmp_path, "big.png"))
    (stored,) = env.sim.files
    assert stored.size == TEN_MB and url.endswith(stored.file_name)
    assert env.requests_by_phase() == {"upload": 1}


def test_missing_local_file(env: SimEnv, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.png"
    with pytest.raises(KlingValidationError) as info:
        env.hook().upload_image(missing, field="image_start")
    assert info.value.param == "image_start"
    assert info.value.message.startswith("image_start: ")
    assert "file not found" in info.value.message and str(missing) in info.value.message
    assert env.sim.requests == []


def test_directory_instead_of_a_file(env: SimEnv, tmp_path: Path) -> None:
    with pytest.raises(KlingValidationError) as info:
        env.hook().upload_image(tmp_path, field="image_end")
    assert info.value.param == "image_end"
    assert info.value.message.startswith("image_end: ") and "directory" in info.value.message
    assert env.sim.requests == []


def test_upload_from_object_storage_path(env: SimEnv, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "still.jpg").write_bytes(JPEG)
    url = env.hook().upload_image(ObjectStoragePath((tmp_path / "still.jpg").as_uri()), field="image_start")
    (stored,) = env.sim.files
    assert url.endswith(f"/{stored.file_id}/{stored.file_name}")
    assert stored.data == JPEG and stored.original_name == "still.jpg"
    assert env.requests_by_phase() == {"upload": 1}


@dataclass(frozen=True)
class Case:
    faults: tuple[dict[str, Any], ...]
    error: type[KlingError] | None
    uploads: int
    words: tuple[str, ...] = ()
    first_delay: tuple[float, float] | None = None
    timeout: float = 5.0


_GAVE_UP = f"gave up after {MAX_ATTEMPTS} attempts"
_BACKOFF = (0.005, 0.05)

UPLOAD_CASES: dict[str, Case] = {
    "429-retry-after-header": Case(({"status": 429, "retry_after": 6},), None, 2, first_delay=(6, 6.6)),
    "429-body-hint": Case(({"status": 429, "retry_hint": 8},), None, 2, first_delay=(8, 8.8)),
    "429-no-hint": Case(({"status": 429},), None, 2, first_delay=_BACKOFF),
    "429-exhausted": Case(({"status": 429, "rate": 1.0},), KlingRateLimitError, MAX_ATTEMPTS, (_GAVE_UP, "HTTP 429")),
    "500-burst": Case(({"status": 500, "times": 2},), None, 3),
    "502-burst": Case(({"status": 502, "times": 2},), None, 3),
    "503-burst": Case(({"status": 503, "times": 2},), None, 3),
    "503-exhausted": Case(
        ({"status": 503, "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, (_GAVE_UP, "HTTP 503", "upload of image")
    ),
    "drop": Case(({"kind": "drop"},), None, 2),
    "drop-exhausted": Case(({"kind": "drop", "rate": 1.0},), KlingServerError, MAX_ATTEMPTS, (_GAVE_UP,)),
    "slow-past-timeout": Case(({"kind": "slow", "delay": 30},), None, 2, timeout=SHORT_TIMEOUT),
    "malformed-html-502": Case(({"kind": "malformed", "malformed": "html"},), None, 2),
    "malformed-empty-200": Case(({"kind": "malformed", "malformed": "empty"},), None, 2),
    "malformed-invalid-json-200": Case(({"kind": "malformed", "malformed": "invalid_json"},), None, 2),
    "malformed-exhausted": Case(
        ({"kind": "malformed", "malformed": "empty", "rate": 1.0},),
        KlingServerError,
        MAX_ATTEMPTS,
        (_GAVE_UP, "unreadable answer"),
    ),
}


@pytest.mark.parametrize("name", list(UPLOAD_CASES))
def test_upload_fault(env: SimEnv, sleeps: SleepLog, name: str) -> None:
    case = UPLOAD_CASES[name]
    env.connect(timeout=case.timeout)
    faults = [env.sim.faults.add(Fault(**{"phase": "upload", **spec})) for spec in case.faults]
    hook = env.hook()

    if case.error is None:
        url = hook.upload_image(PNG)
        stored = env.sim.files[-1]
        assert url.endswith(f"/files/uploads/{stored.file_id}/{stored.file_name}")
        assert stored.data == PNG
    else:
        with pytest.raises(case.error) as info:
            hook.upload_image(PNG)
        err = info.value
        assert type(err) is case.error
        for word in case.words:
            assert word in err.message, f"{word!r} missing from: {err.message}"
        assert_secret_free(err)

    assert env.requests_by_phase() == {"upload": case.uploads}
    assert sum(f.hits for f in faults) >= 1
    assert len(sleeps.delays) == case.uploads - 1
    if case.first_delay is not None:
        low, high = case.first_delay
        assert low <= sleeps.delays[0] <= high, sleeps.delays


def test_upload_refused_by_quota(env: SimEnv) -> None:
    env.sim.max_files = 0
    with pytest.raises(KlingPermissionError) as info:
        env.hook().upload_image(PNG, field="image_start")
    assert "File quota exceeded" in info.value.message
    assert info.value.status_code == 403
    assert env.requests_by_phase() == {"upload": 1}


def test_upload_with_a_wrong_key(env: SimEnv) -> None:
    env.connect(key=WRONG_KEY)
    hook = env.hook()
    with pytest.raises(KlingAuthenticationError) as info:
        hook.upload_image(PNG)
    assert "API key" in info.value.message
    assert_secret_free(info.value, hook, key=WRONG_KEY)
    assert_secret_free(info.value, key=API_KEY)
    assert env.requests_by_phase() == {"upload": 1}
    assert env.sim.files == []


# -- refusals sent with HTTP 200 --------------------------------------------------------------
# The file API documents a failure as a non-2xx status *or* ``success: false``, and answers some
# refusals with HTTP 200 and ``{"success": false, "code": 400, "msg": ...}``. The envelope's code
# is judged as the status it names: a refusal is final and names the image, a busy server is
# retried, and neither is ever taken for an unreadable answer.


def test_refusal_sent_with_http_200_is_a_validation_error_naming_the_image(env: SimEnv, sleeps: SleepLog) -> None:
    env.sim.faults.add(Fault(phase="upload", kind="status", status=200, code=400, message="Unsupported file type"))
    with pytest.raises(KlingValidationError) as info:
        env.hook().upload_image(PNG, field="image_start")
    err = info.value
    assert type(err) is KlingValidationError and not err.retryable
    assert err.param == "image_start" and err.message.startswith("image_start: ")
    assert "Unsupported file type" in err.message and "HTTP 200" in err.message
    assert err.status_code == 400 and err.code == "400"
    assert "unreadable" not in err.message and "gave up" not in err.message
    assert env.requests_by_phase() == {"upload": 1}, "a refusal is not retried"
    assert sleeps.delays == []
    assert env.sim.files == []
    assert_secret_free(err)


REFUSED_WITH_200: dict[str, tuple[dict[str, Any], type[KlingError] | None, int]] = {
    # envelope: final error (None: retried, then uploaded), upload requests
    "422": ({"code": 422, "message": "Invalid image"}, KlingValidationError, 1),
    "401": ({"code": 401, "message": "Invalid or expired token"}, KlingAuthenticationError, 1),
    "403-quota": ({"code": 403, "message": "File quota exceeded"}, KlingPermissionError, 1),
    "no-status-in-code": ({"code": 200, "message": "Upload failed"}, KlingValidationError, 1),
    "text-code": ({"code": "bad_file", "message": "Upload failed"}, KlingValidationError, 1),
    "429-then-ok": ({"code": 429, "message": "Too many requests", "retry_hint": 3}, None, 2),
    "503-then-ok": ({"code": 503, "message": "Service Unavailable"}, None, 2),
    "500-then-ok": ({"code": 500, "message": "Internal Server Error"}, None, 2),
}


@pytest.mark.parametrize("name", list(REFUSED_WITH_200))
def test_envelope_code_decides_under_http_200(env: SimEnv, sleeps: SleepLog, name: str) -> None:
    spec, error, uploads = REFUSED_WITH_200[name]
    env.sim.faults.add(Fault(phase="upload", kind="status", status=200, **spec))
    hook = env.hook()
    if error is None:
        url = hook.upload_image(PNG, field="image_end")
        assert url.endswith(env.sim.files[-1].file_name)
        if "retry_hint" in spec:
            assert 3 <= sleeps.delays[0] <= 3.3, "the body's retry hint is honoured, as under HTTP 429"
    else:
        with pytest.raises(error) as info:
            hook.upload_image(PNG, field="image_end")
        assert type(info.value) is error
        assert spec["message"] in info.value.message
        if error is KlingValidationError:
            assert info.value.param == "image_end"
        assert env.sim.files == []
    assert env.requests_by_phase() == {"upload": uploads}
    assert len(sleeps.delays) == uploads - 1


def test_success_without_data_is_unreadable_not_a_refusal() -> None:
    """``success: true`` with no ``data`` is not what the API documents: retried like garbage,
    never reported as a refusal of the image."""
    import httpx

    from kling_provider.hooks.kling import _parse_upload
    from kling_provider.hooks.plans import Unreadable

    with pytest.raises(Unreadable):
        _parse_upload(httpx.Response(200, json={"success": True, "code": 200, "msg": "ok"}))
    assert _parse_upload(httpx.Response(200, json={"data": {"file_url": "https://f/x.png"}})) == "https://f/x.png"
