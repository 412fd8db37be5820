"""Image-to-video: ``kling-v3-image-to-video`` (the default), ``kling-v3-turbo-image-to-video``
and ``kling-o3-image-to-video``; what each takes is in :mod:`kling_provider.models.families`."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainValidator
from pydantic_core import InitErrorDetails

from kling_provider.models.common import check_items, sequence_items
from kling_provider.models.errors import detail, raise_all
from kling_provider.models.families import (
    IMAGE_TO_VIDEO_MODEL_NAMES,
    O3_MAX_ELEMENTS_WITH_FIRST_FRAME,
    O3_MAX_IMAGES_AND_ELEMENTS,
    O3_MAX_IMAGES_WITH_LAST_FRAME,
)
from kling_provider.models.untrusted import show
from kling_provider.models.urls import check_media_url
from kling_provider.models.video import (
    MAX_ELEMENT_ID_CHARS,
    AspectRatioField,
    VideoRequest,
    element_id,
    family_model_validator,
)

ImageToVideoModel = Literal["kling-v3-image-to-video", "kling-v3-turbo-image-to-video", "kling-o3-image-to-video"]
IMAGE_TO_VIDEO_MODELS: tuple[ImageToVideoModel, ...] = IMAGE_TO_VIDEO_MODEL_NAMES  # type: ignore[assignment]
_IMAGE_PLACEHOLDER = re.compile(r"<<<image_([0-9]+)>>>")

__all__ = ["IMAGE_TO_VIDEO_MODELS", "MAX_ELEMENT_ID_CHARS", "ImageToVideoRequest", "element_id"]


def _image_urls(value: Any) -> tuple[str, ...]:
    urls, problems = check_items(sequence_items(value, "image URLs"), check_media_url)
    raise_all(problems)
    return tuple(urls.values())


class ImageToVideoRequest(VideoRequest):
    """Arguments of an image-to-video task.

    ``image_start``, ``image_end`` and ``image_urls`` (o3's reference images) are http(s)
    URLs: upload local files with the hook first. ``elements`` come from
    ``kling-custom-element``, referred to in prompts as ``<<<element_1>>>``... turbo takes no
    ``aspect_ratio``: the video takes the first frame's. On kling-v3-image-to-video an end frame
    may stand alone and ``aspect_ratio`` is sent, as the product page documents (its OpenAPI
    document disagrees: see ``families.DOCUMENT_DISAGREEMENTS``).
    """

    model_name: ClassVar[str] = "kling-v3-image-to-video"

    model: Annotated[ImageToVideoModel, family_model_validator("image-to-video")] = "kling-v3-image-to-video"
    # An explicit ``None`` is refused like any non-URL; leaving the argument out is not.
    image_start: Annotated[str | None, PlainValidator(check_media_url)] = None
    image_end: Annotated[str | None, PlainValidator(check_media_url)] = None
    image_urls: Annotated[tuple[str, ...], PlainValidator(_image_urls)] = ()
    aspect_ratio: AspectRatioField = None

    @property
    def image_count(self) -> int:
        return (self.image_start is not None) + (self.image_end is not None) + len(self.image_urls)

    def _model_problems(self) -> list[InitErrorDetails]:
        problems = super()._model_problems()
        rules, model = self.rules, self.model
        if self.image_start is None and rules.image_start_required:
            problems.append(detail(("image_start",), "is required"))
        elif self.image_start is None and self.image_end is None and rules.image_end_alone:
            problems.append(detail(("image_start",), f"is required, or image_end: {model} needs at least one frame"))
        if self.image_end is not None and not rules.image_end:
            problems.append(detail(("image_end",), f"not accepted by {model} (it has no last frame)"))
        if self.image_urls and not rules.image_urls:
            problems.append(
                detail(("image_urls",), f"not accepted by {model} (reference images are kling-o3-image-to-video's)")
            )
        if self.aspect_ratio is not None and not rules.aspect_ratio:
            problems.append(
                detail(
                    ("aspect_ratio",),
                    f"not accepted by {model}: the video takes the aspect ratio of image_start "
                    "(crop the image instead)",
                )
            )
        return problems

    def _extra_problems(self) -> list[InitErrorDetails]:
        problems: list[InitErrorDetails] = []
        if self.image_end is not None and self.image_start is None and not self.rules.image_end_alone:
            problems.append(detail(("image_end",), "needs image_start: a last frame needs a first frame"))
        if not self.rules.image_urls:
            return problems
        # kling-o3-image-to-video's image and element limits.
        images, elements = self.image_count, len(self.elements)
        if images == 0:
            problems.append(
                detail(("image_start",), f"required for {self.model} unless image_urls gives reference images")
            )
        if self.image_end is not None and images > O3_MAX_IMAGES_WITH_LAST_FRAME:
            problems.append(
                detail(
                    ("image_end",),
                    f"{self.model} takes no last frame when there are more than {O3_MAX_IMAGES_WITH_LAST_FRAME} "
                    f"images in all (got {images}: image_start, image_end and {len(self.image_urls)} image_urls)",
                )
            )
        if self.image_start is not None and elements > O3_MAX_ELEMENTS_WITH_FIRST_FRAME:
            problems.append(
                detail(
                    ("elements",),
                    f"must have at most {O3_MAX_ELEMENTS_WITH_FIRST_FRAME} elements with image_start "
                    f"on {self.model} (got {elements})",
                )
            )
        if images + elements > O3_MAX_IMAGES_AND_ELEMENTS:
            problems.append(
                detail(
                    ("image_urls",),
                    f"images and elements together must be at most {O3_MAX_IMAGES_AND_ELEMENTS} on {self.model} "
                    f"(got {images} images and {elements} elements)",
                )
            )
        texts: list[tuple[tuple[str | int, ...], str | None]] = [(("prompt",), self.prompt)]
        texts += [(("shots", i, "prompt"), shot.prompt) for i, shot in enumerate(self.shots)]
        for loc, text in texts:
            for match in _IMAGE_PLACEHOLDER.finditer(text or ""):
                digits = match.group(1)
                if len(digits.lstrip("0")) > 3 or not 1 <= int(digits) <= images:
                    problems.append(
                        detail(
                            loc,
                            f"{show(match.group(0))} refers to an image that does not exist "
                            f"({images} images are given: image_start, image_end, then image_urls)",
                        )
                    )
        return problems

    def _inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        if self.image_start is not None:
            inputs["image_start"] = self.image_start
        if self.image_end is not None:
            inputs["image_end"] = self.image_end
        if self.image_urls:
            inputs["image_urls"] = list(self.image_urls)
        if self.aspect_ratio is not None:
            inputs["aspect_ratio"] = self.aspect_ratio
        return inputs
