"""What a completed task's result link serves: a real MP4 made for that task, or a planned mismatch.

The video is the size and length the request asked for, coloured by its prompt, showing the
prompt's first words and each frame's number (:mod:`.overlay`), with a (silent) audio track when
``sound`` was on, so a test can tell variants and frames apart in a decoded picture. A
``bad_video`` fault (:mod:`.faults`) makes it differ from the request the way real deliveries go
wrong. Each distinct video is made once and kept: a load test's identical tasks share one.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from kling_provider.testing.media import make_mp4

__all__ = ["VideoCache", "prompt_of", "result_video"]


def prompt_of(body: dict[str, Any]) -> str:
    """What a generation request's video is about: its prompt, or its customised shots' prompts."""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    params = body.get("model_params")
    shots = params.get("multi_prompt") if isinstance(params, dict) else None
    if not isinstance(shots, list):
        return ""
    return " ".join(str(shot.get("prompt", "")) for shot in shots if isinstance(shot, dict))


def prompt_seed(prompt: str) -> int:
    """A stable number from the prompt: the video's colours."""
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")


def result_video(
    *, width: int, height: int, duration: int, sound: bool, prompt: str, bad_video: str | None = None
) -> bytes:
    """The MP4 for a task that asked for ``width`` x ``height``, ``duration`` s, ``sound``."""
    seconds = float(duration)
    if bad_video == "wrong_duration":
        seconds = max(1.0, duration / 2)
    elif bad_video == "wrong_resolution":  # 2/3 the size, even: 1920x1080 -> 1280x720
        width, height = round(width / 3) * 2, round(height / 3) * 2
    elif bad_video == "missing_audio":
        sound = False
    elif bad_video == "unexpected_audio":
        sound = True
    video = make_mp4(width, height, seconds, seed=prompt_seed(prompt), caption=prompt, sound=sound)
    if bad_video == "truncated":
        return video[: len(video) * 2 // 3]
    return video


class VideoCache:
    """:func:`result_video` made once per distinct set of arguments (thread-safe)."""

    def __init__(self) -> None:
        self._videos: dict[tuple[object, ...], bytes] = {}
        self._lock = threading.Lock()

    def get(
        self, *, width: int, height: int, duration: int, sound: bool, prompt: str, bad_video: str | None = None
    ) -> bytes:
        key = (width, height, duration, sound, prompt, bad_video)
        with self._lock:
            video = self._videos.get(key)
            if video is None:
                video = self._videos[key] = result_video(
                    width=width, height=height, duration=duration, sound=sound, prompt=prompt, bad_video=bad_video
                )
            return video
