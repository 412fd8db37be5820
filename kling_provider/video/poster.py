"""Poster frames: one real frame of a saved video, decoded with PyAV, saved beside it as a JPEG.

``teaser.mp4`` gets ``teaser.poster.jpg`` in the same folder or bucket prefix, written atomically
like the video. The frame is the one on screen at ``at`` seconds (default: the middle). Needs the
``review`` extra (PyAV and Pillow), imported only here and only when a poster is made.
"""

from __future__ import annotations

import importlib.util
import io
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kling_provider.exceptions import KlingValidationError
from kling_provider.storage import HeaderCheck, is_local, resolve_destination, write_file_atomically

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["POSTER_SUFFIX", "PosterFrame", "decode_frame", "poster_name", "require_review_extra", "save_poster"]

POSTER_SUFFIX = ".poster.jpg"
JPEG_QUALITY = 90
#: Ranged reads of this size when PyAV reads a video in object storage.
_DECODE_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class PosterFrame:
    """A saved poster frame: where it is, which moment of the video it shows, its size."""

    uri: str
    time_s: float
    width: int
    height: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_review_extra(param: str) -> None:
    """Fail clearly (naming ``param``) when PyAV or Pillow is missing, without importing them."""
    missing = [name for module, name in (("av", "PyAV"), ("PIL", "Pillow")) if importlib.util.find_spec(module) is None]
    if missing:
        raise KlingValidationError(
            f"{param}: needs {' and '.join(missing)} to decode frames: pip install 'airflow-provider-kling[review]'",
            param=param,
        )


def poster_name(video_name: str) -> str:
    """``teaser.mp4`` -> ``teaser.poster.jpg`` (any other name gets the suffix added)."""
    stem = video_name[:-4] if video_name.lower().endswith(".mp4") else video_name
    return stem + POSTER_SUFFIX


def decode_frame(video: Any, at: float | None = None, conn_id: str | None = None) -> tuple[Image, float]:
    """The frame shown at ``at`` seconds (None: the middle; past the end: the last frame) of a
    local path, ``file://`` or object-storage URI, as a Pillow RGB image, with its time."""
    require_review_extra("poster")
    import av

    if at is not None and not at >= 0:
        raise KlingValidationError(f"poster_at: must be a time in seconds >= 0 (got {at!r})", param="poster_at")
    path = resolve_destination(video, conn_id)
    with ExitStack() as stack:
        if is_local(path):
            source: Any = str(path)
        else:
            source = stack.enter_context(path.fs.open(path.path, "rb", block_size=_DECODE_BLOCK))
        container = stack.enter_context(av.open(source))
        if not container.streams.video:
            raise ValueError(f"{video}: no video stream to take a poster frame from")
        stream = container.streams.video[0]
        if at is None:
            at = _duration(container, stream) / 2
        time_base = stream.time_base
        if time_base is not None and at > 0:
            container.seek(int(at / time_base), stream=stream, backward=True, any_frame=False)
        chosen = None
        for frame in container.decode(stream):
            if chosen is not None and frame.time is not None and frame.time > at + 1e-6:
                break
            chosen = frame
        if chosen is None:
            raise ValueError(f"{video}: no frame could be decoded")
        return chosen.to_image(), float(chosen.time or 0.0)


def save_poster(
    video_uri: str,
    *,
    at: float | None = None,
    conn_id: str | None = None,
    destination: str | None = None,
) -> PosterFrame:
    """Decode the frame at ``at`` (default: the middle) of the saved video and write it as a JPEG
    beside it (``destination`` to put it elsewhere), atomically. Returns where and what."""
    image, time_s = decode_frame(video_uri, at, conn_id)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    if destination is None:
        video = resolve_destination(video_uri, conn_id)
        target: Any = video.with_name(poster_name(video.name))
    else:
        target = destination
    uri = write_file_atomically(target, buffer.getvalue(), HeaderCheck((b"\xff\xd8\xff",), "a JPEG image"), conn_id)
    return PosterFrame(uri=uri, time_s=round(time_s, 6), width=image.width, height=image.height)


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return 0.0
