"""Does the delivered video match what was asked and paid for?

The rules (docs/review.md explains them and what to do when one fails):

* duration: within :data:`DURATION_TOLERANCE_S` of ``duration`` (encoders round to whole frames
  and may add a frame or two; a second short is a different product);
* size: the short side is the ``quality``'s (:data:`QUALITY_SHORT_SIDE`: 720, 1080 or 2160 px);
* orientation: landscape for ``16:9``, portrait for ``9:16``, square for ``1:1``, when an
  ``aspect_ratio`` was given (image-to-video without one follows the image: not checked);
* sound: an audio track exactly when ``sound=True``.

Frame rate and codec are reported, not judged: EvoLink documents neither.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kling_provider.video.mp4 import VideoInfo

__all__ = ["DURATION_TOLERANCE_S", "QUALITY_SHORT_SIDE", "Mismatch", "check_video", "video_report"]

#: Seconds the delivered duration may differ from the requested one, either way.
DURATION_TOLERANCE_S = 0.5
#: Pixels of the short side for each ``quality``.
QUALITY_SHORT_SIDE = {"720p": 720, "1080p": 1080, "4k": 2160}
_ORIENTATION = {"16:9": "landscape", "9:16": "portrait", "1:1": "square"}


@dataclass(frozen=True)
class Mismatch:
    """One way the video differs from the request: ``field`` is the request's parameter."""

    field: str
    expected: Any
    actual: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def orientation(width: int, height: int) -> str:
    if width == height:
        return "square"
    return "landscape" if width > height else "portrait"


def check_video(
    info: VideoInfo,
    *,
    duration: float,
    quality: str,
    sound: bool,
    aspect_ratio: str | None = None,
) -> list[Mismatch]:
    """Every way ``info`` differs from the request, in the order of the rules above (empty: it matches)."""
    found: list[Mismatch] = []
    if abs(info.duration_s - duration) > DURATION_TOLERANCE_S:
        found.append(
            Mismatch(
                "duration",
                duration,
                info.duration_s,
                f"lasts {info.duration_s:g} s, asked for duration={duration:g} (tolerance ±{DURATION_TOLERANCE_S:g} s)",
            )
        )
    short = min(info.width, info.height)
    wanted = QUALITY_SHORT_SIDE.get(quality)
    if wanted is not None and short != wanted:
        found.append(
            Mismatch(
                "quality",
                quality,
                f"{info.width}x{info.height}",
                f"is {info.width}x{info.height} (short side {short} px), asked for quality={quality!r} "
                f"(short side {wanted} px)",
            )
        )
    expected_shape = _ORIENTATION.get(aspect_ratio) if aspect_ratio else None
    shape = orientation(info.width, info.height)
    if expected_shape is not None and shape != expected_shape:
        found.append(
            Mismatch(
                "aspect_ratio",
                aspect_ratio,
                f"{info.width}x{info.height}",
                f"is {info.width}x{info.height} ({shape}), asked for aspect_ratio={aspect_ratio!r} ({expected_shape})",
            )
        )
    if info.has_audio != sound:
        message = "has no audio track, asked for sound=True" if sound else "has an audio track, asked for sound=False"
        found.append(Mismatch("sound", sound, info.has_audio, message))
    return found


def video_report(info: VideoInfo, mismatches: list[Mismatch]) -> dict[str, Any]:
    """The XCom ``video`` entry: the metadata, ``matches_request`` and the mismatches."""
    return {
        **info.as_dict(),
        "matches_request": not mismatches,
        "mismatches": [m.as_dict() for m in mismatches],
    }
