"""Re-runs that never pay twice: a small sidecar next to each saved video says what made it.

``<output>.kling.json`` holds the EvoLink task id, the model, a fingerprint of the request, the
credits, when it was saved, the size of the video and the task's whole XCom result. An operator
asked for the same request at the same ``output_uri`` finds it, checks the video is still the one
described, and returns that result without submitting anything (``if_exists="skip"``).

Order of writes (decision): the old sidecar is removed before a new video is written, and the
new one is written, whole, after the video is complete. So a sidecar never describes a video that
is not there, or another video than its own. A crash between the video and its sidecar leaves a
video without one: it is not trusted (nothing says which request made it) and a re-run generates
anew; a *retry* of the crashed try still re-attaches to the paid EvoLink task through the state
store (:mod:`kling_provider.operators.state`) and only downloads again.

The fingerprint covers what the user asked for: the request body as EvoLink would get it (less
``callback_url``, which does not change the video), with every local or object-storage image
named by the SHA-256 of its content (the URL an upload returns is temporary) and URLs by their text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from kling_provider.exceptions import KlingValidationError
from kling_provider.models.untrusted import exact_str, show

# kling_provider.storage is imported by the functions that touch files: this module is loaded
# when a video operator is built, in every DAG file (bench #4).

#: What ``if_exists`` accepts: ``"skip"`` returns the saved result when the request is the same
#: (and generates anew when it is not), ``"overwrite"`` always generates, ``"fail"`` refuses to
#: run when a video is already at ``output_uri``.
IF_EXISTS_CHOICES = ("skip", "overwrite", "fail")
SIDECAR_SUFFIX = ".kling.json"
SIDECAR_KIND = "airflow-provider-kling/saved-video"
SIDECAR_VERSION = 1
#: A sidecar is a few kilobytes; anything far larger under that name is not one of ours.
MAX_SIDECAR_BYTES = 1024 * 1024
#: Request fields that do not change the video.
_NOT_FINGERPRINTED = ("callback_url",)


@dataclass(frozen=True)
class Sidecar:
    """What ``<output>.kling.json`` records about the video beside it."""

    task_id: str
    model: str | None
    fingerprint: str
    credits: float | None
    usd: float | None
    saved_at: str
    video_uri: str
    video_size: int
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        document = {"kind": SIDECAR_KIND, "version": SIDECAR_VERSION, **asdict(self)}
        return (json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | None) -> Sidecar | None:
        """The sidecar, or None when the bytes are not a sidecar this version can read."""
        if data is None:
            return None
        try:
            document = json.loads(data)
        except ValueError:
            return None
        if not isinstance(document, dict) or document.get("kind") != SIDECAR_KIND:
            return None
        if document.get("version") != SIDECAR_VERSION:
            return None
        try:
            sidecar = cls(
                task_id=str(document["task_id"]),
                model=document.get("model"),
                fingerprint=str(document["fingerprint"]),
                credits=_number(document.get("credits")),
                usd=_number(document.get("usd")),
                saved_at=str(document["saved_at"]),
                video_uri=str(document["video_uri"]),
                video_size=int(document["video_size"]),
                result=dict(document["result"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return sidecar

    def describe(self) -> str:
        """``EvoLink task X, paid 27.0 credits on 2026-12-06``: for the log line of a skip."""
        paid = f"paid {self.credits:g} credits" if self.credits is not None else "credits unknown"
        return f"EvoLink task {self.task_id}, {paid} on {self.saved_at[:10]}"


def check_if_exists(value: Any) -> str:
    """``if_exists`` as a plain string, or a KlingValidationError naming the choices."""
    if not isinstance(value, str) or exact_str(value) not in IF_EXISTS_CHOICES:
        choices = ", ".join(repr(c) for c in IF_EXISTS_CHOICES)
        raise KlingValidationError(f"if_exists: must be one of {choices} (got {show(value)})", param="if_exists")
    return exact_str(value)


def request_fingerprint(body: Mapping[str, Any], images: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the request as asked for: ``body`` as EvoLink would get it (images that
    are not URLs yet may stand in as placeholders there) and ``images``, each operator image
    argument's identity (its URL, or ``KlingHook.image_digest`` of its content)."""
    asked = {k: v for k, v in body.items() if k not in _NOT_FINGERPRINTED}
    canonical = json.dumps({"request": asked, "images": dict(images)}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def sidecar_path(target: Any) -> Any:
    """``<output>.kling.json``, beside the video (a local ``Path`` or an ``ObjectStoragePath``)."""
    return target.with_name(target.name + SIDECAR_SUFFIX)


def read_sidecar(target: Any) -> Sidecar | None:
    from kling_provider.storage import read_small_file

    return Sidecar.from_json(read_small_file(sidecar_path(target), MAX_SIDECAR_BYTES))


def write_sidecar(target: Any, sidecar: Sidecar) -> None:
    from kling_provider.storage import write_small_file

    write_small_file(sidecar_path(target), sidecar.to_json())


def record(target: Any, task_id: str, fingerprint: str, result: dict[str, Any]) -> None:
    """Write the sidecar of the video just saved at ``target`` from EvoLink task ``task_id``."""
    from kling_provider.storage import file_size

    size = file_size(target)
    if size is None:  # pragma: no cover - the video has just been written
        return
    credits = _number(result.get("credits_reserved"))
    estimated_credits, estimated_usd = _number(result.get("estimated_credits")), _number(result.get("estimated_usd"))
    usd = credits * estimated_usd / estimated_credits if credits and estimated_credits and estimated_usd else None
    sidecar = Sidecar(
        task_id=task_id,
        model=result.get("model"),
        fingerprint=fingerprint,
        credits=credits,
        usd=usd,
        saved_at=now_iso(),
        video_uri=str(result.get("output_uri")),
        video_size=size,
        result=result,
    )
    write_sidecar(target, sidecar)


def forget(target: Any) -> None:
    """Remove the sidecar before the video under it is replaced (see the module docstring)."""
    from kling_provider.storage import file_size, remove_file

    path = sidecar_path(target)
    # Looked at first: on a versioned bucket, deleting a key that is not there adds a delete marker.
    if file_size(path) is not None:
        remove_file(path)


def video_is_intact(target: Any, sidecar: Sidecar) -> bool:
    """The video the sidecar describes is still there: same size, and an MP4 header."""
    from kling_provider.storage import file_size, is_mp4_header, read_head

    if file_size(target) != sidecar.video_size:
        return False
    try:
        return is_mp4_header(read_head(target))
    except FileNotFoundError:
        return False


def now_iso() -> str:
    return datetime.now(tz=timezone.utc).isoformat(timespec="seconds")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
