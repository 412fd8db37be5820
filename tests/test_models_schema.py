"""Every body the request models can produce is valid against EvoLink's own OpenAPI documents.

The schemas are read from the vendor documents (never copied here): ``shared/evolink-openapi``
beside the clone, else the copies vendored in ``kling_provider/testing/openapi``. On top of the
schema, bodies must use only declared keys, carry no nulls, and keep the rules the schema states
in prose (shot durations add up, ``<<<element_N>>>`` in range), so a body that passes here is
one EvoLink accepts.

Three generators feed it: a systematic product over the option space, a hypothesis strategy of
valid arguments, and a hostile one that must end in either a valid body or a
``KlingValidationError`` naming a field, never any other exception.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from kling_provider.exceptions import KlingValidationError
from kling_provider.models import (
    ASPECT_RATIOS,
    IMAGE_TO_VIDEO_MODEL_NAMES,
    QUALITIES,
    REQUEST_MODELS,
    TEXT_TO_VIDEO_MODEL_NAMES,
    CustomElementRequest,
    ImageToVideoRequest,
    KlingRequest,
    RequestValidationError,
    TextToVideoRequest,
)
from kling_provider.testing.validation import RequestRejected, validate_generation

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_OPENAPI = Path(__file__).parents[1].parent / "shared" / "evolink-openapi"
VENDORED_OPENAPI = REPO_ROOT / "kling_provider" / "testing" / "openapi"
OPENAPI_DIR = SHARED_OPENAPI if SHARED_OPENAPI.is_dir() else VENDORED_OPENAPI
CREATE_PATH = "/v1/videos/generations"
BODY_POINTER = "#/paths/~1v1~1videos~1generations/post/requestBody/content/application~1json/schema"

IMG = "https://files-api.evolink.ai/files/a.png"
IMG2 = "https://files-api.evolink.ai/files/b.jpg"
VID = "https://files-api.evolink.ai/files/c.mp4"
HOOK = "https://hooks.example.com/kling?run=1"
PLACEHOLDER = re.compile(r"<<<element_([0-9]+)>>>")
IMAGE_PLACEHOLDER = re.compile(r"<<<image_([0-9]+)>>>")

_formats = FormatChecker()


@_formats.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """jsonschema only checks ``format: uri`` with an optional package; a small local check."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)


@cache
def document(model: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((OPENAPI_DIR / f"{model}.json").read_text(encoding="utf-8"))
    return loaded


@cache
def body_validator(model: str) -> Draft202012Validator:
    """Validate against the document's request-body schema, resolving its ``$ref``s in place."""
    doc = document(model)
    schema = {**doc, "$ref": BODY_POINTER}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_formats)


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def undeclared(value: Any, schema: dict[str, Any], doc: dict[str, Any], path: str = "") -> list[str]:
    """Keys the schema does not declare, and nulls: the schema allows both, EvoLink may not."""
    schema = _resolve(schema, doc)
    found: list[str] = []
    if value is None:
        found.append(f"{path or 'body'} is null")
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key not in properties:
                found.append(f"{path}.{key} is not declared")
            else:
                found += undeclared(item, properties[key], doc, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += undeclared(item, schema["items"], doc, f"{path}[{i}]")
    return found


def prose_rules(body: dict[str, Any]) -> list[str]:
    """The rules the schema states in descriptions only."""
    problems: list[str] = []
    params = body.get("model_params", {})
    shots = params.get("multi_prompt")
    if params.get("multi_shot") and "shot_type" not in params:
        problems.append("multi_shot without shot_type")
    if params.get("shot_type") == "customize":
        if not shots:
            problems.append("customize without multi_prompt")
        elif sum(int(s["duration"]) for s in shots) != body.get("duration", 5):
            problems.append("shot durations do not add up")
    if shots is not None:
        if [s["index"] for s in shots] != list(range(1, len(shots) + 1)):
            problems.append("shot indexes are not 1..n")
        if any(not s["duration"].isdigit() or int(s["duration"]) < 1 for s in shots):
            problems.append("shot duration is not a positive integer string")
    model = body["model"]
    if "text-to-video" in model and not body.get("prompt") and params.get("shot_type") != "customize":
        problems.append("text-to-video without a prompt")
    if model == "kling-o3-image-to-video" and not body.get("prompt") and not params.get("multi_shot"):
        problems.append("o3 image-to-video without a prompt outside multi-shot")
    if shots is not None and any(len(s["prompt"]) > 512 for s in shots):
        problems.append("a shot prompt over 512 characters")
    if shots is not None and len(shots) > 6:
        problems.append("more than 6 shots")
    if model == "kling-v3-turbo-text-to-video":
        problems += turbo_prompt_shots(body.get("prompt", ""), body.get("duration", 5))
    if model == "kling-o3-image-to-video":
        images = ("image_start" in body) + ("image_end" in body) + len(body.get("image_urls", []))
        elements_given = len(params.get("element_list", []))
        if "image_end" in body and images > 2:
            problems.append("last frame with more than 2 images")
        if "image_start" in body and elements_given > 3:
            problems.append("more than 3 elements with a first frame")
        if images + elements_given > 7:
            problems.append("more than 7 images and elements")
        for text in [body.get("prompt", "")] + [s["prompt"] for s in shots or []]:
            for match in IMAGE_PLACEHOLDER.finditer(text):
                if not (len(match.group(1)) < 4 and 1 <= int(match.group(1)) <= images):
                    problems.append(f"{match.group(0)} out of range")
    if "image_end" in body and "image_start" not in body:
        problems.append("image_end without image_start")
    elements = len(params.get("element_list", []))
    texts = [body.get("prompt", ""), body.get("negative_prompt", "")] + [s["prompt"] for s in shots or []]
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            if not (len(match.group(1)) < 4 and 1 <= int(match.group(1)) <= elements):
                problems.append(f"{match.group(0)} out of range")
    if body["model"] == "kling-custom-element":
        mp = body["model_params"]
        if mp["reference_type"] == "image_refer" and "element_image_list" not in mp:
            problems.append("image_refer without element_image_list")
        if mp["reference_type"] == "video_refer" and "element_video_list" not in mp:
            problems.append("video_refer without element_video_list")
        if "element_voice_id" in mp and mp["reference_type"] != "video_refer":
            problems.append("element_voice_id without video_refer")
    return problems


def turbo_prompt_shots(prompt: str, duration: int) -> list[str]:
    """turbo text-to-video's ``镜头 n, m, words;``: n counts 1..6, the m add up, words <= 512."""
    shots = re.findall(r"镜头 ([0-9]+), ([0-9]+), ([^;]*);", prompt)
    if not shots:
        return []
    problems = []
    if [int(n) for n, _, _ in shots] != list(range(1, len(shots) + 1)) or len(shots) > 6:
        problems.append("turbo prompt shots are not numbered 1..n (n <= 6)")
    if sum(int(m) for _, m, _ in shots) != duration:
        problems.append("turbo prompt shot durations do not add up")
    if any(len(words.strip()) > 512 for _, _, words in shots):
        problems.append("turbo prompt shot over 512 characters")
    return problems


# Where the product page (shared/seed, which documents kling-v3-image-to-video field by field)
# and that model's OpenAPI document disagree, the client sends the page's form (an end frame
# alone, aspect_ratio). Such bodies are not valid against the OpenAPI document: they are marked
# here, checked in their OpenAPI form (an end frame alone stands in as the first frame,
# aspect_ratio is set aside), and shown to be refused as they are, so a disagreement that went
# away (or a new one) fails this test instead of being skipped.
PAGE_MODEL = "kling-v3-image-to-video"
PAGE_ASPECT_RATIOS = ("16:9", "9:16", "1:1")
page_forms_seen: set[str] = set()


def page_only_forms(body: dict[str, Any]) -> list[str]:
    """The product page's forms in ``body`` that the OpenAPI document refuses."""
    if body["model"] != PAGE_MODEL:
        return []
    forms = []
    if "image_end" in body and "image_start" not in body:
        forms.append("end frame alone")
    if "aspect_ratio" in body:
        assert body["aspect_ratio"] in PAGE_ASPECT_RATIOS, body["aspect_ratio"]
        forms.append("aspect_ratio")
    return forms


def openapi_form(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the page's forms put as the OpenAPI document would have them."""
    out = {k: v for k, v in body.items() if k != "aspect_ratio"}
    if "image_start" not in out and "image_end" in out:
        out = {**out, "image_start": out["image_end"]}
    return out


def vendor_errors(model: str, body: dict[str, Any]) -> list[str]:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in body_validator(model).iter_errors(body)]
    doc = document(model)
    errors += undeclared(body, _resolve({"$ref": BODY_POINTER}, doc), doc)
    return errors + prose_rules(body)


def assert_vendor_valid(request: KlingRequest) -> dict[str, Any]:
    body = request.to_body()
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # what the hook sends must encode
    forms = page_only_forms(body)
    errors = vendor_errors(request.model, openapi_form(body) if forms else body)
    assert not errors, f"{request.model} body rejected: {errors}\n{json.dumps(body)[:2000]}"
    if forms:
        # Marked, not dropped: the OpenAPI document refuses the body as sent, the simulator takes
        # it on the product page's reading (its default) and refuses it on the OpenAPI one.
        assert vendor_errors(request.model, body), f"{forms} are no longer refused by the OpenAPI document"
        validate_generation(body)
        with pytest.raises(RequestRejected):
            validate_generation(body, reading="openapi")
        page_forms_seen.update(forms)
    # The body parses back into the same request.
    again = type(request).from_body(body)
    assert again.to_body() == body
    return body


# -- the documents themselves ----------------------------------------------------------------


def test_the_documents_describe_these_models() -> None:
    for model in REQUEST_MODELS:
        doc = document(model)
        assert CREATE_PATH in doc["paths"]
        model_enum = _resolve({"$ref": BODY_POINTER}, doc)["properties"]["model"]["enum"]
        assert model_enum == [model]


@pytest.mark.skipif(not SHARED_OPENAPI.is_dir(), reason="shared/evolink-openapi is not beside the clone")
def test_vendored_documents_are_identical_to_the_shared_ones() -> None:
    shared = sorted(p.name for p in SHARED_OPENAPI.glob("*.json"))
    vendored = sorted(p.name for p in VENDORED_OPENAPI.glob("*.json"))
    assert shared == vendored
    for name in shared:
        assert (SHARED_OPENAPI / name).read_bytes() == (VENDORED_OPENAPI / name).read_bytes(), name


@pytest.mark.parametrize("model", list(REQUEST_MODELS))
def test_every_model_document_ships_with_the_simulator(model: str) -> None:
    """The simulator validates from the package's own copy: each model's must be there (and in the
    wheel: ``testing/openapi/*.json`` is package data)."""
    from kling_provider.testing.validation import SUPPORTED_MODELS, _validator

    assert (VENDORED_OPENAPI / f"{model}.json").is_file()
    assert model in SUPPORTED_MODELS
    assert _validator(model).schema["components"]["schemas"]


def _examples() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for model in REQUEST_MODELS:
        content = document(model)["paths"][CREATE_PATH]["post"]["requestBody"]["content"]["application/json"]
        for name, example in content.get("examples", {}).items():
            yield model, name, example["value"]


EXAMPLES = list(_examples())


def test_every_model_has_examples() -> None:
    assert {model for model, _, _ in EXAMPLES} == set(REQUEST_MODELS)


@pytest.mark.parametrize(("model", "name", "example"), EXAMPLES, ids=[f"{m}:{n}" for m, n, _ in EXAMPLES])
def test_vendor_examples_parse_and_round_trip(model: str, name: str, example: dict[str, Any]) -> None:
    request = REQUEST_MODELS[model].from_body(example)
    body = request.to_body()
    # to_body() adds what the examples leave to defaults: sound is always pinned where the model
    # has it (it is priced), and customize sends the "prompt" a schema requires (examples omit it).
    expected = dict(example)
    schema = _resolve({"$ref": BODY_POINTER}, document(model))
    if "sound" in schema["properties"]:
        expected.setdefault("sound", "off")
    if "prompt" in schema.get("required", []):
        expected.setdefault("prompt", "")
    assert body == expected
    assert_vendor_valid(request)


# -- the option space, systematically ---------------------------------------------------------


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _multi_shot_modes(duration: int, placeholder: str = "") -> list[dict[str, Any]]:
    modes: list[dict[str, Any]] = [{}, {"multi_shot": True, "shot_type": "intelligence"}]
    for count in sorted({1, 2, min(6, duration)}):
        shots = [(f"Shot {i + 1} {placeholder}".strip(), d) for i, d in enumerate(_split(duration, count))]
        modes.append({"multi_shot": True, "shot_type": "customize", "shots": shots})
    return modes


def _text_to_video_space() -> Iterator[dict[str, Any]]:
    for duration, quality, sound, aspect, watermark, callback, negative in itertools.product(
        (3, 7, 15), QUALITIES, (False, True), (None, *ASPECT_RATIOS), (None, False, True), (None, HOOK), (None, "blur")
    ):
        for mode in _multi_shot_modes(duration):
            kwargs: dict[str, Any] = {"duration": duration, "quality": quality, "sound": sound, **mode}
            if mode.get("shot_type") != "customize":
                kwargs["prompt"] = "A lighthouse in a storm"
            optional = {
                "aspect_ratio": aspect,
                "watermark": watermark,
                "callback_url": callback,
                "negative_prompt": negative,
            }
            kwargs.update({k: v for k, v in optional.items() if v is not None})
            yield kwargs


def _image_to_video_space() -> Iterator[dict[str, Any]]:
    for duration, quality, sound, watermark, callback, elements, image_end, with_prompt in itertools.product(
        (3, 15), QUALITIES, (False, True), (None, True), (None, HOOK), (0, 1, 3), (None, IMG2), (False, True)
    ):
        placeholder = f"<<<element_{elements}>>>" if elements else ""
        for mode in _multi_shot_modes(duration, placeholder):
            kwargs: dict[str, Any] = {
                "image_start": IMG,
                "duration": duration,
                "quality": quality,
                "sound": sound,
                **mode,
            }
            if with_prompt and mode.get("shot_type") != "customize":
                kwargs["prompt"] = f"{placeholder} waves at the camera".strip()
            if elements:
                kwargs["elements"] = [str(100 + i) for i in range(elements)]
            optional = {"watermark": watermark, "callback_url": callback, "image_end": image_end}
            kwargs.update({k: v for k, v in optional.items() if v is not None})
            yield kwargs
    # The product page's forms (an end frame alone, aspect_ratio): see page_only_forms.
    frames: list[dict[str, Any]] = [{"image_start": IMG}, {"image_end": IMG2}, {"image_start": IMG, "image_end": IMG2}]
    for frame, aspect, quality, elements in itertools.product(frames, (None, *ASPECT_RATIOS), QUALITIES, (0, 2)):
        kwargs = {**frame, "quality": quality, "prompt": "<<<element_2>>> waves" if elements else "Night falls"}
        if aspect:
            kwargs["aspect_ratio"] = aspect
        if elements:
            kwargs["elements"] = [str(100 + i) for i in range(elements)]
        yield kwargs


def _custom_element_space() -> Iterator[dict[str, Any]]:
    materials: list[dict[str, Any]] = [
        {"frontal_image": IMG, "refer_images": [IMG2]},
        {"frontal_image": IMG, "refer_images": [IMG2, IMG, IMG2]},
        {"refer_video": VID},
        {"refer_video": VID, "element_voice_id": "829824295735410756"},
    ]
    for material, callback, explicit in itertools.product(materials, (None, HOOK), (False, True)):
        kwargs: dict[str, Any] = {
            "element_name": "Hero",
            "element_description": "A knight in silver armour",
            **material,
        }
        if callback:
            kwargs["callback_url"] = callback
        if explicit:
            kwargs["reference_type"] = "video_refer" if "refer_video" in material else "image_refer"
        yield kwargs


def _turbo_text_to_video_space() -> Iterator[dict[str, Any]]:
    for duration, quality, aspect, callback in itertools.product(
        (3, 7, 15), ("720p", "1080p"), (None, *ASPECT_RATIOS), (None, HOOK)
    ):
        modes = [m for m in _multi_shot_modes(duration) if m.get("shot_type") != "intelligence"]
        for mode in modes:
            kwargs: dict[str, Any] = {"duration": duration, "quality": quality, **mode}
            if not mode:
                kwargs["prompt"] = "A lighthouse in a storm"
            optional = {"aspect_ratio": aspect, "callback_url": callback}
            yield {**kwargs, **{k: v for k, v in optional.items() if v is not None}}
    # the shot syntax written by hand
    yield {"prompt": "镜头 1, 3, the girl walks toward the window; 镜头 2, 2, the camera zooms in;", "duration": 5}


def _o3_text_to_video_space() -> Iterator[dict[str, Any]]:
    for duration, quality, sound, aspect, watermark, elements in itertools.product(
        (3, 15), QUALITIES, (False, True), (None, *ASPECT_RATIOS), (None, True), (0, 1, 7)
    ):
        placeholder = f"<<<element_{elements}>>>" if elements else ""
        for mode in _multi_shot_modes(duration, placeholder):
            if mode.get("shot_type") == "intelligence":
                continue
            kwargs: dict[str, Any] = {"duration": duration, "quality": quality, "sound": sound, **mode}
            if not mode:
                kwargs["prompt"] = f"{placeholder} on a beach at sunset".strip()
            if elements:
                kwargs["elements"] = [str(500 + i) for i in range(elements)]
            optional = {"aspect_ratio": aspect, "watermark": watermark}
            yield {**kwargs, **{k: v for k, v in optional.items() if v is not None}}


def _turbo_image_to_video_space() -> Iterator[dict[str, Any]]:
    for duration, quality, callback, with_prompt in itertools.product(
        range(3, 16), ("720p", "1080p"), (None, HOOK), (False, True)
    ):
        kwargs: dict[str, Any] = {"image_start": IMG, "duration": duration, "quality": quality}
        if with_prompt:
            kwargs["prompt"] = "A gentle breeze"
        if callback:
            kwargs["callback_url"] = callback
        yield kwargs


def _o3_image_to_video_space() -> Iterator[dict[str, Any]]:
    images: list[dict[str, Any]] = [
        {"image_start": IMG},
        {"image_start": IMG, "image_end": IMG2},
        {"image_start": IMG, "image_urls": [IMG2]},
        {"image_urls": [IMG2]},
        {"image_urls": [IMG, IMG2, IMG]},
    ]
    for material, duration, quality, sound, aspect, watermark, elements in itertools.product(
        images, (3, 15), QUALITIES, (False, True), (None, "9:16"), (None, True), (0, 1, 3)
    ):
        count = sum(1 for k in ("image_start", "image_end") if k in material) + len(material.get("image_urls", []))
        placeholder = " ".join(
            p for p in (f"<<<element_{elements}>>>" if elements else "", f"<<<image_{count}>>>") if p
        )
        for mode in _multi_shot_modes(duration, placeholder):
            if mode.get("shot_type") == "intelligence":
                continue
            kwargs: dict[str, Any] = {**material, "duration": duration, "quality": quality, "sound": sound, **mode}
            if not mode:
                kwargs["prompt"] = f"{placeholder} dancing".strip()
            if elements:
                kwargs["elements"] = [str(700 + i) for i in range(elements)]
            optional = {"aspect_ratio": aspect, "watermark": watermark}
            yield {**kwargs, **{k: v for k, v in optional.items() if v is not None}}


# model -> (request class, space, how many distinct bodies it must give at least)
SPACES: dict[str, tuple[type[KlingRequest], Callable[[], Iterator[dict[str, Any]]], int]] = {
    "kling-v3-text-to-video": (TextToVideoRequest, _text_to_video_space, 500),
    "kling-v3-turbo-text-to-video": (TextToVideoRequest, _turbo_text_to_video_space, 150),
    "kling-o3-text-to-video": (TextToVideoRequest, _o3_text_to_video_space, 500),
    "kling-v3-image-to-video": (ImageToVideoRequest, _image_to_video_space, 500),
    "kling-v3-turbo-image-to-video": (ImageToVideoRequest, _turbo_image_to_video_space, 100),
    "kling-o3-image-to-video": (ImageToVideoRequest, _o3_image_to_video_space, 500),
    "kling-custom-element": (CustomElementRequest, _custom_element_space, 8),
}


def test_every_model_has_a_space() -> None:
    assert set(SPACES) == set(REQUEST_MODELS)


@pytest.mark.parametrize("model", list(SPACES))
def test_every_combination_builds_a_valid_body(model: str) -> None:
    cls, space, minimum = SPACES[model]
    bodies = set()
    for kwargs in space():
        request = cls.build(**kwargs, model=model)
        assert request.model == model
        body = assert_vendor_valid(request)
        validate_generation(body)  # the simulator, written from the documents alone, takes it too
        bodies.add(json.dumps(body, sort_keys=True))
    assert len(bodies) >= minimum  # the space really was explored
    if model == PAGE_MODEL:
        assert page_forms_seen >= {"end frame alone", "aspect_ratio"}


# -- hypothesis: valid arguments ---------------------------------------------------------------

prompt_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=300
).filter(lambda s: bool(s.strip()) and "<<<" not in s)
public_callbacks = st.sampled_from(
    [HOOK, "https://8.8.8.8/cb", "https://[2606:4700::1]:8443/x", "https://a.b.example./"]
)
media_urls = st.sampled_from([IMG, IMG2, "http://example.com/x.jpeg", "https://cdn.example.org/a/b.png?sig=1"])


@st.composite
def with_placeholders(draw: st.DrawFn, elements: int, max_chars: int) -> str:
    text = draw(prompt_text)
    if elements and draw(st.booleans()):
        text = f"<<<element_{draw(st.integers(1, elements))}>>> {text}"
    return text[:max_chars] if text[:max_chars].strip() else "x"


# What each video model's document offers, written here from the documents (not taken from
# kling_provider.models.families, which this test checks).
OFFERS: dict[str, dict[str, Any]] = {
    "kling-v3-text-to-video": {"shots": ("customize", "intelligence"), "elements": 0, "aspect": True},
    "kling-v3-turbo-text-to-video": {
        "qualities": ("720p", "1080p"),
        "sound": False,
        "negative": False,
        "watermark": False,
        "shots": ("customize",),
        "elements": 0,
        "aspect": True,
    },
    "kling-o3-text-to-video": {"negative": False, "shots": ("customize",), "elements": 7, "aspect": True},
    # aspect_ratio and an end frame alone: the product page's forms (its OpenAPI document has neither).
    "kling-v3-image-to-video": {
        "shots": ("customize", "intelligence"),
        "elements": 3,
        "image_end": True,
        "image_end_alone": True,
        "aspect": True,
    },
    "kling-v3-turbo-image-to-video": {
        "qualities": ("720p", "1080p"),
        "sound": False,
        "negative": False,
        "watermark": False,
        "shots": (),
        "elements": 0,
    },
    "kling-o3-image-to-video": {
        "negative": False,
        "shots": ("customize",),
        "elements": 3,
        "image_end": True,
        "image_urls": True,
        "aspect": True,
        "prompt": True,
    },
}


def _no_shot_syntax(text: str) -> str:
    cleaned = text.replace(";", ",").replace("\uff1b", ",").replace("镜头", "shot")
    return cleaned if cleaned.strip() else "x"


@st.composite
def video_kwargs(draw: st.DrawFn, model: str) -> dict[str, Any]:
    offers = OFFERS[model]
    image = "image-to-video" in model
    duration = draw(st.integers(3, 15))
    kwargs: dict[str, Any] = {"quality": draw(st.sampled_from(offers.get("qualities", QUALITIES)))}
    if model not in ("kling-v3-text-to-video", "kling-v3-image-to-video") or draw(st.booleans()):
        kwargs["model"] = model
    if draw(st.booleans()):
        kwargs["duration"] = duration
    else:
        duration = 5
    elements = 0
    images = 0
    if image:
        if offers.get("image_urls") and draw(st.booleans()):
            kwargs["image_urls"] = draw(st.lists(media_urls, min_size=1, max_size=3))
            images = len(kwargs["image_urls"])
        if offers.get("image_end_alone") and draw(st.booleans()):
            kwargs["image_end"] = draw(media_urls)
            images += 1
        elif not offers.get("image_urls") or not images or draw(st.booleans()):
            kwargs["image_start"] = draw(media_urls)
            images += 1
        if offers.get("image_end") and "image_start" in kwargs and images < 2 and draw(st.booleans()):
            kwargs["image_end"] = draw(media_urls)
            images += 1
    most = min(offers["elements"], 7 - images)
    if most > 0:
        elements = draw(st.integers(0, most))
        if elements:
            ids = draw(
                st.lists(
                    st.integers(0, 10**18) | st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
                    min_size=elements,
                    max_size=elements,
                    unique_by=str,
                )
            )
            kwargs["elements"] = ids
    mode = draw(st.sampled_from(["single", *offers["shots"]]))
    if mode == "customize":
        count = draw(st.integers(1, min(6, duration)))
        cuts = sorted(draw(st.lists(st.integers(1, duration - 1), min_size=count - 1, max_size=count - 1, unique=True)))
        lengths = [b - a for a, b in zip([0, *cuts], [*cuts, duration], strict=True)]
        turbo = model == "kling-v3-turbo-text-to-video"  # its shots go into the 2500-character prompt
        shots = [(draw(with_placeholders(elements, 60 if turbo else 512)), length) for length in lengths]
        if turbo:  # where ";" (ASCII or full-width) ends a shot and "镜头" starts one
            shots = [(_no_shot_syntax(text), n) for text, n in shots]
        kwargs.update(multi_shot=True, shot_type="customize", shots=shots)
    else:
        if mode == "intelligence":
            kwargs.update(multi_shot=True, shot_type="intelligence")
        if not image or offers.get("prompt") or draw(st.booleans()):
            kwargs["prompt"] = draw(with_placeholders(elements, 2500)).replace("镜头", "shot")
    optional: dict[str, st.SearchStrategy[Any]] = {"callback_url": public_callbacks}
    if offers.get("sound", True):
        optional["sound"] = st.booleans()
    if offers.get("watermark", True):
        optional["watermark"] = st.booleans()
    if offers.get("negative", True):
        optional["negative_prompt"] = with_placeholders(elements, 2500)
    if offers.get("aspect"):
        optional["aspect_ratio"] = st.sampled_from(ASPECT_RATIOS)
    for key, strategy in optional.items():
        if draw(st.booleans()):
            kwargs[key] = draw(strategy)
    return kwargs


@st.composite
def custom_element_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "element_name": draw(prompt_text.map(lambda s: s[:20]).filter(lambda s: bool(s.strip()))),
        "element_description": draw(prompt_text.map(lambda s: s[:100]).filter(lambda s: bool(s.strip()))),
    }
    if draw(st.booleans()):
        kwargs.update(frontal_image=draw(media_urls), refer_images=draw(st.lists(media_urls, min_size=1, max_size=3)))
    else:
        kwargs["refer_video"] = VID
        if draw(st.booleans()):
            kwargs["element_voice_id"] = draw(st.from_regex(r"\A[0-9]{1,19}\Z"))
    if draw(st.booleans()):
        kwargs["callback_url"] = draw(public_callbacks)
    return kwargs


VALID_KWARGS = {
    TextToVideoRequest: st.sampled_from(TEXT_TO_VIDEO_MODEL_NAMES).flatmap(video_kwargs),
    ImageToVideoRequest: st.sampled_from(IMAGE_TO_VIDEO_MODEL_NAMES).flatmap(video_kwargs),
    CustomElementRequest: custom_element_kwargs(),
}


def test_the_offers_cover_every_video_model() -> None:
    assert set(OFFERS) == set(TEXT_TO_VIDEO_MODEL_NAMES) | set(IMAGE_TO_VIDEO_MODEL_NAMES)
    assert set(OFFERS) | {"kling-custom-element"} == set(REQUEST_MODELS)


@pytest.mark.parametrize("model", list(VALID_KWARGS), ids=lambda m: m.__name__)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_generated_valid_arguments_build_valid_bodies(model: type[KlingRequest], data: st.DataObject) -> None:
    kwargs = data.draw(VALID_KWARGS[model])
    assert_vendor_valid(model.build(**kwargs))


# -- hypothesis: hostile arguments -------------------------------------------------------------

INTERNAL_CALLBACKS = [
    "https://127.0.0.1/",
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://0x7f.0.0.1/",
    "https://127.1/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::1]/",
    "https://localhost./",
    "https://x.localhost/",
    "https://169.254.169.254/",
    "https://10.1/",
    "http://example.com/",
    "https://user@example.com/",
]


class Nasty:
    """Every dunder a validator might touch raises."""

    def _boom(self, *args: object) -> Any:
        raise RuntimeError("hostile object")

    __repr__ = __str__ = __len__ = __bool__ = __iter__ = __index__ = __int__ = __float__ = _boom
    __eq__ = __lt__ = __getitem__ = _boom  # type: ignore[assignment]
    __hash__ = object.__hash__


class NastyStr(str):
    __repr__ = __len__ = __iter__ = __eq__ = __getitem__ = __str__ = Nasty._boom  # type: ignore[assignment]
    __hash__ = str.__hash__


scalars = st.one_of(
    st.builds(Nasty),
    st.sampled_from(["https://example.com/a.png", "720p", "x", "on"]).map(NastyStr),
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(5000).map(lambda digits: 10**digits),  # repr() of it raises in Python 3.11+
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 5.0, 3, 15, 16, 2, 0, -1]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(), max_size=20),  # includes lone surrogates
    st.sampled_from(["720p", "1080p", "4k", "4K", "on", "off", "16:9", "4:3", "customize", "intelligence", "", " "]),
    st.sampled_from(["image_refer", "video_refer", "kling-v3-text-to-video", "kling-v3-image-to-video"]),
    st.sampled_from([*INTERNAL_CALLBACKS, HOOK, IMG, VID, "/tmp/a.png", "file:///etc/passwd"]),
    st.integers(0, 20).map(lambda n: f"<<<element_{n}>>> does something"),
    st.sampled_from(["x" * 2501, "é" * 3000, "x" * 100_000, "<<<element_" + "9" * 50 + ">>>"]),
    st.binary(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=8),
        st.tuples(inner, inner),
        st.lists(st.tuples(st.text(max_size=20), st.integers(-2, 16)), max_size=8),
        st.dictionaries(st.sampled_from(["prompt", "duration", "index", "promt", "element_id"]), inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)


def _hostile_kwargs(model: type[KlingRequest]) -> st.SearchStrategy[dict[str, Any]]:
    fields = st.sampled_from(list(model.model_fields))
    strangers = st.sampled_from(["aspect_ratio", "element_list", "model_params", "durtion", "Prompt", "sound_on"])
    names = st.one_of(fields, fields, fields, strangers)
    return st.dictionaries(names, values, max_size=4)


@pytest.mark.parametrize("model", list(VALID_KWARGS), ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_arguments_are_accepted_validly_or_rejected_by_field(
    model: type[KlingRequest], data: st.DataObject
) -> None:
    base = data.draw(VALID_KWARGS[model]) if data.draw(st.booleans()) else {}
    kwargs = {**base, **data.draw(_hostile_kwargs(model))}
    try:
        request = model.build(**kwargs)
    except KlingValidationError as err:
        assert isinstance(err, RequestValidationError)
        assert err.problems and err.param == err.problems[0].path
        for problem in err.problems:
            root = re.split(r"[.\[]", problem.path, maxsplit=1)[0]
            assert root in kwargs or root in model.model_fields, problem
            assert problem.message
        assert len(str(err)) < 400 * len(err.problems) + 200
        return
    # Anything let through must be something EvoLink accepts.
    assert_vendor_valid(request)


@pytest.mark.parametrize("model", list(VALID_KWARGS), ids=lambda m: m.__name__)
@settings(max_examples=100, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(["model", "prompt", "duration", "sound", "model_params", "image_start"]), values
    )
)
def test_hostile_vendor_bodies_never_crash_from_body(model: type[KlingRequest], body: dict[str, Any]) -> None:
    try:
        request = model.from_body(body)
    except KlingValidationError:
        return
    assert_vendor_valid(request)


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), -float("inf"), True, False, 5.0, "5", b"5", 10**400])
def test_non_integer_durations(duration: object) -> None:
    with pytest.raises(KlingValidationError, match="duration: must be an integer"):
        TextToVideoRequest.build(prompt="x", duration=duration)
