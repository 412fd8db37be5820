"""What EvoLink accepts, and what it derives from an accepted request (size, price, timing).

A request is first checked against the vendored OpenAPI schema of its model (verbatim copies
in ``openapi/``), then against the rules the vendor documents in prose but the schema does not
encode. Written from the vendor documents only: nothing here may come from the client package,
or a misreading in the client would be mirrored instead of caught.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
import struct
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "CUSTOM_ELEMENT_MODEL",
    "IMAGE_MAX_BYTES",
    "READINGS",
    "SUPPORTED_MODELS",
    "GenerationSpec",
    "ImageInfo",
    "Reading",
    "RequestRejected",
    "output_size",
    "price_credits",
    "realistic_generation_seconds",
    "sniff_image",
    "validate_generation",
]

CUSTOM_ELEMENT_MODEL = "kling-custom-element"
TEXT_TO_VIDEO_MODELS = frozenset({"kling-v3-text-to-video", "kling-v3-turbo-text-to-video", "kling-o3-text-to-video"})
IMAGE_TO_VIDEO_MODELS = frozenset(
    {"kling-v3-image-to-video", "kling-v3-turbo-image-to-video", "kling-o3-image-to-video"}
)
SUPPORTED_MODELS = TEXT_TO_VIDEO_MODELS | IMAGE_TO_VIDEO_MODELS | {CUSTOM_ELEMENT_MODEL}
#: Models whose output shape follows the input image when no aspect_ratio is given (turbo
#: takes none at all; v3 takes one on the product page's reading, below).
_ADAPTIVE_ASPECT_MODELS = frozenset({"kling-v3-image-to-video", "kling-v3-turbo-image-to-video"})
#: How to read the vendor's two documents where they disagree (on kling-v3-image-to-video, the
#: one model the product page in ``shared/seed`` documents field by field):
#:
#: * ``"product-page"`` (the default) accepts what either document allows: an end frame alone
#:   ("at least one of image_start or image_end must be provided"), ``aspect_ratio`` (16:9,
#:   9:16, 1:1; without it the video follows the frame it is given) and element ids as numbers
#:   (the page's ``{element_id: long}``), besides everything the OpenAPI document allows.
#: * ``"openapi"`` follows the newer OpenAPI document alone: ``image_start`` is required,
#:   ``aspect_ratio`` is refused as undocumented, element ids must be strings.
#:
#: The product page says the console and API responses are the source of truth; which reading
#: the live API follows is not known, so tests of the client can run against either.
Reading = Literal["product-page", "openapi"]
READINGS: tuple[Reading, ...] = ("product-page", "openapi")
#: The model the product page documents, where its reading differs from the OpenAPI document's.
PAGE_MODEL = "kling-v3-image-to-video"
PAGE_ASPECT_RATIOS = ("16:9", "9:16", "1:1")
#: Turbo models have no ``sound`` parameter.
_SILENT_MODELS = frozenset({"kling-v3-turbo-text-to-video", "kling-v3-turbo-image-to-video"})

IMAGE_MAX_BYTES = 10 * 1024 * 1024
PROMPT_MAX = 2500
NEGATIVE_PROMPT_MAX = 2500
CALLBACK_URL_MAX = 2048
#: Kling 3.0 accepts up to 3 elements; o3 models document their own (larger) limit in the schema.
V3_MAX_ELEMENTS = 3
#: Fields some Kling models take and others' documents do not list. Sent to a model whose
#: document lacks them, they are refused (as ``element_list`` is): a vendor that dropped them
#: silently would make a video without the negative prompt, last frame or shots asked for.
#: (``sound`` on turbo and ``aspect_ratio`` on turbo image-to-video stay ignored, as before; v3
#: image-to-video's ``aspect_ratio`` depends on the :data:`Reading`.)
_REFUSED_WHEN_UNDOCUMENTED = ("negative_prompt", "image_end", "image_urls", "model_params")
MAX_SHOTS = 6
#: Shot prompt limit by model, where its document states one (o3 text-to-video's does not).
_SHOT_PROMPT_MAX = {
    "kling-v3-text-to-video": 512,
    "kling-v3-image-to-video": 512,
    "kling-v3-turbo-text-to-video": 512,
    "kling-o3-image-to-video": 512,
}
# Not imported from models.families on purpose: the simulator is an independent oracle from the vendor docs.
#: kling-o3-image-to-video's prose: elements with a first frame, images + elements, and the
#: most images that still allow a last frame.
O3_I2V_MAX_ELEMENTS_WITH_FIRST_FRAME = 3
O3_I2V_MAX_IMAGES_AND_ELEMENTS = 7
O3_I2V_MAX_IMAGES_WITH_LAST_FRAME = 2
# Not models.video.PROMPT_SHOT on purpose: the simulator is an independent oracle from the vendor docs.
#: kling-v3-turbo-text-to-video's multi-shot syntax in the prompt: ``镜头 n, m, words;``.
_TURBO_SHOT = re.compile(r"镜头\s*(\d+)\s*[,\uff0c]\s*(\d+)\s*[,\uff0c]\s*([^;\uff1b]*)")
_IMAGE_PLACEHOLDER = re.compile(r"<<<image_(\d+)>>>")

#: Credits per second of requested duration (product page), by (quality, sound).
_RATE_PER_SECOND: dict[tuple[str, bool], float] = {
    ("720p", False): 5.4,
    ("720p", True): 8.1,
    ("1080p", False): 7.1982,
    ("1080p", True): 10.8,
}
#: 4k pricing is not published: the simulator charges 2.5x the 720p rate (SIMULATOR-ONLY guess).
FOUR_K_MULTIPLIER = 2.5
MIN_BILLED_SECONDS = 3
#: ``kling-custom-element`` is billed per call; the vendor schema's example says 1 credit.
CUSTOM_ELEMENT_CREDITS = 1.0

_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
    "4k": {"16:9": (3840, 2160), "9:16": (2160, 3840), "1:1": (2160, 2160)},
}

_ELEMENT_PLACEHOLDER = re.compile(r"<<<element_(\d+)>>>")


class RequestRejected(Exception):
    """A request the vendor answers with an HTTP error instead of a task."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code


@dataclass(frozen=True)
class GenerationSpec:
    """What an accepted ``POST /v1/videos/generations`` asks for, with defaults filled in."""

    model: str
    kind: Literal["video", "element"]
    duration: int
    quality: str
    #: None when the vendor picks it from the input image (v3 image-to-video).
    aspect_ratio: str | None
    sound: bool
    credits: float
    billing_rule: str
    #: Image URLs the vendor downloads while processing (image_start, image_end, references).
    image_urls: tuple[str, ...]
    element_name: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    """An image recognised by its magic bytes; width/height are None when not parsed."""

    mime_type: str
    extension: str
    width: int | None
    height: int | None


def output_size(quality: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size of the video for ``quality`` (720p, 1080p, 4k) and ``aspect_ratio``."""
    return _SIZES[quality][aspect_ratio]


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported aspect ratio closest to an input image's (how image-to-video adapts)."""
    ratio = width / height
    return min(("16:9", "9:16", "1:1"), key=lambda name: abs(math.log(ratio / _ratio_value(name))))


def _ratio_value(name: str) -> float:
    w, h = name.split(":")
    return int(w) / int(h)


def price_credits(model: str, duration: int, quality: str = "720p", sound: bool = False) -> float:
    """Credits reserved for one task: per second, minimum 3 s; custom elements per call.

    Turbo and o3 models are priced like v3 here (their prices are not published).
    """
    if model == CUSTOM_ELEMENT_MODEL:
        return CUSTOM_ELEMENT_CREDITS
    base = _RATE_PER_SECOND["720p" if quality == "4k" else quality, sound]
    rate = base * FOUR_K_MULTIPLIER if quality == "4k" else base
    return round(rate * max(MIN_BILLED_SECONDS, duration), 4)


def realistic_generation_seconds(spec: GenerationSpec) -> float:
    """A plausible server estimate: 60-180 s, longer for longer and sharper clips."""
    if spec.kind == "element":
        return 30.0
    factor = {"720p": 1.0, "1080p": 1.3, "4k": 1.6}.get(spec.quality, 1.0)
    return float(min(180, max(60, round((45 + 6 * spec.duration) * factor))))


# ---------------------------------------------------------------------------------------------
# Schema checks
# ---------------------------------------------------------------------------------------------


@functools.cache
def _validator(model: str) -> Draft202012Validator:
    text = resources.files("kling_provider.testing").joinpath("openapi").joinpath(f"{model}.json").read_text("utf-8")
    document = json.loads(text)
    name = "CustomElementRequest" if model == CUSTOM_ELEMENT_MODEL else "VideoGenerationRequest"
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@functools.cache
def _model_params_properties(model: str) -> frozenset[str]:
    schema = _validator(model).schema
    request = schema["components"]["schemas"]["VideoGenerationRequest"]
    return frozenset(request["properties"].get("model_params", {}).get("properties", {}))


def _param_of(error: ValidationError) -> str | None:
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(missing[0])
    if not path:
        return None
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_check(model: str, body: dict[str, Any]) -> None:
    error = best_match(_validator(model).iter_errors(body))
    if error is not None:
        param = _param_of(error)
        where = f"{param}: " if param else ""
        raise RequestRejected(f"Invalid request parameters: {where}{error.message[:300]}", param=param)


# ---------------------------------------------------------------------------------------------
# Rules from the prose of the docs
# ---------------------------------------------------------------------------------------------


def validate_generation(body: Any, *, reading: Reading = "product-page") -> GenerationSpec:
    """Check a create-task body like EvoLink does; raise :class:`RequestRejected` (HTTP 400).

    ``reading`` decides where the product page and the OpenAPI document disagree (see
    :data:`Reading`)."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS} (got {reading!r})")
    if not isinstance(body, dict):
        raise RequestRejected("Request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestRejected("model is required", param="model")
    if model not in SUPPORTED_MODELS:
        raise RequestRejected(f"Unsupported model: {model[:100]}", param="model")
    if model == CUSTOM_ELEMENT_MODEL:
        return _validate_custom_element(body)
    return _validate_video(model, body, page=reading == "product-page" and model == PAGE_MODEL)


def _page_forms(body: dict[str, Any]) -> dict[str, Any]:
    """The body as the OpenAPI schema would have it, for the product page's forms of it.

    An end frame alone is checked as if it were also the first frame, element ids given as
    numbers as if they were strings, and ``aspect_ratio`` (which the schema does not declare)
    is checked here against the page's list.
    """
    if "aspect_ratio" in body and body["aspect_ratio"] not in PAGE_ASPECT_RATIOS:
        listed = ", ".join(PAGE_ASPECT_RATIOS)
        raise RequestRejected(f"aspect_ratio must be one of {listed}", param="aspect_ratio")
    if "image_start" not in body and "image_end" not in body:
        raise RequestRejected("At least one of image_start or image_end must be provided", param="image_start")
    checked = dict(body)
    if "image_start" not in checked:
        checked["image_start"] = checked["image_end"]
    params = checked.get("model_params")
    elements = params.get("element_list") if isinstance(params, dict) else None
    if isinstance(elements, list):
        as_strings = [
            {**item, "element_id": str(item["element_id"])}
            if isinstance(item, dict) and type(item.get("element_id")) is int
            else item
            for item in elements
        ]
        checked["model_params"] = {**params, "element_list": as_strings}  # type: ignore[dict-item]
    return checked


def _validate_video(model: str, body: dict[str, Any], *, page: bool = False) -> GenerationSpec:
    params = body.get("model_params")
    params = params if isinstance(params, dict) else {}
    multi_shot = params.get("multi_shot") is True
    customize = multi_shot and params.get("shot_type") == "customize"
    checked = _page_forms(body) if page else body
    if customize and "prompt" not in checked:
        # The schema lists prompt as required, but the docs say it may be empty (and is
        # ignored) with multi_shot + customize: check the rest of the body as if it were "".
        checked = {**checked, "prompt": ""}
    _schema_check(model, checked)
    if model == PAGE_MODEL and not page and "aspect_ratio" in body:
        raise RequestRejected(f"aspect_ratio is not supported by {model}", param="aspect_ratio")
    properties = _request_properties(model)
    for name in _REFUSED_WHEN_UNDOCUMENTED:
        if name in body and name not in properties:
            raise RequestRejected(f"{name} is not supported by {model}", param=name)

    prompt = body.get("prompt") or ""
    if model in TEXT_TO_VIDEO_MODELS and not customize and not prompt.strip():
        raise RequestRejected("prompt is required unless multi_shot with shot_type=customize", param="prompt")
    if model == "kling-o3-image-to-video" and not multi_shot and not prompt.strip():
        raise RequestRejected("prompt is required when multi_shot is false", param="prompt")
    if model == "kling-v3-turbo-text-to-video":
        _check_turbo_prompt_shots(prompt, body.get("duration", 5))
    negative = body.get("negative_prompt")
    if isinstance(negative, str) and len(negative) > NEGATIVE_PROMPT_MAX:
        raise RequestRejected(
            f"negative_prompt must be at most {NEGATIVE_PROMPT_MAX} characters", param="negative_prompt"
        )

    duration = body.get("duration", 5)
    if multi_shot and not params.get("shot_type"):
        raise RequestRejected("shot_type is required when multi_shot is true", param="model_params.shot_type")
    if customize:
        _check_shots(params.get("multi_prompt"), duration, _SHOT_PROMPT_MAX.get(model))

    elements = params.get("element_list")
    if elements is not None and "element_list" not in _model_params_properties(model):
        raise RequestRejected(f"element_list is not supported by {model}", param="model_params.element_list")
    n_elements = len(elements) if isinstance(elements, list) else 0
    if model.startswith("kling-v3-") and n_elements > V3_MAX_ELEMENTS:
        raise RequestRejected(f"At most {V3_MAX_ELEMENTS} elements are allowed", param="model_params.element_list")
    texts = [prompt] + [str(s.get("prompt", "")) for s in params.get("multi_prompt") or [] if isinstance(s, dict)]
    for text in texts:
        for match in _ELEMENT_PLACEHOLDER.finditer(text):
            number = int(match.group(1))
            if not 1 <= number <= n_elements:
                raise RequestRejected(
                    f"{match.group(0)} refers to element {number} but element_list has {n_elements}", param="prompt"
                )

    images: list[str] = []
    for name in ("image_start", "image_end"):
        if name in body:
            images.append(_check_url(body[name], name))
    if "image_end" in body and "image_start" not in body and not page:
        raise RequestRejected("image_end requires image_start", param="image_end")
    for i, url in enumerate(body.get("image_urls") or []):
        images.append(_check_url(url, f"image_urls[{i}]"))
    if model == "kling-o3-image-to-video":
        _check_o3_images(body, params, len(images), n_elements, texts)
    _check_callback(body)

    quality = body.get("quality", "720p")
    sound = body.get("sound") == "on" and model not in _SILENT_MODELS
    aspect = body.get("aspect_ratio")
    if model in _ADAPTIVE_ASPECT_MODELS and not page:
        aspect = None  # not accepted (turbo ignores it): the output follows the image
    elif model in _ADAPTIVE_ASPECT_MODELS:
        pass  # the page's reading: as asked, else (None) the output follows the frame given
    elif aspect is None:
        aspect = "16:9"
    return GenerationSpec(
        model=model,
        kind="video",
        duration=duration,
        quality=quality,
        aspect_ratio=aspect,
        sound=sound,
        credits=price_credits(model, duration, quality, sound),
        billing_rule="per_second",
        image_urls=tuple(images),
    )


def _request_properties(model: str) -> frozenset[str]:
    schema = _validator(model).schema
    return frozenset(schema["components"]["schemas"]["VideoGenerationRequest"]["properties"])


def _check_turbo_prompt_shots(prompt: str, duration: int) -> None:
    """turbo text-to-video: ``镜头 n, m, words;`` - n up to 6, the m add up, words <= 512."""
    shots = _TURBO_SHOT.findall(prompt)
    if not shots:
        return
    if len(shots) > MAX_SHOTS:
        raise RequestRejected(f"At most {MAX_SHOTS} shots are allowed in the prompt", param="prompt")
    for i, (number, seconds, words) in enumerate(shots):
        if int(number) != i + 1:
            raise RequestRejected(f"Shot {i + 1} in the prompt is numbered {number}", param="prompt")
        if int(seconds) < 1:
            raise RequestRejected(f"Shot {number} in the prompt must last at least 1 s", param="prompt")
        if len(words.strip()) > 512:
            raise RequestRejected(f"Shot {number} in the prompt is longer than 512 characters", param="prompt")
    total = sum(int(seconds) for _, seconds, _ in shots)
    if total != duration:
        raise RequestRejected(
            f"The shot durations in the prompt add up to {total} s but duration is {duration} s", param="prompt"
        )


def _check_o3_images(
    body: dict[str, Any], params: dict[str, Any], n_images: int, n_elements: int, texts: list[str]
) -> None:
    """kling-o3-image-to-video's image rules, from the prose of its document."""
    if "image_end" in body and n_images > O3_I2V_MAX_IMAGES_WITH_LAST_FRAME:
        raise RequestRejected(
            f"Last frame is not supported when the total image count exceeds {O3_I2V_MAX_IMAGES_WITH_LAST_FRAME}",
            param="image_end",
        )
    if "image_start" in body and n_elements > O3_I2V_MAX_ELEMENTS_WITH_FIRST_FRAME:
        raise RequestRejected(
            f"At most {O3_I2V_MAX_ELEMENTS_WITH_FIRST_FRAME} elements are allowed with a first frame",
            param="model_params.element_list",
        )
    if n_images + n_elements > O3_I2V_MAX_IMAGES_AND_ELEMENTS:
        raise RequestRejected(
            f"Image count + element count must be at most {O3_I2V_MAX_IMAGES_AND_ELEMENTS}", param="image_urls"
        )
    for text in texts:
        for match in _IMAGE_PLACEHOLDER.finditer(text):
            number = int(match.group(1))
            if not 1 <= number <= n_images:
                raise RequestRejected(
                    f"{match.group(0)} refers to image {number} but the request has {n_images}", param="prompt"
                )


def _check_shots(shots: Any, duration: int, prompt_max: int | None = None) -> None:
    if not shots:
        raise RequestRejected("multi_prompt is required when shot_type is customize", param="model_params.multi_prompt")
    if not isinstance(shots, list):
        raise RequestRejected("multi_prompt must be a list of shots", param="model_params.multi_prompt")
    if len(shots) > MAX_SHOTS:
        raise RequestRejected(f"At most {MAX_SHOTS} shots are allowed", param="model_params.multi_prompt")
    total = 0
    for i, shot in enumerate(shots):
        where = f"model_params.multi_prompt[{i}]"
        if not isinstance(shot, dict):
            raise RequestRejected(f"{where} must be an object with index, prompt and duration", param=where)
        text = shot.get("prompt")
        if not isinstance(text, str):
            raise RequestRejected(f"{where}.prompt must be a string", param=f"{where}.prompt")
        if prompt_max is not None and len(text) > prompt_max:
            raise RequestRejected(f"{where}.prompt must be at most {prompt_max} characters", param=f"{where}.prompt")
        if shot.get("index") != i + 1:
            raise RequestRejected(f"{where}.index must be {i + 1} (shots are numbered from 1)", param=f"{where}.index")
        raw = shot.get("duration")
        if not re.fullmatch(r"\d+", str(raw).strip()):
            raise RequestRejected(f"{where}.duration must be a whole number of seconds", param=f"{where}.duration")
        seconds = int(str(raw).strip())
        if not 1 <= seconds <= duration:
            raise RequestRejected(f"{where}.duration must be between 1 and {duration}", param=f"{where}.duration")
        total += seconds
    if total != duration:
        raise RequestRejected(
            f"The shot durations add up to {total} s but duration is {duration} s", param="model_params.multi_prompt"
        )


def _validate_custom_element(body: dict[str, Any]) -> GenerationSpec:
    _schema_check(CUSTOM_ELEMENT_MODEL, body)
    params = body["model_params"]
    reference = params["reference_type"]
    images: list[str] = []
    if reference == "image_refer":
        listing = params.get("element_image_list")
        if listing is None:
            raise RequestRejected(
                "element_image_list is required when reference_type is image_refer",
                param="model_params.element_image_list",
            )
        images.append(_check_url(listing["frontal_image"], "model_params.element_image_list.frontal_image"))
        for i, item in enumerate(listing["refer_images"]):
            images.append(_check_url(item["image_url"], f"model_params.element_image_list.refer_images[{i}].image_url"))
    else:
        listing = params.get("element_video_list")
        if listing is None:
            raise RequestRejected(
                "element_video_list is required when reference_type is video_refer",
                param="model_params.element_video_list",
            )
        for i, item in enumerate(listing["refer_videos"]):
            _check_url(item["video_url"], f"model_params.element_video_list.refer_videos[{i}].video_url")
    if "element_voice_id" in params and reference != "video_refer":
        raise RequestRejected(
            "element_voice_id is only supported with reference_type video_refer", param="model_params.element_voice_id"
        )
    _check_callback(body)
    return GenerationSpec(
        model=CUSTOM_ELEMENT_MODEL,
        kind="element",
        duration=0,
        quality="720p",
        aspect_ratio=None,
        sound=False,
        credits=price_credits(CUSTOM_ELEMENT_MODEL, 0),
        billing_rule="per_call",
        image_urls=tuple(images),
        element_name=str(params["element_name"]),
    )


def _check_url(value: Any, param: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestRejected(f"{param} must be a directly downloadable http(s) URL", param=param)
    return str(value)


def _check_callback(body: dict[str, Any]) -> None:
    url = body.get("callback_url")
    if url is None:
        return
    if len(url) > CALLBACK_URL_MAX:
        raise RequestRejected(f"callback_url must be at most {CALLBACK_URL_MAX} characters", param="callback_url")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise RequestRejected("callback_url must be an HTTPS URL", param="callback_url")
    if _is_internal_host(parts.hostname):
        raise RequestRejected("callback_url must not point at an internal address", param="callback_url")


def _is_internal_host(hostname: str) -> bool:
    host = hostname.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
    )


# ---------------------------------------------------------------------------------------------
# Uploaded images
# ---------------------------------------------------------------------------------------------


def sniff_image(data: bytes) -> ImageInfo | None:
    """Recognise JPEG, PNG, GIF and WEBP by their magic bytes (the only types the file API takes)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            width, height = struct.unpack(">II", data[16:24])
            return ImageInfo("image/png", "png", width, height)
        if data.startswith(b"\xff\xd8\xff"):
            size = _jpeg_size(data)
            return ImageInfo("image/jpeg", "jpg", *(size or (None, None)))
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return ImageInfo("image/gif", "gif", width, height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size = _webp_size(data)
            return ImageInfo("image/webp", "webp", *(size or (None, None)))
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None
