"""``kling-v3-image-to-video``: animate a first frame (optionally towards a last frame)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainValidator
from pydantic_core import InitErrorDetails

from kling_provider.models.common import MediaUrl, RequiredMediaUrl, model_name_validator, plain_str, sequence_items
from kling_provider.models.errors import detail, fail, raise_all, show
from kling_provider.models.video import VideoRequest

MAX_ELEMENTS = 3
MAX_ELEMENT_ID_CHARS = 64
ImageToVideoModel = Literal["kling-v3-image-to-video"]
IMAGE_TO_VIDEO_MODELS: tuple[ImageToVideoModel, ...] = ("kling-v3-image-to-video",)


def element_id(value: Any) -> str:
    """Element ids are strings in the JSON; ints (as the product page shows them) are accepted."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            fail(f"must be an element id (got {show(value)})")
        value = str(value)
    result = plain_str(value, "an element id string")
    if not result or len(result) > MAX_ELEMENT_ID_CHARS or any(ch.isspace() for ch in result):
        fail(f"must be an element id: 1 to {MAX_ELEMENT_ID_CHARS} characters, no spaces (got {show(result)})")
    return result


def _elements(value: Any) -> tuple[str, ...]:
    items = sequence_items(value, "element ids")
    if len(items) > MAX_ELEMENTS:
        fail(f"must have at most {MAX_ELEMENTS} elements (got {len(items)})")
    ids: list[str] = []
    problems: list[InitErrorDetails] = []
    for position, item in enumerate(items):
        try:
            ids.append(element_id(item))
        except ValueError as err:  # PydanticCustomError is a ValueError
            problems.append(detail((position,), str(err), item))
            continue
        if ids[-1] in ids[:-1]:
            problems.append(detail((position,), f"duplicates elements[{ids.index(ids[-1])}] ({show(ids[-1])})"))
    raise_all(problems)
    return tuple(ids)


class ImageToVideoRequest(VideoRequest):
    """Arguments of a ``kling-v3-image-to-video`` task.

    ``image_start`` (required) and ``image_end`` are http(s) URLs: upload local files with the
    hook first. ``elements`` are up to 3 element ids from ``kling-custom-element``, referred to
    in prompts as ``<<<element_1>>>``... ``prompt`` is optional. There is no ``aspect_ratio``:
    the video takes the first frame's.
    """

    model_name: ClassVar[str] = "kling-v3-image-to-video"
    prompt_required: ClassVar[bool] = False
    takes_elements: ClassVar[bool] = True
    removed_fields: ClassVar[Mapping[str, str]] = {
        "aspect_ratio": "not accepted by kling-v3-image-to-video any more: the video takes the aspect ratio of "
        "image_start (crop the image instead)",
    }

    model: Annotated[ImageToVideoModel, model_name_validator(*IMAGE_TO_VIDEO_MODELS)] = "kling-v3-image-to-video"
    image_start: RequiredMediaUrl
    image_end: MediaUrl = None
    elements: Annotated[tuple[str, ...], PlainValidator(_elements)] = ()

    @property
    def element_count(self) -> int:
        return len(self.elements)

    def _inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {"image_start": self.image_start}
        if self.image_end is not None:
            inputs["image_end"] = self.image_end
        return inputs

    def _model_params(self) -> dict[str, Any]:
        params = super()._model_params()
        if self.elements:
            params["element_list"] = [{"element_id": element} for element in self.elements]
        return params

    @classmethod
    def _params_from_body(cls, params: dict[str, Any], kwargs: dict[str, Any]) -> None:
        if "element_list" in params:
            items = params.pop("element_list")
            if isinstance(items, list):
                items = [item.get("element_id") if isinstance(item, Mapping) else item for item in items]
            kwargs["elements"] = items
