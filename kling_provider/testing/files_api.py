"""The file API (``files-api.evolink.ai``): uploads, the quota, and serving what was uploaded.

Uploads come three ways (base64 JSON, a multipart stream, a URL to fetch); each stores an image
(JPEG, PNG, GIF or WebP, at most 10 MB, per key up to ``max_files`` alive) for ``file_lifetime``
seconds and answers ``{"success": true, "data": {"file_url", ...}}``, whose ``file_url`` a task's
``image_start`` then names. Failures use the file API's own envelope (:func:`.errors.files_error`).
The simulator has no network: a URL upload can fetch only the simulator's own files.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from kling_provider.testing.errors import cdn_error, files_error
from kling_provider.testing.exchange import Exchange
from kling_provider.testing.state import StoredFile
from kling_provider.testing.validation import IMAGE_MAX_BYTES, sniff_image

if TYPE_CHECKING:
    from kling_provider.testing.app import EvoLinkSimulator

__all__ = ["own_file", "quota", "serve_file", "upload_base64", "upload_stream", "upload_url"]

#: The paths an uploaded file is served on (its ``file_url`` and its ``download_url``).
_OWN_FILE_PATH = re.compile(r"/(?:files/uploads|api/v1/files/download)/(?P<file_id>file_[a-z0-9]+)(?:/.*)?")


def own_file(sim: EvoLinkSimulator, url: str) -> tuple[bool, StoredFile | None]:
    """(is this one of our file URLs, the live file it names)."""
    parts = urlsplit(url)
    match = _OWN_FILE_PATH.fullmatch(parts.path)
    if match is None:
        return False, None
    stored = sim.state.file(match.group("file_id"))
    ours = stored is not None or parts.netloc in sim.state.file_hosts
    if stored is not None and stored.expires_at <= sim.clock.now():
        stored = None
    return ours, stored


async def upload_base64(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``POST /api/v1/files/upload/base64``: ``{base64_data (a data: URL too), file_name?, upload_path?}``."""
    body = _json_object(ex.body)
    if body is None:
        return files_error(400, "Request body must be a JSON object")
    raw = body.get("base64_data")
    if not isinstance(raw, str) or not raw.strip():
        return files_error(400, "base64_data is required")
    if raw.startswith("data:"):
        raw = raw.partition(",")[2]
    try:
        data = base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return files_error(400, "base64_data is not valid base64")
    return _store_upload(sim, ex, data, _opt_str(body.get("file_name")), _opt_str(body.get("upload_path")), None)


async def upload_stream(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``POST /api/v1/files/upload/stream``: multipart ``file`` (+ ``file_name`` / ``upload_path`` fields)."""
    try:
        form = await ex.request.form()
    except Exception:  # any parse failure means a malformed body from the client
        return files_error(400, "Expected a multipart/form-data body with a file field")
    try:
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not isinstance(upload, UploadFile):
            ex.record.json = fields
            return files_error(400, "file is required")
        data = await upload.read()
        ex.record.json = {**fields, "file": {"filename": upload.filename, "size": len(data)}}
        name = fields.get("file_name") or fields.get("fileName")
        path = fields.get("upload_path") or fields.get("uploadPath")
        return _store_upload(sim, ex, data, name, path, upload.filename)
    finally:
        await form.close()


async def upload_url(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``POST /api/v1/files/upload/url``: ``{file_url, file_name?, upload_path?}``, fetched by the service."""
    body = _json_object(ex.body)
    if body is None:
        return files_error(400, "Request body must be a JSON object")
    url = body.get("file_url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return files_error(400, "file_url must be an http(s) URL")
    _, stored = own_file(sim, str(url))
    if stored is None:
        # The simulator has no network: only its own files can be fetched.
        return files_error(400, f"Failed to download file from URL: {parts.hostname} is not reachable")
    original = unquote(parts.path.rsplit("/", 1)[-1])
    return _store_upload(
        sim, ex, stored.data, _opt_str(body.get("file_name")), _opt_str(body.get("upload_path")), original
    )


def _store_upload(
    sim: EvoLinkSimulator,
    ex: Exchange,
    data: bytes,
    file_name: str | None,
    upload_path: str | None,
    original: str | None,
) -> Response:
    """Check and keep an uploaded image; the answer every upload route gives."""
    if not data:
        return files_error(400, "The file is empty")
    if len(data) > IMAGE_MAX_BYTES:
        return files_error(400, f"File too large: {len(data)} bytes (max {IMAGE_MAX_BYTES})")
    info = sniff_image(data)
    if info is None:
        return files_error(400, "Unsupported file type: only image/jpeg, image/png, image/gif, image/webp")
    now = sim.clock.now()
    if sim.state.live_files(now, ex.owner) >= sim.max_files:
        return files_error(403, f"File quota exceeded: {sim.max_files} files")
    file_id = "file_" + sim.id_source.token(16)
    name = _safe_name(file_name) or f"{file_id[5:]}.{info.extension}"
    stored = StoredFile(
        file_id=file_id,
        file_name=name,
        original_name=original or file_name or name,
        upload_path=_safe_name(upload_path) or "images",
        mime_type=info.mime_type,
        data=data,
        width=info.width,
        height=info.height,
        uploaded_at=now,
        expires_at=now + sim.file_lifetime,
        owner=ex.owner,
    )
    sim.state.add_file(stored, urlsplit(ex.base_url).netloc)
    return JSONResponse(
        {
            "success": True,
            "code": 200,
            "msg": "File uploaded successfully",
            "data": {
                "file_id": file_id,
                "file_name": stored.file_name,
                "original_name": stored.original_name,
                "file_size": stored.size,
                "mime_type": stored.mime_type,
                "upload_path": stored.upload_path,
                "file_url": f"{ex.base_url}/files/uploads/{file_id}/{quote(stored.file_name)}",
                "download_url": f"{ex.base_url}/api/v1/files/download/{file_id}",
                "upload_time": _iso(stored.uploaded_at),
                "expires_at": _iso(stored.expires_at),
            },
        }
    )


async def quota(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``GET /api/v1/files/quota``: the key's live files against ``max_files``."""
    used = sim.state.live_files(sim.clock.now(), ex.owner)
    return JSONResponse(
        {
            "success": True,
            "code": 200,
            "data": {
                "user_group": "default",
                "used_files": used,
                "max_files": sim.max_files,
                "remain_files": max(0, sim.max_files - used),
                "is_custom": False,
                "quota_reason": "",
            },
        }
    )


async def serve_file(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """An uploaded file at its ``file_url`` or ``download_url`` (no key, like a public link)."""
    stored = sim.state.file(ex.params["file_id"])
    if stored is None:
        return cdn_error(404, "NoSuchKey", "The specified key does not exist.")
    if stored.expires_at <= sim.clock.now():
        return cdn_error(403, "AccessDenied", "The file has expired")
    return Response(stored.data, media_type=stored.mime_type)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _safe_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
    return cleaned[:200] or None


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat(timespec="seconds")
