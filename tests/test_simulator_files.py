"""File API (uploads, quota, serving, expiry) and result videos (real MP4s, signed expiring links)."""

from __future__ import annotations

import base64
import io
import math
import struct
from collections.abc import Iterator
from typing import Any

import av
import httpx
import pytest

from kling_provider.testing import DEFAULT_API_KEY, EvoLinkSimulator
from kling_provider.testing.media import make_jpeg, make_png

BASE = "http://evolink-sim.localhost"
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
T2V = {"model": "kling-v3-text-to-video", "prompt": "A cat running on grass"}
GIF = b"GIF89a" + struct.pack("<HH", 320, 320) + b"\x00" * 20
WEBP = (
    b"RIFF"
    + struct.pack("<I", 30)
    + b"WEBPVP8L"
    + struct.pack("<I", 10)
    + b"\x2f"
    + ((399) | (299 << 14)).to_bytes(4, "little")
)


@pytest.fixture
def sim(kling_simulator: EvoLinkSimulator) -> EvoLinkSimulator:
    return kling_simulator


@pytest.fixture
def client(sim: EvoLinkSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=sim.sync_transport(), base_url=BASE, headers=AUTH) as c:
        yield c


def upload_b64(client: httpx.Client, data: bytes, *, data_url: bool = True, **extra: Any) -> httpx.Response:
    encoded = base64.b64encode(data).decode()
    value = f"data:image/png;base64,{encoded}" if data_url else encoded
    return client.post("/api/v1/files/upload/base64", json={"base64_data": value, **extra})


def uploaded_url(client: httpx.Client, data: bytes) -> str:
    response = upload_b64(client, data)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["file_url"])


# -- uploads ----------------------------------------------------------------------------------


def test_base64_upload_data_url(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    png = make_png(640, 360)
    response = upload_b64(client, png)
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["code"], body["msg"]) == (True, 200, "File uploaded successfully")
    data = body["data"]
    assert data["file_id"].startswith("file_")
    assert (data["mime_type"], data["file_size"], data["upload_path"]) == ("image/png", len(png), "images")
    assert data["file_name"].endswith(".png")
    assert data["file_url"].startswith(f"{BASE}/files/uploads/{data['file_id']}/")
    assert data["download_url"] == f"{BASE}/api/v1/files/download/{data['file_id']}"
    assert data["upload_time"].endswith("+00:00") and data["expires_at"] > data["upload_time"]
    for url in (data["file_url"], data["download_url"]):
        served = httpx.Client(transport=sim.sync_transport()).get(url)  # no key needed: a public link
        assert served.status_code == 200
        assert served.content == png and served.headers["content-type"] == "image/png"
    assert sim.requests[0].json == {"base64_data": f"<{len(base64.b64encode(png)) + 22} characters>"}


def test_base64_upload_plain_with_names(client: httpx.Client) -> None:
    jpeg = make_jpeg(400, 300)
    data = upload_b64(client, jpeg, data_url=False, file_name="my photo.jpg", upload_path="avatars").json()["data"]
    assert (data["mime_type"], data["file_name"], data["original_name"]) == (
        "image/jpeg",
        "my_photo.jpg",
        "my photo.jpg",
    )
    assert data["upload_path"] == "avatars"


@pytest.mark.parametrize(("blob", "mime"), [(GIF, "image/gif"), (WEBP, "image/webp")])
def test_gif_and_webp_are_accepted(sim: EvoLinkSimulator, client: httpx.Client, blob: bytes, mime: str) -> None:
    assert upload_b64(client, blob).json()["data"]["mime_type"] == mime
    stored = sim.files[0]
    assert (stored.width, stored.height) == ((320, 320) if mime == "image/gif" else (400, 300))


def test_multipart_stream_upload(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    png = make_png(500, 500)
    response = client.post(
        "/api/v1/files/upload/stream",
        files={"file": ("frame.png", png, "image/png")},
        data={"fileName": "start.png", "uploadPath": "frames"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["file_name"], data["original_name"], data["upload_path"]) == ("start.png", "frame.png", "frames")
    assert client.get(data["file_url"]).content == png
    assert sim.requests[-2].json == {
        "fileName": "start.png",
        "uploadPath": "frames",
        "file": {"filename": "frame.png", "size": len(png)},
    }


def test_url_upload_only_reaches_the_simulator_itself(client: httpx.Client) -> None:
    png = make_png(320, 320)
    own = uploaded_url(client, png)
    copied = client.post("/api/v1/files/upload/url", json={"file_url": own})
    assert copied.status_code == 200
    assert client.get(copied.json()["data"]["file_url"]).content == png
    unreachable = client.post("/api/v1/files/upload/url", json={"file_url": "https://example.com/cat.jpg"})
    assert unreachable.status_code == 400
    assert unreachable.json()["success"] is False and "not reachable" in unreachable.json()["msg"]
    assert client.post("/api/v1/files/upload/url", json={"file_url": "nope"}).status_code == 400


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"json": {"base64_data": base64.b64encode(b"%PDF-1.4 not an image").decode()}}, "Unsupported file type"),
        ({"json": {"base64_data": "data:image/png;base64,!!!not base64!!!"}}, "not valid base64"),
        ({"json": {}}, "base64_data is required"),
        ({"content": b"[]", "headers": {"Content-Type": "application/json"}}, "JSON object"),
    ],
)
def test_bad_base64_uploads(client: httpx.Client, request_kwargs: dict[str, Any], message: str) -> None:
    response = client.post("/api/v1/files/upload/base64", **request_kwargs)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["code"] == 400 and message in body["msg"]


def test_upload_size_limit(client: httpx.Client) -> None:
    png = make_png(300, 300)
    limit = 10 * 1024 * 1024
    assert upload_b64(client, png + b"\x00" * (limit - len(png))).status_code == 200
    too_big = upload_b64(client, png + b"\x00" * (limit - len(png) + 1))
    assert too_big.status_code == 400 and "too large" in too_big.json()["msg"]


def test_stream_upload_without_file(client: httpx.Client) -> None:
    response = client.post("/api/v1/files/upload/stream", data={"file_name": "x.png"})
    assert response.status_code == 400 and response.json()["msg"] == "file is required"


def test_quota_and_max_files(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.max_files = 2
    assert client.get("/api/v1/files/quota").json() == {
        "success": True,
        "code": 200,
        "data": {
            "user_group": "default",
            "used_files": 0,
            "max_files": 2,
            "remain_files": 2,
            "is_custom": False,
            "quota_reason": "",
        },
    }
    png = make_png(300, 300)
    uploaded_url(client, png)
    uploaded_url(client, png)
    assert client.get("/api/v1/files/quota").json()["data"]["remain_files"] == 0
    full = upload_b64(client, png)
    assert full.status_code == 403 and full.json()["success"] is False
    sim.clock.advance(72 * 3600)
    assert client.get("/api/v1/files/quota").json()["data"]["used_files"] == 0
    assert upload_b64(client, png).status_code == 200


def test_uploaded_files_expire_after_72_hours(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    url = uploaded_url(client, make_png(300, 300))
    sim.clock.advance(72 * 3600 - 1)
    assert client.get(url).status_code == 200
    sim.clock.advance(1)
    expired = client.get(url)
    assert expired.status_code == 403 and expired.headers["content-type"].startswith("application/xml")
    assert client.get(f"{BASE}/files/uploads/file_unknown/x.png").status_code == 404


def test_file_api_needs_the_key(sim: EvoLinkSimulator) -> None:
    with httpx.Client(transport=sim.sync_transport(), base_url=BASE) as anonymous:
        response = upload_b64(anonymous, make_png(300, 300))
        assert response.status_code == 401
        assert response.json() == {"success": False, "code": 401, "msg": "Invalid or expired token"}
        assert anonymous.get("/api/v1/files/quota").status_code == 401
    assert sim.files == []


# -- input images the vendor has to fetch -----------------------------------------------------


def test_image_to_video_follows_the_uploaded_image_shape(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    for (w, h), expected in [((400, 800), (720, 1280)), ((600, 600), (720, 720)), ((1200, 700), (1280, 720))]:
        url = uploaded_url(client, make_png(w, h))
        task_id = client.post(
            "/v1/videos/generations", json={"model": "kling-v3-image-to-video", "image_start": url}
        ).json()["id"]
        assert (sim.task(task_id).width, sim.task(task_id).height) == expected


@pytest.mark.parametrize(
    ("image", "code"),
    [
        ("small", "image_dimension_mismatch"),
        ("thin", "image_dimension_mismatch"),
        ("gif", "image_processing_error"),
        ("unknown", "image_processing_error"),
        ("expired", "image_processing_error"),
    ],
)
def test_unusable_input_images_fail_the_task(
    sim: EvoLinkSimulator, client: httpx.Client, image: str, code: str
) -> None:
    if image == "unknown":
        uploaded_url(client, make_png(300, 300))  # so the simulator knows its own host
        url = f"{BASE}/files/uploads/file_doesnotexist0000/a.png"
    else:
        blob = {"small": make_png(200, 200), "thin": make_png(1000, 300), "gif": GIF}.get(image, make_png(300, 300))
        url = uploaded_url(client, blob)
        if image == "expired":
            sim.clock.advance(72 * 3600)
    created = client.post("/v1/videos/generations", json={"model": "kling-v3-image-to-video", "image_start": url})
    assert created.status_code == 200  # accepted; the vendor finds out when it fetches the image
    sim.fast_forward()
    task = client.get(f"/v1/tasks/{created.json()['id']}").json()
    assert (task["status"], task["error"]["code"], task["progress"]) == ("failed", code, 0)


# -- result videos ----------------------------------------------------------------------------


def video_info(data: bytes) -> tuple[int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        return stream.width, stream.height, float(stream.duration * stream.time_base)


@pytest.mark.parametrize(
    ("extra", "size"),
    [
        ({}, (1280, 720)),
        ({"aspect_ratio": "9:16", "quality": "1080p", "duration": 3}, (1080, 1920)),
        ({"aspect_ratio": "1:1", "duration": 8}, (720, 720)),
        ({"quality": "4k", "duration": 15}, (3840, 2160)),
    ],
)
def test_result_is_a_real_mp4_of_the_requested_size_and_length(
    sim: EvoLinkSimulator, client: httpx.Client, extra: dict[str, Any], size: tuple[int, int]
) -> None:
    task_id = client.post("/v1/videos/generations", json={**T2V, **extra}).json()["id"]
    sim.fast_forward()
    url = client.get(f"/v1/tasks/{task_id}").json()["results"][0]
    with httpx.Client(transport=sim.sync_transport()) as anonymous:  # links are pre-signed: no key
        response = anonymous.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    assert video_info(response.content) == (*size, float(extra.get("duration", 5)))
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == response.headers["content-length"]
    assert sim.count(phase="download", status=200) == 2


def test_result_link_expires_like_a_cdn_link(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    sim.link_lifetime = 600
    task_id = client.post("/v1/videos/generations", json=T2V).json()["id"]
    sim.fast_forward()
    url = client.get(f"/v1/tasks/{task_id}").json()["results"][0]
    assert int(httpx.URL(url).params["expires"]) == math.ceil(sim.task(task_id).ends_at + 600)
    sim.clock.advance(599)
    assert client.get(url).status_code == 200
    sim.clock.advance(2)
    expired = client.get(url)
    assert expired.status_code == 403
    assert not expired.headers["content-type"].startswith("application/json")
    assert b"<Error>" in expired.content and len(expired.content) < 300
    with pytest.raises(ValueError):
        expired.json()


def test_result_link_cannot_be_forged_or_fetched_early(sim: EvoLinkSimulator, client: httpx.Client) -> None:
    task_id = client.post("/v1/videos/generations", json=T2V).json()["id"]
    early = client.get(f"{BASE}/files/results/{task_id}.mp4?expires=9999999999&signature=x")
    assert early.status_code == 404
    sim.fast_forward()
    url = httpx.URL(client.get(f"/v1/tasks/{task_id}").json()["results"][0])
    longer = url.copy_set_param("expires", str(int(url.params["expires"]) + 10**6))
    assert client.get(longer).status_code == 403
    assert client.get(url.copy_remove_param("signature")).status_code == 403
