"""Text-to-video: ``kling-v3-text-to-video`` (the default), ``kling-v3-turbo-text-to-video`` and
``kling-o3-text-to-video``; what each takes is in :mod:`kling_provider.models.families`."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from kling_provider.models.families import TEXT_TO_VIDEO_MODEL_NAMES
from kling_provider.models.video import AspectRatioField, VideoRequest, family_model_validator

TextToVideoModel = Literal["kling-v3-text-to-video", "kling-v3-turbo-text-to-video", "kling-o3-text-to-video"]
TEXT_TO_VIDEO_MODELS: tuple[TextToVideoModel, ...] = TEXT_TO_VIDEO_MODEL_NAMES  # type: ignore[assignment]


class TextToVideoRequest(VideoRequest):
    """Arguments of a text-to-video task.

    ``prompt`` is required except with ``multi_shot=True, shot_type="customize"``, where the
    shots carry the text (the body then sends ``"prompt": ""``, which the schema requires; for
    turbo the shots are written into the prompt). ``aspect_ratio`` is left to EvoLink's default
    when not given. ``elements`` (o3 only) are referred to as ``<<<element_1>>>``...
    """

    model_name: ClassVar[str] = "kling-v3-text-to-video"

    model: Annotated[TextToVideoModel, family_model_validator("text-to-video")] = "kling-v3-text-to-video"
    aspect_ratio: AspectRatioField = None

    def _inputs(self) -> dict[str, Any]:
        return {} if self.aspect_ratio is None else {"aspect_ratio": self.aspect_ratio}
