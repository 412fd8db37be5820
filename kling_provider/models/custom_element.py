"""``kling-custom-element``: register a reusable subject (an element) from images or a video.

No video comes out of it: the finished task's ``result_data`` holds the new element id, which
``ImageToVideoRequest(elements=[...])`` then uses. Billed per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainValidator, model_validator
from pydantic_core import InitErrorDetails

from kling_provider.models.common import (
    CallbackUrl,
    KlingRequest,
    MediaUrl,
    choice,
    model_name_validator,
    sequence_items,
    text,
)
from kling_provider.models.errors import detail, fail, raise_all
from kling_provider.models.urls import check_media_url
from kling_provider.models.video import element_id

MAX_ELEMENT_NAME_CHARS = 20
MAX_ELEMENT_DESCRIPTION_CHARS = 100
MAX_REFER_IMAGES = 3
ReferenceType = Literal["image_refer", "video_refer"]
REFERENCE_TYPES: tuple[ReferenceType, ...] = ("image_refer", "video_refer")
CustomElementModel = Literal["kling-custom-element"]
CUSTOM_ELEMENT_MODELS: tuple[CustomElementModel, ...] = ("kling-custom-element",)


def _name(value: Any) -> str:
    return text(value, max_chars=MAX_ELEMENT_NAME_CHARS)


def _description(value: Any) -> str:
    return text(value, max_chars=MAX_ELEMENT_DESCRIPTION_CHARS)


def _reference_type(value: Any) -> str | None:
    return None if value is None else choice(value, REFERENCE_TYPES)


def _refer_images(value: Any) -> tuple[str, ...]:
    items = sequence_items(value, "image URLs")
    if len(items) > MAX_REFER_IMAGES:
        fail(f"must have at most {MAX_REFER_IMAGES} images (got {len(items)})")
    urls: list[str] = []
    problems: list[InitErrorDetails] = []
    for position, item in enumerate(items):
        try:
            urls.append(check_media_url(item))
        except ValueError as err:
            problems.append(detail((position,), str(err), item))
    raise_all(problems)
    return tuple(urls)


def _refer_video(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        fail(f"must be one video URL: EvoLink takes exactly 1 reference video (got {len(value)})")
    return None if value is None else check_media_url(value)


def _voice_id(value: Any) -> str | None:
    return None if value is None else element_id(value)


class CustomElementRequest(KlingRequest):
    """Arguments of a ``kling-custom-element`` task.

    Give either ``frontal_image`` + 1 to 3 ``refer_images`` (``reference_type="image_refer"``)
    or one ``refer_video`` (``"video_refer"``, optionally with ``element_voice_id``).
    ``reference_type`` is inferred from which of those are given; pass it to be explicit.
    """

    model_name: ClassVar[str] = "kling-custom-element"

    model: Annotated[CustomElementModel, model_name_validator(*CUSTOM_ELEMENT_MODELS)] = "kling-custom-element"
    element_name: Annotated[str, PlainValidator(_name)]
    element_description: Annotated[str, PlainValidator(_description)]
    reference_type: Annotated[ReferenceType | None, PlainValidator(_reference_type)] = None
    frontal_image: MediaUrl = None
    refer_images: Annotated[tuple[str, ...], PlainValidator(_refer_images)] = ()
    refer_video: Annotated[str | None, PlainValidator(_refer_video)] = None
    element_voice_id: Annotated[str | None, PlainValidator(_voice_id)] = None
    callback_url: CallbackUrl = None

    @model_validator(mode="before")
    @classmethod
    def _infer_reference_type(cls, data: Any) -> Any:
        """Fill ``reference_type`` from the material given, so callers need not repeat it."""
        if isinstance(data, Mapping) and data.get("reference_type") is None:
            has_video = data.get("refer_video") is not None
            images = data.get("refer_images")
            # No truthiness test on user values: only None and an empty list/tuple mean "not given".
            no_images = images is None or (isinstance(images, list | tuple) and not len(tuple(images)))
            has_images = data.get("frontal_image") is not None or not no_images
            if has_video != has_images:
                data = {**data, "reference_type": "video_refer" if has_video else "image_refer"}
        return data

    @model_validator(mode="after")
    def _material_matches_type(self) -> CustomElementRequest:
        problems: list[InitErrorDetails] = []
        if self.reference_type is None:
            problems.append(
                detail(("reference_type",), "required: give frontal_image + refer_images, or refer_video (not both)")
            )
        elif self.reference_type == "image_refer":
            if self.frontal_image is None:
                problems.append(detail(("frontal_image",), "required when reference_type='image_refer'"))
            if not self.refer_images:
                problems.append(
                    detail(
                        ("refer_images",), f"required when reference_type='image_refer': 1 to {MAX_REFER_IMAGES} URLs"
                    )
                )
            if self.refer_video is not None:
                problems.append(detail(("refer_video",), "only allowed with reference_type='video_refer'"))
            if self.element_voice_id is not None:
                problems.append(detail(("element_voice_id",), "only allowed with reference_type='video_refer'"))
        else:
            if self.refer_video is None:
                problems.append(detail(("refer_video",), "required when reference_type='video_refer'"))
            if self.frontal_image is not None:
                problems.append(detail(("frontal_image",), "only allowed with reference_type='image_refer'"))
            if self.refer_images:
                problems.append(detail(("refer_images",), "only allowed with reference_type='image_refer'"))
        raise_all(problems)
        return self

    def to_body(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "element_name": self.element_name,
            "element_description": self.element_description,
            "reference_type": self.reference_type,
        }
        if self.reference_type == "image_refer":
            params["element_image_list"] = {
                "frontal_image": self.frontal_image,
                "refer_images": [{"image_url": url} for url in self.refer_images],
            }
        else:
            params["element_video_list"] = {"refer_videos": [{"video_url": self.refer_video}]}
            if self.element_voice_id is not None:
                params["element_voice_id"] = self.element_voice_id
        body: dict[str, Any] = {"model": self.model, "model_params": params}
        if self.callback_url is not None:
            body["callback_url"] = self.callback_url
        return body

    @classmethod
    def _kwargs_from_body(cls, body: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(body)
        params = kwargs.pop("model_params", None)
        if not isinstance(params, Mapping):
            if params is not None:
                kwargs["model_params"] = params
            return kwargs
        params = dict(params)
        for key in ("element_name", "element_description", "reference_type", "element_voice_id"):
            if key in params:
                kwargs[key] = params.pop(key)
        images = params.pop("element_image_list", None)
        if isinstance(images, Mapping):
            images = dict(images)
            if "frontal_image" in images:
                kwargs["frontal_image"] = images.pop("frontal_image")
            refer = images.pop("refer_images", None)
            if isinstance(refer, list):
                refer = [item.get("image_url") if isinstance(item, Mapping) else item for item in refer]
            if refer is not None:
                kwargs["refer_images"] = refer
            for key, value in images.items():
                kwargs[f"model_params.element_image_list.{key}"] = value
        elif images is not None:
            kwargs["model_params.element_image_list"] = images
        videos = params.pop("element_video_list", None)
        if isinstance(videos, Mapping) and isinstance(videos.get("refer_videos"), list):
            refer_videos = videos["refer_videos"]
            urls = [item.get("video_url") if isinstance(item, Mapping) else item for item in refer_videos]
            kwargs["refer_video"] = urls[0] if len(urls) == 1 else urls
        elif videos is not None:
            kwargs["model_params.element_video_list"] = videos
        for key, value in params.items():
            kwargs[f"model_params.{key}"] = value
        return kwargs
