"""Every client-side rule of the request models: one violation per row, and the message must name
the field (dotted path) and the rule. Plus the body shapes the rules imply."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from pydantic import ValidationError

from kling_provider.exceptions import KlingValidationError
from kling_provider.models import (
    REQUEST_MODELS,
    VIDEO_MODEL_RULES,
    CustomElementRequest,
    ImageToVideoRequest,
    KlingRequest,
    RequestValidationError,
    Shot,
    TextToVideoRequest,
    build_request,
)
from kling_provider.models.video import MAX_ANY_ELEMENTS

IMG = "https://files-api.evolink.ai/files/start.png"
IMG2 = "https://files-api.evolink.ai/files/end.jpg"
VID = "https://files-api.evolink.ai/files/ref.mp4"
HOOK = "https://hooks.example.com/kling"

T2V: dict[str, Any] = {"prompt": "A cat running on grass"}
I2V: dict[str, Any] = {"image_start": IMG}
TURBO_T: dict[str, Any] = {"model": "kling-v3-turbo-text-to-video", "prompt": "A cat running on grass"}
O3_T: dict[str, Any] = {"model": "kling-o3-text-to-video", "prompt": "A cat running on grass"}
TURBO_I: dict[str, Any] = {"model": "kling-v3-turbo-image-to-video", "image_start": IMG}
O3_I: dict[str, Any] = {"model": "kling-o3-image-to-video", "prompt": "Make it move"}
CE: dict[str, Any] = {
    "element_name": "Hero",
    "element_description": "A young man in a white T-shirt",
    "frontal_image": IMG,
    "refer_images": [IMG2],
}
CE_VIDEO: dict[str, Any] = {"element_name": "Hero", "element_description": "A woman", "refer_video": VID}


def customize(*shots: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {"multi_shot": True, "shot_type": "customize", "shots": list(shots), **extra}


def without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


# (model class, kwargs, dotted path the message must name, fragment of the rule)
VIOLATIONS: list[tuple[type[KlingRequest], dict[str, Any], str, str]] = [
    # duration: int 3..15, strictly
    (TextToVideoRequest, {**T2V, "duration": 20}, "duration", "must be an integer from 3 to 15 (got 20)"),
    (TextToVideoRequest, {**T2V, "duration": 2}, "duration", "from 3 to 15 (got 2)"),
    (TextToVideoRequest, {**T2V, "duration": -5}, "duration", "from 3 to 15"),
    (TextToVideoRequest, {**T2V, "duration": True}, "duration", "(got True)"),
    (TextToVideoRequest, {**T2V, "duration": 5.0}, "duration", "(got 5.0)"),
    (TextToVideoRequest, {**T2V, "duration": float("nan")}, "duration", "(got nan)"),
    (TextToVideoRequest, {**T2V, "duration": float("inf")}, "duration", "(got inf)"),
    (TextToVideoRequest, {**T2V, "duration": "5"}, "duration", "(got '5')"),
    (TextToVideoRequest, {**T2V, "duration": None}, "duration", "integer"),
    (TextToVideoRequest, {**T2V, "duration": 10**5000}, "duration", "very large integer"),
    (ImageToVideoRequest, {**I2V, "duration": 16}, "duration", "from 3 to 15"),
    # prompt / negative_prompt
    (TextToVideoRequest, {"prompt": "x" * 2501}, "prompt", "at most 2500 characters (got 2501)"),
    (TextToVideoRequest, {**T2V, "negative_prompt": "x" * 2501}, "negative_prompt", "at most 2500"),
    (ImageToVideoRequest, {**I2V, "prompt": "é" * 2501}, "prompt", "at most 2500"),
    (TextToVideoRequest, {}, "prompt", "required"),
    (TextToVideoRequest, {"prompt": "   \n"}, "prompt", "required"),
    (TextToVideoRequest, {"prompt": 42}, "prompt", "must be a string (got 42)"),
    (TextToVideoRequest, {"prompt": b"bytes"}, "prompt", "must be a string"),
    (TextToVideoRequest, {"prompt": "bad \ud800 surrogate"}, "prompt", "UTF-8"),
    (
        TextToVideoRequest,
        {**T2V, "multi_shot": True, "shot_type": "intelligence", "prompt": None},
        "prompt",
        "required",
    ),
    # multi-shot
    (TextToVideoRequest, {**T2V, "multi_shot": True}, "shot_type", "required when multi_shot=True"),
    (TextToVideoRequest, {**T2V, "shot_type": "intelligence"}, "shot_type", "only allowed with multi_shot=True"),
    (TextToVideoRequest, {**T2V, "shot_type": "auto", "multi_shot": True}, "shot_type", "must be one of"),
    (TextToVideoRequest, {**T2V, "shots": [("a", 5)]}, "shots", "only allowed with multi_shot=True"),
    (
        TextToVideoRequest,
        {"multi_shot": True, "shot_type": "customize"},
        "shots",
        "required when shot_type='customize'",
    ),
    (TextToVideoRequest, customize(*[("a", 1)] * 7, duration=7), "shots", "at most 6 shots (got 7)"),
    (TextToVideoRequest, customize(("a", 3), ("b", 3)), "shots", "add up to duration=5 (they add up to 6)"),
    (TextToVideoRequest, customize(("x" * 513, 5)), "shots[0].prompt", "at most 512 characters (got 513)"),
    (TextToVideoRequest, customize(("a", 3), ("", 2)), "shots[1].prompt", "must not be empty"),
    (TextToVideoRequest, customize(("a", 0), ("b", 5)), "shots[0].duration", "from 1 to 15 (got 0)"),
    (TextToVideoRequest, customize(("a", "5")), "shots[0].duration", "(got '5')"),
    (TextToVideoRequest, customize(("a", 2.5), ("b", 2.5)), "shots[0].duration", "(got 2.5)"),
    (TextToVideoRequest, customize(("a", True), ("b", 4)), "shots[0].duration", "(got True)"),
    (
        TextToVideoRequest,
        {"multi_shot": True, "shot_type": "customize", "shots": [{"prompt": "a", "duration": 5, "index": 2}]},
        "shots[0].index",
        "must be 1",
    ),
    (
        TextToVideoRequest,
        {"multi_shot": True, "shot_type": "customize", "shots": [{"promt": "a", "duration": 5}]},
        "shots[0].promt",
        "did you mean 'prompt'",
    ),
    (
        TextToVideoRequest,
        {"multi_shot": True, "shot_type": "customize", "shots": [{"prompt": "a"}]},
        "shots[0].duration",
        "is required",
    ),
    (TextToVideoRequest, customize(("a", 5)) | {"shots": ["a"]}, "shots[0]", "must be a Shot"),
    (TextToVideoRequest, customize(("a", 5)) | {"shots": {("a", 5)}}, "shots", "must be a list of shots"),
    (
        TextToVideoRequest,
        {**T2V, "multi_shot": True, "shot_type": "intelligence", "shots": [("a", 5)]},
        "shots",
        "only allowed with shot_type='customize'",
    ),
    (TextToVideoRequest, customize(("a", 5), prompt="ignored"), "prompt", "must be left out"),
    # enums and bools
    (TextToVideoRequest, {**T2V, "quality": "480p"}, "quality", "must be one of '720p', '1080p', '4k' (got '480p')"),
    (TextToVideoRequest, {**T2V, "quality": "4K"}, "quality", "must be one of"),
    (TextToVideoRequest, {**T2V, "sound": "on"}, "sound", "must be True or False (got 'on')"),
    (TextToVideoRequest, {**T2V, "sound": 1}, "sound", "True or False"),
    (TextToVideoRequest, {**T2V, "multi_shot": "true"}, "multi_shot", "True or False"),
    (TextToVideoRequest, {**T2V, "watermark": "yes"}, "watermark", "True or False"),
    (TextToVideoRequest, {**T2V, "aspect_ratio": "4:3"}, "aspect_ratio", "must be one of '16:9', '9:16', '1:1'"),
    (ImageToVideoRequest, {**I2V, "aspect_ratio": "4:3"}, "aspect_ratio", "must be one of '16:9', '9:16', '1:1'"),
    (ImageToVideoRequest, {"prompt": "x"}, "image_start", "is required, or image_end: kling-v3-image-to-video needs"),
    (TextToVideoRequest, {**T2V, "model": "kling-v3-text"}, "model", "must be one of"),
    (
        TextToVideoRequest,
        {**T2V, "model": "kling-o3-image-to-video"},
        "model",
        "(got 'kling-o3-image-to-video': an image-to-video model, for KlingImageToVideoOperator",
    ),
    (ImageToVideoRequest, {**I2V, "model": "kling-v3-turbo-text-to-video"}, "model", "a text-to-video model"),
    (ImageToVideoRequest, {**I2V, "model": "kling-v3-text-to-video"}, "model", "must be one of"),
    (CustomElementRequest, {**CE, "model": "kling-o3-text-to-video"}, "model", "must be one of"),
    # unknown arguments
    (TextToVideoRequest, {**T2V, "durtion": 5}, "durtion", "did you mean 'duration'"),
    (ImageToVideoRequest, {**I2V, "element_list": ["1"]}, "element_list", "unknown field"),
    (CustomElementRequest, {**CE, "element_nmae": "x"}, "element_nmae", "did you mean 'element_name'"),
    # ... named with the model asked for, or the class default when that model is not valid
    (TextToVideoRequest, {**O3_T, "foo": 1}, "foo", "unknown field for kling-o3-text-to-video"),
    (ImageToVideoRequest, {**TURBO_I, "durtion": 5}, "durtion", "unknown field for kling-v3-turbo-image-to-video;"),
    (TextToVideoRequest, {**T2V, "model": "kling-o4", "foo": 1}, "foo", "unknown field for kling-v3-text-to-video"),
    # callback_url (the notation zoo is in test_models_callback.py)
    (TextToVideoRequest, {**T2V, "callback_url": "http://hooks.example.com/x"}, "callback_url", "https://"),
    (
        TextToVideoRequest,
        {**T2V, "callback_url": "https://a.example.com/" + "x" * 2048},
        "callback_url",
        "at most 2048 characters",
    ),
    (TextToVideoRequest, {**T2V, "callback_url": "https://127.0.0.1/x"}, "callback_url", "internal address"),
    (ImageToVideoRequest, {**I2V, "callback_url": "https://localhost/x"}, "callback_url", "localhost"),
    (CustomElementRequest, {**CE, "callback_url": "https://10.0.0.8/x"}, "callback_url", "private"),
    (TextToVideoRequest, {**T2V, "callback_url": 443}, "callback_url", "URL string"),
    # <<<element_N>>> placeholders
    (TextToVideoRequest, {"prompt": "<<<element_1>>> walks"}, "prompt", "takes no elements"),
    (ImageToVideoRequest, {**I2V, "elements": ["1"], "prompt": "<<<element_2>>> dances"}, "prompt", "does not exist"),
    (ImageToVideoRequest, {**I2V, "elements": ["1"], "prompt": "<<<element_0>>>"}, "prompt", "does not exist"),
    (ImageToVideoRequest, {**I2V, "prompt": "<<<element_1>>>"}, "prompt", "no elements are given"),
    (
        ImageToVideoRequest,
        {**I2V, "elements": ["1"], "prompt": "<<<element_" + "9" * 2400 + ">>>"},
        "prompt",
        "does not exist",
    ),
    (ImageToVideoRequest, {**I2V, "elements": ["1"], "negative_prompt": "<<<element_3>>>"}, "negative_prompt", "exist"),
    (
        ImageToVideoRequest,
        {**I2V, "elements": ["1", "2"], **customize(("ok <<<element_2>>>", 2), ("<<<element_3>>> bad", 3))},
        "shots[1].prompt",
        "does not exist (elements 1 to 2 are given)",
    ),
    # elements
    (
        ImageToVideoRequest,
        {**I2V, "elements": ["1", "2", "3", "4"]},
        "elements",
        "at most 3 elements for kling-v3-image-to-video (got 4)",
    ),
    (
        ImageToVideoRequest,
        {**I2V, "elements": [str(i) for i in range(8)]},
        "elements",
        "must have at most 3 elements for kling-v3-image-to-video (got 8)",
    ),
    (
        TextToVideoRequest,
        {**T2V, "model": "kling-o4", "elements": [str(i) for i in range(8)]},
        "elements",
        "must have at most 7 elements, the most any model takes (got 8)",
    ),
    (ImageToVideoRequest, {**I2V, "elements": ["7", "7"]}, "elements[1]", "duplicates elements[0]"),
    (ImageToVideoRequest, {**I2V, "elements": ["", "7", "7"]}, "elements[2]", "duplicates elements[1]"),
    (ImageToVideoRequest, {**I2V, "elements": [""]}, "elements[0]", "element id"),
    (ImageToVideoRequest, {**I2V, "elements": ["1", True]}, "elements[1]", "element id"),
    (ImageToVideoRequest, {**I2V, "elements": ["a b"]}, "elements[0]", "no spaces"),
    (ImageToVideoRequest, {**I2V, "elements": [-1]}, "elements[0]", "element id"),
    (ImageToVideoRequest, {**I2V, "elements": "123"}, "elements", "must be a list"),
    (TextToVideoRequest, {**T2V, "elements": ["1"]}, "elements", "kling-v3-text-to-video takes no elements"),
    # images
    (ImageToVideoRequest, {}, "image_start", "is required"),
    (ImageToVideoRequest, {"image_start": None}, "image_start", "http(s) URL"),
    (ImageToVideoRequest, {"image_start": "/tmp/frame.png"}, "image_start", "must be an http(s) URL"),
    (ImageToVideoRequest, {"image_start": "ftp://example.com/a.png"}, "image_start", "http(s) URL"),
    (ImageToVideoRequest, {**I2V, "image_end": "file:///tmp/end.png"}, "image_end", "http(s) URL"),
    (ImageToVideoRequest, {"image_start": "https://example.com/a b.png"}, "image_start", "spaces"),
    # per model: kling-v3-turbo-text-to-video
    (TextToVideoRequest, {**TURBO_T, "quality": "4k"}, "quality", "must be one of '720p', '1080p' for kling-v3-turbo"),
    (TextToVideoRequest, {**TURBO_T, "sound": True}, "sound", "kling-v3-turbo-text-to-video makes silent videos"),
    (TextToVideoRequest, {**TURBO_T, "negative_prompt": "x"}, "negative_prompt", "not accepted by kling-v3-turbo"),
    (TextToVideoRequest, {**TURBO_T, "watermark": False}, "watermark", "not accepted by kling-v3-turbo"),
    (
        TextToVideoRequest,
        {**TURBO_T, "multi_shot": True, "shot_type": "intelligence"},
        "shot_type",
        "must be 'customize' for kling-v3-turbo-text-to-video",
    ),
    (
        TextToVideoRequest,
        {"model": TURBO_T["model"], **customize(("a; b", 2), ("c", 3))},
        "shots[0].prompt",
        "must not contain ';'",
    ),
    (
        TextToVideoRequest,
        {"model": TURBO_T["model"], **customize(*[("s" * 500, 1)] * 5)},
        "shots",
        "at most 2500",
    ),
    (TextToVideoRequest, {**TURBO_T, "prompt": "镜头 1, 3, walk; 镜头 2, 3, zoom;"}, "prompt", "add up to duration=5"),
    (TextToVideoRequest, {**TURBO_T, "prompt": "镜头 1, 3, walk; 镜头 3, 2, zoom;"}, "prompt", "must be numbered 2"),
    (TextToVideoRequest, {**TURBO_T, "prompt": "镜头 1, 0, walk; 镜头 2, 5, zoom;"}, "prompt", "from 1 to 5 s"),
    (
        TextToVideoRequest,
        {**TURBO_T, "duration": 7, "prompt": " ".join(f"镜头 {i}, 1, s;" for i in range(1, 8))},
        "prompt",
        "at most 6",
    ),
    (TextToVideoRequest, {**TURBO_T, "prompt": f"镜头 1, 5, {'w' * 513};"}, "prompt", "at most 512 characters"),
    (TextToVideoRequest, {**TURBO_T, "elements": ["1"]}, "elements", "takes no elements"),
    # per model: kling-o3-text-to-video
    (TextToVideoRequest, {**O3_T, "negative_prompt": "x"}, "negative_prompt", "not accepted by kling-o3-text-to-video"),
    (
        TextToVideoRequest,
        {**O3_T, "multi_shot": True, "shot_type": "intelligence"},
        "shot_type",
        "must be 'customize' for kling-o3",
    ),
    (
        TextToVideoRequest,
        {**O3_T, "elements": [str(i) for i in range(8)]},
        "elements",
        "must have at most 7 elements for kling-o3-text-to-video (got 8)",
    ),
    (
        TextToVideoRequest,
        {**O3_T, "elements": ["1", "2"], "prompt": "<<<element_3>>> walks"},
        "prompt",
        "does not exist (elements 1 to 2 are given)",
    ),
    # per model: kling-v3-turbo-image-to-video
    (ImageToVideoRequest, {**TURBO_I, "quality": "4k"}, "quality", "'720p', '1080p' for kling-v3-turbo-image"),
    (ImageToVideoRequest, {**TURBO_I, "sound": True}, "sound", "silent"),
    (ImageToVideoRequest, {**TURBO_I, "image_end": IMG2}, "image_end", "not accepted by kling-v3-turbo-image-to-video"),
    (ImageToVideoRequest, {**TURBO_I, "elements": ["1"]}, "elements", "takes no elements"),
    (ImageToVideoRequest, {**TURBO_I, **customize(("a", 5))}, "multi_shot", "has no multi-shot mode"),
    (ImageToVideoRequest, {**TURBO_I, "negative_prompt": "x"}, "negative_prompt", "not accepted"),
    (ImageToVideoRequest, {**TURBO_I, "watermark": True}, "watermark", "not accepted"),
    (ImageToVideoRequest, {**TURBO_I, "aspect_ratio": "9:16"}, "aspect_ratio", "not accepted by kling-v3-turbo"),
    (ImageToVideoRequest, without(TURBO_I, "image_start"), "image_start", "is required"),
    (ImageToVideoRequest, {**I2V, "image_urls": [IMG2]}, "image_urls", "not accepted by kling-v3-image-to-video"),
    # per model: kling-o3-image-to-video
    (ImageToVideoRequest, {**O3_I, "image_start": IMG, "prompt": None}, "prompt", "required"),
    (ImageToVideoRequest, {"model": O3_I["model"], "prompt": "move"}, "image_start", "unless image_urls"),
    (ImageToVideoRequest, {**O3_I, "image_end": IMG2, "image_urls": [IMG]}, "image_end", "needs image_start"),
    (
        ImageToVideoRequest,
        {**O3_I, "image_start": IMG, "image_end": IMG2, "image_urls": [IMG]},
        "image_end",
        "no last frame when there are more than 2 images in all (got 3",
    ),
    (
        ImageToVideoRequest,
        {**O3_I, "image_start": IMG, "elements": ["1", "2", "3", "4"]},
        "elements",
        "at most 3 elements with image_start",
    ),
    (
        ImageToVideoRequest,
        {**O3_I, "image_urls": [IMG], "elements": [str(i) for i in range(8)]},
        "elements",
        "must have at most 7 elements for kling-o3-image-to-video, counting its images, and 3 with image_start (got 8)",
    ),
    (
        ImageToVideoRequest,
        {**O3_I, "image_urls": [IMG, IMG2, IMG], "elements": ["1", "2", "3", "4", "5"]},
        "image_urls",
        "at most 7 on kling-o3-image-to-video (got 3 images and 5 elements)",
    ),
    (ImageToVideoRequest, {**O3_I, "image_urls": [IMG], "prompt": "<<<image_2>>> x"}, "prompt", "image that does not"),
    (
        ImageToVideoRequest,
        {**O3_I, "image_urls": [IMG], **customize(("<<<image_0>>> x", 5))},
        "shots[0].prompt",
        "image that does not exist",
    ),
    (ImageToVideoRequest, {**O3_I, "image_urls": [IMG, "/tmp/a.png"]}, "image_urls[1]", "http(s) URL"),
    (ImageToVideoRequest, {**O3_I, "image_urls": IMG}, "image_urls", "must be a list"),
    (ImageToVideoRequest, {**O3_I, "image_start": IMG, "negative_prompt": "x"}, "negative_prompt", "not accepted"),
    (
        ImageToVideoRequest,
        {**O3_I, "image_start": IMG, "multi_shot": True, "shot_type": "intelligence"},
        "shot_type",
        "must be 'customize'",
    ),
    # custom element
    (CustomElementRequest, {**CE, "element_name": "x" * 21}, "element_name", "at most 20 characters (got 21)"),
    (CustomElementRequest, {**CE, "element_name": ""}, "element_name", "must not be empty"),
    (CustomElementRequest, without(CE, "element_name"), "element_name", "is required"),
    (CustomElementRequest, {**CE, "element_description": "d" * 101}, "element_description", "at most 100"),
    (CustomElementRequest, without(CE, "element_description"), "element_description", "is required"),
    (CustomElementRequest, {**CE, "refer_images": []}, "refer_images", "required when reference_type='image_refer'"),
    (CustomElementRequest, {**CE, "refer_images": [IMG2] * 4}, "refer_images", "at most 3 images (got 4)"),
    (CustomElementRequest, {**CE, "refer_images": [IMG2, "side.png"]}, "refer_images[1]", "http(s) URL"),
    (CustomElementRequest, {**without(CE, "frontal_image")}, "frontal_image", "required"),
    (
        CustomElementRequest,
        {**without(CE_VIDEO, "refer_video"), "reference_type": "video_refer"},
        "refer_video",
        "required when reference_type='video_refer'",
    ),
    (CustomElementRequest, {**CE_VIDEO, "refer_video": [VID, VID]}, "refer_video", "exactly 1 reference video"),
    (CustomElementRequest, {**CE, "element_voice_id": "829824295735410756"}, "element_voice_id", "video_refer"),
    (CustomElementRequest, {**CE, "refer_video": VID}, "reference_type", "not both"),
    (CustomElementRequest, {"element_name": "a", "element_description": "b"}, "reference_type", "required"),
    (CustomElementRequest, {**CE, "reference_type": "audio_refer"}, "reference_type", "must be one of"),
    (
        CustomElementRequest,
        {**CE_VIDEO, "reference_type": "video_refer", "frontal_image": IMG},
        "frontal_image",
        "only",
    ),
    (CustomElementRequest, {**CE, "reference_type": "video_refer"}, "refer_video", "required"),
]


@pytest.mark.parametrize(
    ("model", "kwargs", "path", "fragment"),
    VIOLATIONS,
    ids=[f"{m.__name__}:{p}:{f[:30]}" for m, _, p, f in VIOLATIONS],
)
def test_violation_names_field_and_rule(
    model: type[KlingRequest], kwargs: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(KlingValidationError) as info:
        build_request(model, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, RequestValidationError)
    problems = {p.path: p.message for p in err.problems}
    assert path in problems, f"{path!r} not named in:\n{err}"
    assert fragment in problems[path], f"{fragment!r} not in {path}: {problems[path]!r}"
    assert f"  - {path}: " in str(err)
    assert err.param == err.problems[0].path
    assert len(str(err)) < 2000, "inputs must be truncated in messages"


@pytest.mark.parametrize("model", list(VIDEO_MODEL_RULES))
@pytest.mark.parametrize("past", ["its-limit", "any-limit"])
def test_too_many_elements_names_the_models_own_limit(model: str, past: str) -> None:
    """One past the model's limit (checked with its other rules) or past the most any model takes
    (checked before the ids are): the message states the model's own limit, from the rules table."""
    rules = VIDEO_MODEL_RULES[model]
    count = (rules.max_elements if past == "its-limit" else MAX_ANY_ELEMENTS) + 1
    kwargs: dict[str, Any] = {"model": model, "prompt": "x", "elements": [str(i) for i in range(count)]}
    if rules.image_urls:
        kwargs["image_urls"] = [IMG]
    elif rules.family == "image-to-video":
        kwargs["image_start"] = IMG
    with pytest.raises(RequestValidationError) as info:
        build_request(REQUEST_MODELS[model], **kwargs)
    message = dict(info.value.problems)["elements"]
    if rules.max_elements:
        assert message.startswith(f"must have at most {rules.max_elements} elements for {model}")
        assert message.endswith(f"(got {count})")
    else:
        assert message.startswith(f"{model} takes no elements (models that do: ")


def test_documented_message_example() -> None:
    with pytest.raises(KlingValidationError, match=r"duration: must be an integer from 3 to 15 \(got 20\)"):
        TextToVideoRequest.build(prompt="x", duration=20)


def test_every_problem_is_listed_and_param_is_the_first() -> None:
    with pytest.raises(RequestValidationError) as info:
        TextToVideoRequest.build(prompt="x" * 3000, duration=0, quality="8k", sound="on", colour="red")
    err = info.value
    assert [p.path for p in err.problems] == ["prompt", "duration", "quality", "sound", "colour"]
    assert err.param == "prompt"
    assert str(err).splitlines()[0] == "Invalid kling-v3-text-to-video request (5 problems):"


def test_huge_inputs_are_truncated_in_messages() -> None:
    with pytest.raises(RequestValidationError) as info:
        ImageToVideoRequest.build(image_start="x" * 1_000_000, elements=["y" * 100_000], prompt="z" * 1_000_000)
    text = str(info.value)
    assert len(text) < 1000
    assert "(got 1000000)" in text
    assert "... (100000 chars)" in text


def test_hostile_repr_does_not_break_the_message() -> None:
    class Nasty:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(RequestValidationError, match=r"duration: .*<Nasty>"):
        TextToVideoRequest.build(prompt="x", duration=Nasty())


def test_error_pickles_with_its_problems() -> None:
    with pytest.raises(RequestValidationError) as info:
        TextToVideoRequest.build(prompt="x", duration=99)
    clone = pickle.loads(pickle.dumps(info.value))
    assert isinstance(clone, KlingValidationError)
    assert clone.problems == info.value.problems
    assert clone.param == "duration"
    assert str(clone) == str(info.value)


def test_direct_construction_still_raises_a_value_error_with_the_rule() -> None:
    """Only build()/build_request() translate; plain construction keeps pydantic's error type
    (itself a ValueError) but carries the same rule text."""
    with pytest.raises(ValidationError, match="must be an integer from 3 to 15"):
        TextToVideoRequest(prompt="x", duration=99)


def test_from_body_rejects_non_objects() -> None:
    with pytest.raises(RequestValidationError, match="must be a JSON object"):
        TextToVideoRequest.from_body(["not", "a", "dict"])


def test_from_body_reports_unknown_vendor_keys() -> None:
    body = {"model": "kling-v3-image-to-video", "image_start": IMG, "model_params": {"camera": "pan"}}
    with pytest.raises(RequestValidationError) as info:
        ImageToVideoRequest.from_body(body)
    assert info.value.param == "model_params.camera"


# -- body shapes ------------------------------------------------------------------------------


def test_minimal_text_to_video_body() -> None:
    body = TextToVideoRequest.build(prompt="A cat").to_body()
    assert body == {
        "model": "kling-v3-text-to-video",
        "prompt": "A cat",
        "duration": 5,
        "quality": "720p",
        "sound": "off",
    }


def test_full_text_to_video_body() -> None:
    request = TextToVideoRequest.build(
        prompt="A cat",
        negative_prompt="dogs",
        duration=10,
        aspect_ratio="9:16",
        quality="1080p",
        sound=True,
        multi_shot=True,
        shot_type="intelligence",
        watermark=False,
        callback_url=HOOK,
    )
    assert request.to_body() == {
        "model": "kling-v3-text-to-video",
        "prompt": "A cat",
        "negative_prompt": "dogs",
        "duration": 10,
        "aspect_ratio": "9:16",
        "quality": "1080p",
        "sound": "on",
        "model_params": {"multi_shot": True, "shot_type": "intelligence", "watermark_info": {"enabled": False}},
        "callback_url": HOOK,
    }


def test_customize_text_to_video_sends_an_empty_prompt_and_numbers_shots() -> None:
    request = TextToVideoRequest.build(**customize(("Wide shot", 4), ("Close-up", 6), duration=10))
    assert request.shots == (
        Shot(prompt="Wide shot", duration=4, index=1),
        Shot(prompt="Close-up", duration=6, index=2),
    )
    body = request.to_body()
    assert body["prompt"] == ""
    assert body["model_params"] == {
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": [
            {"index": 1, "prompt": "Wide shot", "duration": "4"},
            {"index": 2, "prompt": "Close-up", "duration": "6"},
        ],
    }


@pytest.mark.parametrize(
    "shots",
    [
        [("a", 2), ("b", 3)],
        [["a", 2], ["b", 3]],
        [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 3, "index": 2}],
        (Shot(prompt="a", duration=2), Shot(prompt="b", duration=3)),
        [Shot(prompt="a", duration=2, index=1), {"prompt": "b", "duration": 3}],
    ],
)
def test_shot_input_forms_are_equivalent(shots: Any) -> None:
    request = TextToVideoRequest.build(multi_shot=True, shot_type="customize", shots=shots)
    assert [(s.index, s.prompt, s.duration) for s in request.shots] == [(1, "a", 2), (2, "b", 3)]


def test_customize_image_to_video_omits_the_prompt() -> None:
    body = ImageToVideoRequest.build(image_start=IMG, **customize(("a", 5))).to_body()
    assert "prompt" not in body


def test_image_to_video_body_with_elements() -> None:
    request = ImageToVideoRequest.build(
        image_start=IMG,
        image_end=IMG2,
        prompt="<<<element_1>>> meets <<<element_2>>>",
        elements=[123456, "abc"],
        watermark=True,
    )
    assert request.elements == ("123456", "abc")
    assert request.to_body() == {
        "model": "kling-v3-image-to-video",
        "prompt": "<<<element_1>>> meets <<<element_2>>>",
        "image_start": IMG,
        "image_end": IMG2,
        "duration": 5,
        "quality": "720p",
        "sound": "off",
        "model_params": {
            "element_list": [{"element_id": "123456"}, {"element_id": "abc"}],
            "watermark_info": {"enabled": True},
        },
    }


def test_the_product_pages_image_to_video_forms_are_sent() -> None:
    """Where the product page and the OpenAPI document disagree, the page's form is sent, not
    refused (families.DOCUMENT_DISAGREEMENTS): an end frame alone, aspect_ratio, numeric ids."""
    alone = ImageToVideoRequest.build(image_end=IMG2, prompt="Ends on the night sky")
    assert alone.to_body() == {
        "model": "kling-v3-image-to-video",
        "prompt": "Ends on the night sky",
        "image_end": IMG2,
        "duration": 5,
        "quality": "720p",
        "sound": "off",
    }
    shaped = ImageToVideoRequest.build(
        image_start=IMG, aspect_ratio="9:16", elements=[123456], prompt="<<<element_1>>>"
    )
    body = shaped.to_body()
    assert body["aspect_ratio"] == "9:16"
    assert body["model_params"] == {"element_list": [{"element_id": "123456"}]}
    assert ImageToVideoRequest.from_body(body) == shaped
    both = ImageToVideoRequest.build(image_end=IMG2, aspect_ratio="1:1")
    assert (both.to_body()["image_end"], both.to_body()["aspect_ratio"]) == (IMG2, "1:1")


def test_every_disagreement_names_a_model_and_a_request_field() -> None:
    from kling_provider.models.families import DOCUMENT_DISAGREEMENTS

    assert {d.field for d in DOCUMENT_DISAGREEMENTS} >= {"image_end", "aspect_ratio"}
    for disagreement in DOCUMENT_DISAGREEMENTS:
        assert disagreement.model in VIDEO_MODEL_RULES
        assert disagreement.field in REQUEST_MODELS[disagreement.model].model_fields
        assert "refuse" not in disagreement.client


def test_image_to_video_prompt_is_optional() -> None:
    assert "prompt" not in ImageToVideoRequest.build(image_start=IMG).to_body()
    assert "prompt" not in ImageToVideoRequest.build(image_start=IMG, prompt="  ").to_body()


def test_custom_element_bodies_and_inferred_reference_type() -> None:
    images = CustomElementRequest.build(**CE)
    assert images.reference_type == "image_refer"
    assert images.to_body() == {
        "model": "kling-custom-element",
        "model_params": {
            "element_name": "Hero",
            "element_description": "A young man in a white T-shirt",
            "reference_type": "image_refer",
            "element_image_list": {"frontal_image": IMG, "refer_images": [{"image_url": IMG2}]},
        },
    }
    video = CustomElementRequest.build(**CE_VIDEO, element_voice_id=829824295735410756, callback_url=HOOK)
    assert video.reference_type == "video_refer"
    assert video.to_body() == {
        "model": "kling-custom-element",
        "model_params": {
            "element_name": "Hero",
            "element_description": "A woman",
            "reference_type": "video_refer",
            "element_video_list": {"refer_videos": [{"video_url": VID}]},
            "element_voice_id": "829824295735410756",
        },
        "callback_url": HOOK,
    }


# -- immutability, equality, helpers ---------------------------------------------------------


def test_models_are_frozen_and_hashable() -> None:
    request = ImageToVideoRequest.build(image_start=IMG, elements=["1"], **customize(("a", 5)))
    with pytest.raises(ValidationError):
        request.duration = 10  # type: ignore[misc]
    assert isinstance(request.elements, tuple)
    assert isinstance(request.shots, tuple)
    assert hash(request) == hash(ImageToVideoRequest.build(image_start=IMG, elements=["1"], **customize(("a", 5))))


def test_replace_revalidates() -> None:
    request = TextToVideoRequest.build(prompt="x", duration=5)
    assert request.replace(duration=10).duration == 10
    with pytest.raises(RequestValidationError, match="duration"):
        request.replace(duration=100)


def test_build_classmethod_and_function_agree() -> None:
    assert TextToVideoRequest.build(prompt="x") == build_request(TextToVideoRequest, prompt="x")


def test_accepted_edge_values() -> None:
    assert TextToVideoRequest.build(prompt="x", duration=3).duration == 3
    assert TextToVideoRequest.build(prompt="x", duration=15).duration == 15
    assert TextToVideoRequest.build(prompt="x" * 2500, negative_prompt="y" * 2500).prompt == "x" * 2500
    assert CustomElementRequest.build(**{**CE, "element_name": "n" * 20, "element_description": "d" * 100})
    shots = [("s" * 512, 1)] * 6
    assert len(TextToVideoRequest.build(**customize(*shots, duration=6)).shots) == 6
    assert ImageToVideoRequest.build(image_start=IMG, elements=["1", "2", "3"], prompt="<<<element_3>>>")


def test_request_models_registry() -> None:
    assert dict(REQUEST_MODELS) == {
        "kling-v3-text-to-video": TextToVideoRequest,
        "kling-v3-turbo-text-to-video": TextToVideoRequest,
        "kling-o3-text-to-video": TextToVideoRequest,
        "kling-v3-image-to-video": ImageToVideoRequest,
        "kling-v3-turbo-image-to-video": ImageToVideoRequest,
        "kling-o3-image-to-video": ImageToVideoRequest,
        "kling-custom-element": CustomElementRequest,
    }
    for cls in set(REQUEST_MODELS.values()):
        assert REQUEST_MODELS[cls.model_fields["model"].default] is cls


def test_str_subclasses_cannot_sneak_past_enums() -> None:
    class Liar(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    with pytest.raises(RequestValidationError, match="quality: must be one of"):
        TextToVideoRequest.build(prompt="x", quality=Liar("8k"))
    request = TextToVideoRequest.build(prompt=Liar("x"), quality=Liar("1080p"))
    assert type(request.prompt) is str and type(request.quality) is str


# -- the other Kling models on the endpoint ----------------------------------------------------


def test_turbo_text_to_video_body_has_no_sound_and_writes_shots_into_the_prompt() -> None:
    request = TextToVideoRequest.build(
        model="kling-v3-turbo-text-to-video",
        quality="1080p",
        aspect_ratio="9:16",
        **customize(("walk", 3), ("zoom", 2)),
    )
    assert request.to_body() == {
        "model": "kling-v3-turbo-text-to-video",
        "prompt": "镜头 1, 3, walk; 镜头 2, 2, zoom;",
        "aspect_ratio": "9:16",
        "duration": 5,
        "quality": "1080p",
    }
    # The body reads back as the prompt it is, and the shot syntax in it is checked.
    assert TextToVideoRequest.from_body(request.to_body()).to_body() == request.to_body()


def test_turbo_prompt_without_the_shot_syntax_is_just_a_prompt() -> None:
    body = TextToVideoRequest.build(model="kling-v3-turbo-text-to-video", prompt="镜头缓缓推进, 3 秒; 雨夜").to_body()
    assert body["prompt"] == "镜头缓缓推进, 3 秒; 雨夜"
    assert TextToVideoRequest.build(model="kling-v3-turbo-text-to-video", prompt="镜头 1, 5, all of it;")


def test_o3_text_to_video_takes_up_to_seven_elements() -> None:
    body = TextToVideoRequest.build(
        model="kling-o3-text-to-video", prompt="<<<element_7>>> on the beach", elements=[str(i) for i in range(7)]
    ).to_body()
    assert body["model_params"] == {"element_list": [{"element_id": str(i)} for i in range(7)]}
    assert body["sound"] == "off"


def test_o3_image_to_video_reference_images_and_customize_prompt() -> None:
    request = ImageToVideoRequest.build(
        model="kling-o3-image-to-video",
        image_start=IMG,
        image_urls=[IMG2],
        aspect_ratio="16:9",
        **customize(("<<<image_1>>> sits", 5), ("<<<image_2>>> street", 5), duration=10),
    )
    body = request.to_body()
    assert body["prompt"] == ""  # its schema requires the key; multi-shot ignores it
    assert body["image_urls"] == [IMG2] and body["aspect_ratio"] == "16:9"
    assert body["model_params"]["shot_type"] == "customize"
    only_references = ImageToVideoRequest.build(model="kling-o3-image-to-video", prompt="x", image_urls=[IMG])
    assert "image_start" not in only_references.to_body()


def test_the_error_title_names_the_model_asked_for() -> None:
    with pytest.raises(KlingValidationError, match=r"^Invalid kling-o3-text-to-video request"):
        TextToVideoRequest.build(model="kling-o3-text-to-video", prompt="x", negative_prompt="y")
