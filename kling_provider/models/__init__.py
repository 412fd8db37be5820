"""Typed request and response models for EvoLink's video API.

Build requests with ``TextToVideoRequest.build(**kwargs)`` (or ``build_request(cls, **kwargs)``):
every broken rule comes back as one ``KlingValidationError`` before any credit is spent, and
``request.to_body()`` is the exact JSON to POST.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kling_provider.models.common import (
        DEFAULT_DURATION,
        MAX_DURATION,
        MIN_DURATION,
        QUALITIES,
        KlingRequest,
        Quality,
    )
    from kling_provider.models.custom_element import REFERENCE_TYPES, CustomElementRequest, ReferenceType
    from kling_provider.models.errors import Problem, RequestValidationError, build_request
    from kling_provider.models.families import (
        IMAGE_TO_VIDEO_MODEL_NAMES,
        TEXT_TO_VIDEO_MODEL_NAMES,
        VIDEO_MODEL_RULES,
        VideoModelRules,
    )
    from kling_provider.models.image_to_video import ImageToVideoRequest
    from kling_provider.models.responses import (
        ApiError,
        ErrorResponse,
        FileData,
        FileUploadResponse,
        Task,
        TaskInfo,
        TaskStatus,
        Usage,
    )
    from kling_provider.models.shots import SHOT_TYPES, Shot, ShotType
    from kling_provider.models.text_to_video import TextToVideoRequest
    from kling_provider.models.urls import check_callback_url, check_media_url
    from kling_provider.models.video import ASPECT_RATIOS, AspectRatio, VideoRequest

    #: EvoLink model name -> the request class that builds its body (one class per family).
    REQUEST_MODELS: Mapping[str, type[KlingRequest]]

#: Where each public name lives. The submodules load on first use: a DAG of text-to-video
#: operators builds no response or element models while it is parsed (bench #4).
_HOMES = {
    "common": ("DEFAULT_DURATION", "MAX_DURATION", "MIN_DURATION", "QUALITIES", "KlingRequest", "Quality"),
    "custom_element": ("REFERENCE_TYPES", "CustomElementRequest", "ReferenceType"),
    "errors": ("Problem", "RequestValidationError", "build_request"),
    "families": ("IMAGE_TO_VIDEO_MODEL_NAMES", "TEXT_TO_VIDEO_MODEL_NAMES", "VIDEO_MODEL_RULES", "VideoModelRules"),
    "image_to_video": ("ImageToVideoRequest",),
    "responses": (
        "ApiError",
        "ErrorResponse",
        "FileData",
        "FileUploadResponse",
        "Task",
        "TaskInfo",
        "TaskStatus",
        "Usage",
    ),
    "shots": ("SHOT_TYPES", "Shot", "ShotType"),
    "text_to_video": ("TextToVideoRequest",),
    "urls": ("check_callback_url", "check_media_url"),
    "video": ("ASPECT_RATIOS", "AspectRatio", "VideoRequest"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """A public name, imported from its submodule the first time it is asked for."""
    if name == "REQUEST_MODELS":
        value: Any = _request_models()
    elif name in _HOME_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME_OF[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _request_models() -> Mapping[str, type[KlingRequest]]:
    text, image, element = (
        __getattr__(n) for n in ("TextToVideoRequest", "ImageToVideoRequest", "CustomElementRequest")
    )
    return MappingProxyType(
        {
            **{model: text for model in __getattr__("TEXT_TO_VIDEO_MODEL_NAMES")},
            **{model: image for model in __getattr__("IMAGE_TO_VIDEO_MODEL_NAMES")},
            element.model_name: element,
        }
    )


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_DURATION",
    "IMAGE_TO_VIDEO_MODEL_NAMES",
    "MAX_DURATION",
    "MIN_DURATION",
    "QUALITIES",
    "REFERENCE_TYPES",
    "REQUEST_MODELS",
    "SHOT_TYPES",
    "TEXT_TO_VIDEO_MODEL_NAMES",
    "VIDEO_MODEL_RULES",
    "ApiError",
    "AspectRatio",
    "CustomElementRequest",
    "ErrorResponse",
    "FileData",
    "FileUploadResponse",
    "ImageToVideoRequest",
    "KlingRequest",
    "Problem",
    "Quality",
    "ReferenceType",
    "RequestValidationError",
    "Shot",
    "ShotType",
    "Task",
    "TaskInfo",
    "TaskStatus",
    "TextToVideoRequest",
    "Usage",
    "VideoModelRules",
    "VideoRequest",
    "build_request",
    "check_callback_url",
    "check_media_url",
]
