"""``kling-v3-text-to-video``: a video from a prompt (or from per-shot prompts)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainValidator

from kling_provider.models.common import choice, model_name_validator
from kling_provider.models.video import VideoRequest

AspectRatio = Literal["16:9", "9:16", "1:1"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = ("16:9", "9:16", "1:1")
TextToVideoModel = Literal["kling-v3-text-to-video"]
TEXT_TO_VIDEO_MODELS: tuple[TextToVideoModel, ...] = ("kling-v3-text-to-video",)


def _aspect_ratio(value: Any) -> str | None:
    return None if value is None else choice(value, ASPECT_RATIOS)


class TextToVideoRequest(VideoRequest):
    """Arguments of a ``kling-v3-text-to-video`` task.

    ``prompt`` is required except with ``multi_shot=True, shot_type="customize"``, where the
    shots carry the text (the body then sends ``"prompt": ""``, which the schema requires).
    ``aspect_ratio`` is left to EvoLink's default when not given.
    """

    model_name: ClassVar[str] = "kling-v3-text-to-video"
    prompt_required: ClassVar[bool] = True

    model: Annotated[TextToVideoModel, model_name_validator(*TEXT_TO_VIDEO_MODELS)] = "kling-v3-text-to-video"
    aspect_ratio: Annotated[AspectRatio | None, PlainValidator(_aspect_ratio)] = None

    def _inputs(self) -> dict[str, Any]:
        return {} if self.aspect_ratio is None else {"aspect_ratio": self.aspect_ratio}
