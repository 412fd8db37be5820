"""Typed request and response models for EvoLink's video API.

Build requests with ``TextToVideoRequest.build(**kwargs)`` (or ``build_request(cls, **kwargs)``):
every broken rule comes back as one ``KlingValidationError`` before any credit is spent, and
``request.to_body()`` is the exact JSON to POST.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from kling_provider.models.common import DEFAULT_DURATION, MAX_DURATION, MIN_DURATION, QUALITIES, KlingRequest, Quality
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
REQUEST_MODELS: Mapping[str, type[KlingRequest]] = MappingProxyType(
    {
        **{name: TextToVideoRequest for name in TEXT_TO_VIDEO_MODEL_NAMES},
        **{name: ImageToVideoRequest for name in IMAGE_TO_VIDEO_MODEL_NAMES},
        CustomElementRequest.model_name: CustomElementRequest,
    }
)

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
