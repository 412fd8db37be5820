"""Request rules: the vendored schema plus the documented rules it does not encode (400 + param)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kling_provider.testing import DEFAULT_API_KEY, EvoLinkSimulator

OPENAPI = Path(__file__).resolve().parent.parent / "kling_provider" / "testing" / "openapi"
T2V = {"model": "kling-v3-text-to-video", "prompt": "A cat running on grass"}
I2V = {"model": "kling-v3-image-to-video", "image_start": "https://example.com/start.png"}
O3I = {"model": "kling-o3-image-to-video", "prompt": "Make it move"}
TURBO_T = {"model": "kling-v3-turbo-text-to-video", "prompt": "A cat running on grass"}
TURBO_I = {"model": "kling-v3-turbo-image-to-video", "image_start": "https://example.com/start.png"}
O3T = {"model": "kling-o3-text-to-video", "prompt": "A cat running on grass"}
A, B, C = (f"https://example.com/{n}.png" for n in "abc")
ELEMENT_PARAMS = {"element_name": "Hero", "element_description": "A young man", "reference_type": "image_refer"}
IMAGES = {"frontal_image": "https://example.com/f.jpg", "refer_images": [{"image_url": "https://example.com/s.jpg"}]}
VIDEOS = {"refer_videos": [{"video_url": "https://example.com/ref.mp4"}]}


def shots(*durations: str) -> dict[str, Any]:
    return {
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": [{"index": i + 1, "prompt": f"shot {i + 1}", "duration": d} for i, d in enumerate(durations)],
    }


def element(**params: Any) -> dict[str, Any]:
    return {"model": "kling-custom-element", "model_params": {**ELEMENT_PARAMS, **params}}


@pytest.fixture
def client(kling_simulator: EvoLinkSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=kling_simulator.sync_transport(),
        base_url="http://evolink-sim.localhost",
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
    ) as c:
        yield c


def vendor_examples() -> Iterator[Any]:
    for path in sorted(OPENAPI.glob("kling-*.json")):
        operation = json.loads(path.read_text())["paths"]["/v1/videos/generations"]["post"]
        for name, example in operation["requestBody"]["content"]["application/json"]["examples"].items():
            yield pytest.param(example["value"], id=f"{path.stem}:{name}")


@pytest.mark.parametrize("body", list(vendor_examples()))
def test_every_vendor_example_is_accepted(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == body["model"]


ACCEPTED = [
    pytest.param({**T2V, "prompt": "", **{"model_params": shots("2", "3")}}, id="empty-prompt-customize"),
    pytest.param({"model": "kling-v3-text-to-video", "model_params": shots("5")}, id="no-prompt-customize"),
    pytest.param({**T2V, "duration": 10, "model_params": shots("4", "6")}, id="shots-sum"),
    pytest.param({**T2V, "model_params": {"multi_shot": True, "shot_type": "intelligence"}}, id="intelligence"),
    pytest.param(
        {**I2V, "prompt": "<<<element_1>>> waves", "model_params": {"element_list": [{"element_id": "el-1"}]}},
        id="element-placeholder",
    ),
    pytest.param({**I2V, "image_end": "https://example.com/end.png"}, id="image-end"),
    pytest.param({**T2V, "callback_url": "https://hooks.example.com/kling"}, id="callback"),
    pytest.param({**T2V, "negative_prompt": "x" * 2500}, id="negative-max"),
    pytest.param(
        {**O3I, "model_params": {"element_list": [{"element_id": f"el-{i}"} for i in range(7)]}}, id="o3-7-elements"
    ),
    pytest.param(element(element_image_list=IMAGES), id="element-image"),
    pytest.param(
        element(reference_type="video_refer", element_video_list=VIDEOS, element_voice_id="829824295735410756"),
        id="element-video-voice",
    ),
    pytest.param({**T2V, "unknown_future_field": 1}, id="extra-field-tolerated"),
    # the other Kling models, each by its own document
    pytest.param({**TURBO_T, "quality": "1080p", "aspect_ratio": "9:16"}, id="turbo-t2v-1080p"),
    pytest.param({**TURBO_T, "prompt": "镜头 1, 3, walk; 镜头 2, 2, zoom;"}, id="turbo-prompt-shots"),
    pytest.param({**TURBO_T, "prompt": "镜头缓缓推进; 雨夜"}, id="turbo-plain-chinese"),
    pytest.param({**TURBO_I, "duration": 15, "quality": "1080p"}, id="turbo-i2v"),
    pytest.param({**O3T, "model_params": {"element_list": [{"element_id": str(i)} for i in range(7)]}}, id="o3t-7"),
    pytest.param(
        {
            "model": "kling-o3-text-to-video",
            "model_params": {
                **shots("2", "3"),
                "multi_prompt": [
                    {"index": 1, "prompt": "x" * 600, "duration": "2"},  # no shot length in o3 t2v's document
                    {"index": 2, "prompt": "y", "duration": "3"},
                ],
            },
        },
        id="o3t-long-shot-prompt",
    ),
    pytest.param({**O3I, "image_urls": [A], "prompt": "<<<image_1>>> glows"}, id="o3i-reference-only"),
    pytest.param({**O3I, "image_start": A, "image_end": B}, id="o3i-first-last"),
    pytest.param(
        {"model": "kling-o3-image-to-video", "image_start": A, "model_params": shots("5")}, id="o3i-customize-no-prompt"
    ),
    pytest.param(
        {
            **O3I,
            "image_start": A,
            "image_urls": [B, C],
            "model_params": {"element_list": [{"element_id": str(i)} for i in range(3)]},
        },
        id="o3i-3-images-3-elements",
    ),
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_valid_requests_are_accepted(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 200, response.text


REJECTED = [
    # schema
    pytest.param({"prompt": "x"}, "model", id="no-model"),
    pytest.param({**T2V, "model": "kling-v9"}, "model", id="unknown-model"),
    pytest.param({"model": "kling-v3-text-to-video"}, "prompt", id="no-prompt"),
    pytest.param({**T2V, "prompt": "x" * 2501}, "prompt", id="prompt-too-long"),
    pytest.param({**T2V, "duration": 2}, "duration", id="duration-low"),
    pytest.param({**T2V, "duration": 16}, "duration", id="duration-high"),
    pytest.param({**T2V, "duration": "5"}, "duration", id="duration-string"),
    pytest.param({**T2V, "quality": "8k"}, "quality", id="quality"),
    pytest.param({**T2V, "aspect_ratio": "4:3"}, "aspect_ratio", id="aspect"),
    pytest.param({**T2V, "sound": True}, "sound", id="sound-bool"),
    pytest.param({"model": "kling-v3-image-to-video", "prompt": "x"}, "image_start", id="i2v-no-image"),
    pytest.param({**T2V, "model": "kling-v3-turbo-text-to-video", "quality": "4k"}, "quality", id="turbo-4k"),
    pytest.param(
        {**I2V, "model_params": {"element_list": [{"element_id": f"el-{i}"} for i in range(4)]}},
        "model_params.element_list",
        id="four-elements",
    ),
    pytest.param(
        {**T2V, "model_params": {**shots("5"), "multi_prompt": [{"index": 1, "prompt": "x"}]}},
        "model_params.multi_prompt[0].duration",
        id="shot-without-duration",
    ),
    pytest.param(
        {**T2V, "model_params": {**shots("5"), "multi_prompt": [{"index": 1, "prompt": "x" * 513, "duration": "5"}]}},
        "model_params.multi_prompt[0].prompt",
        id="shot-prompt-too-long",
    ),
    pytest.param({**T2V, "model_params": shots("1", "1", "1", "1", "1", "0")}, None, id="seven-shots-or-zero"),
    pytest.param({**TURBO_I, "quality": "4k"}, "quality", id="turbo-i2v-4k"),
    pytest.param(
        {**O3T, "model_params": {"multi_shot": True, "shot_type": "intelligence"}},
        "model_params.shot_type",
        id="o3t-intelligence",
    ),
    pytest.param(
        {**O3T, "model_params": {"element_list": [{"element_id": str(i)} for i in range(8)]}},
        "model_params.element_list",
        id="o3t-8-elements",
    ),
    pytest.param({"model": "kling-v3-turbo-image-to-video", "prompt": "x"}, "image_start", id="turbo-i2v-no-image"),
    pytest.param({"model": "kling-o3-image-to-video", "image_start": A}, "prompt", id="o3i-no-prompt"),
    # fields the model's document does not have
    pytest.param({**TURBO_T, "negative_prompt": "blur"}, "negative_prompt", id="turbo-negative"),
    pytest.param({**TURBO_T, "model_params": {"watermark_info": {"enabled": True}}}, "model_params", id="turbo-params"),
    pytest.param({**TURBO_I, "image_end": B}, "image_end", id="turbo-i2v-end"),
    pytest.param({**O3T, "negative_prompt": "blur"}, "negative_prompt", id="o3t-negative"),
    pytest.param({**O3I, "image_start": A, "negative_prompt": "blur"}, "negative_prompt", id="o3i-negative"),
    pytest.param({**I2V, "image_urls": [B]}, "image_urls", id="v3-i2v-image-urls"),
    # turbo's shots written into the prompt
    pytest.param({**TURBO_T, "prompt": "镜头 1, 3, walk; 镜头 2, 3, zoom;"}, "prompt", id="turbo-shots-sum"),
    pytest.param({**TURBO_T, "prompt": "镜头 1, 3, walk; 镜头 3, 2, zoom;"}, "prompt", id="turbo-shots-order"),
    pytest.param({**TURBO_T, "prompt": f"镜头 1, 5, {'w' * 513};"}, "prompt", id="turbo-shot-too-long"),
    pytest.param(
        {**TURBO_T, "duration": 7, "prompt": " ".join(f"镜头 {i}, 1, s;" for i in range(1, 8))},
        "prompt",
        id="turbo-seven-shots",
    ),
    # kling-o3-image-to-video's image rules
    pytest.param({**O3I, "image_start": A, "image_end": B, "image_urls": [C]}, "image_end", id="o3i-end-3-images"),
    pytest.param(
        {**O3I, "image_start": A, "model_params": {"element_list": [{"element_id": str(i)} for i in range(4)]}},
        "model_params.element_list",
        id="o3i-4-elements-with-start",
    ),
    pytest.param(
        {**O3I, "image_urls": [A, B, C], "model_params": {"element_list": [{"element_id": str(i)} for i in range(5)]}},
        "image_urls",
        id="o3i-8-images-and-elements",
    ),
    pytest.param({**O3I, "image_urls": [A], "prompt": "<<<image_2>>> glows"}, "prompt", id="o3i-image-placeholder"),
    pytest.param(
        {
            "model": "kling-o3-image-to-video",
            "image_start": A,
            "model_params": {**shots("5"), "multi_prompt": [{"index": 1, "prompt": "x" * 513, "duration": "5"}]},
        },
        "model_params.multi_prompt[0].prompt",
        id="o3i-shot-too-long",
    ),
    pytest.param(
        {
            "model": "kling-o3-image-to-video",
            "image_start": A,
            "duration": 7,
            "model_params": shots(*"1111111"),
        },
        "model_params.multi_prompt",
        id="o3i-seven-shots",
    ),
    # documented rules
    pytest.param({**T2V, "prompt": "   "}, "prompt", id="blank-prompt"),
    pytest.param({**T2V, "model_params": {"multi_shot": True}}, "model_params.shot_type", id="multishot-no-type"),
    pytest.param(
        {**T2V, "model_params": {"multi_shot": True, "shot_type": "customize"}},
        "model_params.multi_prompt",
        id="customize-no-shots",
    ),
    pytest.param({**T2V, "model_params": shots("2", "2")}, "model_params.multi_prompt", id="shots-sum-short"),
    pytest.param({**T2V, "model_params": shots("3", "3")}, "model_params.multi_prompt", id="shots-sum-long"),
    pytest.param({**T2V, "model_params": shots("0", "5")}, "model_params.multi_prompt[0].duration", id="shot-zero"),
    pytest.param({**T2V, "model_params": shots("2.5", "2.5")}, "model_params.multi_prompt[0].duration", id="shot-frac"),
    pytest.param({**T2V, "model_params": shots("five")}, "model_params.multi_prompt[0].duration", id="shot-words"),
    pytest.param(
        {**T2V, "model_params": {**shots("5"), "multi_prompt": [{"index": 2, "prompt": "x", "duration": "5"}]}},
        "model_params.multi_prompt[0].index",
        id="shot-index",
    ),
    pytest.param(
        {**I2V, "prompt": "<<<element_2>>> waves", "model_params": {"element_list": [{"element_id": "el-1"}]}},
        "prompt",
        id="placeholder-beyond-list",
    ),
    pytest.param({**I2V, "prompt": "<<<element_1>>> waves"}, "prompt", id="placeholder-without-list"),
    pytest.param(
        {**T2V, "model_params": {"element_list": [{"element_id": "el-1"}]}},
        "model_params.element_list",
        id="elements-on-t2v",
    ),
    pytest.param({**O3I, "image_end": "https://example.com/end.png"}, "image_end", id="end-without-start"),
    pytest.param({**I2V, "image_start": "not a url"}, "image_start", id="image-not-url"),
    pytest.param({**I2V, "image_start": "ftp://example.com/a.png"}, "image_start", id="image-ftp"),
    pytest.param({**T2V, "negative_prompt": "x" * 2501}, "negative_prompt", id="negative-too-long"),
    pytest.param({**T2V, "callback_url": "http://example.com/hook"}, "callback_url", id="callback-http"),
    pytest.param({**T2V, "callback_url": "https://127.0.0.1/hook"}, "callback_url", id="callback-loopback"),
    pytest.param({**T2V, "callback_url": "https://10.1.2.3/hook"}, "callback_url", id="callback-10"),
    pytest.param({**T2V, "callback_url": "https://172.20.0.1/hook"}, "callback_url", id="callback-172"),
    pytest.param({**T2V, "callback_url": "https://192.168.1.5/hook"}, "callback_url", id="callback-192"),
    pytest.param({**T2V, "callback_url": "https://169.254.169.254/x"}, "callback_url", id="callback-metadata"),
    pytest.param({**T2V, "callback_url": "https://[::1]/hook"}, "callback_url", id="callback-ipv6"),
    pytest.param({**T2V, "callback_url": "https://localhost/hook"}, "callback_url", id="callback-localhost"),
    pytest.param({**T2V, "callback_url": "https://example.com/" + "a" * 2030}, "callback_url", id="callback-too-long"),
    pytest.param(element(), "model_params.element_image_list", id="image-refer-no-images"),
    pytest.param(element(reference_type="video_refer"), "model_params.element_video_list", id="video-refer-no-video"),
    pytest.param(
        element(element_image_list=IMAGES, element_voice_id="123"),
        "model_params.element_voice_id",
        id="voice-with-image-refer",
    ),
    pytest.param(element(element_name="x" * 21, element_image_list=IMAGES), "model_params.element_name", id="name"),
    pytest.param(
        element(element_image_list={**IMAGES, "refer_images": [{"image_url": "https://e.com/a.jpg"}] * 4}),
        "model_params.element_image_list.refer_images",
        id="four-refer-images",
    ),
    pytest.param({"model": "kling-custom-element"}, "model_params", id="element-no-params"),
]


@pytest.mark.parametrize(("body", "param"), REJECTED)
def test_invalid_requests_are_400_with_param(
    kling_simulator: EvoLinkSimulator, client: httpx.Client, body: dict[str, Any], param: str | None
) -> None:
    response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    assert kling_simulator.tasks == []  # nothing created, nothing billed
    assert kling_simulator.credits_spent == 0


def test_body_that_is_not_json(client: httpx.Client) -> None:
    response = client.post("/v1/videos/generations", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    array = client.post("/v1/videos/generations", json=[T2V])
    assert array.status_code == 400


def test_defaults_and_output_sizes(kling_simulator: EvoLinkSimulator, client: httpx.Client) -> None:
    cases = [
        ({**T2V}, (1280, 720, 5)),
        ({**T2V, "aspect_ratio": "9:16"}, (720, 1280, 5)),
        ({**T2V, "aspect_ratio": "1:1", "duration": 7}, (720, 720, 7)),
        ({**T2V, "quality": "1080p"}, (1920, 1080, 5)),
        ({**T2V, "quality": "1080p", "aspect_ratio": "9:16"}, (1080, 1920, 5)),
        ({**T2V, "quality": "4k"}, (3840, 2160, 5)),
        ({**I2V}, (1280, 720, 5)),  # v3 i2v follows the image (unknown here: 16:9)
        ({**I2V, "aspect_ratio": "9:16"}, (720, 1280, 5)),  # the product page's form: as asked
        ({**TURBO_I, "aspect_ratio": "9:16"}, (1280, 720, 5)),  # turbo ignores it: follows the image
        ({**O3I, "image_start": "https://example.com/a.png", "aspect_ratio": "1:1"}, (720, 720, 5)),
    ]
    for body, (width, height, duration) in cases:
        task_id = client.post("/v1/videos/generations", json=body).json()["id"]
        task = kling_simulator.task(task_id)
        assert (task.width, task.height, task.spec.duration) == (width, height, duration), body


def test_turbo_models_ignore_sound_in_the_price(client: httpx.Client) -> None:
    body = {"model": "kling-v3-turbo-text-to-video", "prompt": "x", "sound": "on"}
    assert client.post("/v1/videos/generations", json=body).json()["usage"]["credits_reserved"] == 27.0


def test_each_model_is_checked_against_its_own_rules(client: httpx.Client) -> None:
    """The same field passes for one model and is refused for another, with the vendor's error shape."""
    accepted = client.post("/v1/videos/generations", json={**T2V, "negative_prompt": "blur", "quality": "4k"})
    assert accepted.status_code == 200, accepted.text
    refused = client.post("/v1/videos/generations", json={**TURBO_T, "quality": "4k"})
    assert refused.status_code == 400
    assert set(refused.json()) == {"error"}
    assert set(refused.json()["error"]) >= {"code", "message", "type"}
    last_frame = {"image_start": A, "image_end": B}
    assert client.post("/v1/videos/generations", json={**I2V, **last_frame}).status_code == 200
    turbo = client.post("/v1/videos/generations", json={**TURBO_I, **last_frame})
    assert turbo.status_code == 400
    assert "not supported by kling-v3-turbo-image-to-video" in turbo.json()["error"]["message"]


# -- where the product page and the OpenAPI document disagree ---------------------------------

END_ONLY = {"model": "kling-v3-image-to-video", "image_end": "https://example.com/end.png", "prompt": "Night falls"}
#: Bodies the product page documents for kling-v3-image-to-video that its OpenAPI document refuses,
#: with the parameter the OpenAPI reading names.
PAGE_ONLY = [
    pytest.param(END_ONLY, "image_start", id="end-frame-alone"),
    pytest.param({**END_ONLY, "aspect_ratio": "9:16"}, "image_start", id="end-frame-alone-aspect"),
    pytest.param({**I2V, "aspect_ratio": "1:1"}, "aspect_ratio", id="aspect-ratio"),
    pytest.param(
        {**I2V, "prompt": "<<<element_1>>>", "model_params": {"element_list": [{"element_id": 123456}]}},
        "model_params.element_list[0].element_id",
        id="numeric-element-id",
    ),
]


@pytest.mark.parametrize(("body", "param"), PAGE_ONLY)
def test_the_product_pages_forms_are_accepted_by_default(
    kling_simulator: EvoLinkSimulator, client: httpx.Client, body: dict[str, Any], param: str
) -> None:
    assert kling_simulator.reading == "product-page"
    response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["credits_reserved"] == 27.0


@pytest.mark.kling_simulator(reading="openapi")
@pytest.mark.parametrize(("body", "param"), PAGE_ONLY)
def test_the_openapi_reading_refuses_them_and_bills_nothing(
    kling_simulator: EvoLinkSimulator, client: httpx.Client, body: dict[str, Any], param: str
) -> None:
    assert kling_simulator.reading == "openapi"
    response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert kling_simulator.tasks == [] and kling_simulator.credits_spent == 0


@pytest.mark.parametrize("reading", ["product-page", "openapi"])
def test_what_both_documents_refuse_is_refused_in_either_reading(reading: Any) -> None:
    from kling_provider.testing.validation import RequestRejected, validate_generation

    refused = [
        ({"model": "kling-v3-image-to-video", "prompt": "x"}, "image_start"),  # no frame at all
        ({**I2V, "aspect_ratio": "4:3"}, "aspect_ratio"),
        ({**TURBO_I, "image_end": B}, "image_end"),
        ({**O3I, "image_end": B, "image_urls": [A]}, "image_end"),  # o3: a last frame needs a first
    ]
    for body, param in refused:
        with pytest.raises(RequestRejected) as info:
            validate_generation(body, reading=reading)
        assert info.value.param == param, (body, info.value.message)


def test_the_reading_is_checked_and_set_from_the_command_line() -> None:
    from kling_provider.testing.__main__ import build_parser, build_simulator

    assert build_simulator(build_parser().parse_args([])).reading == "product-page"
    assert build_simulator(build_parser().parse_args(["--reading", "openapi"])).reading == "openapi"
    with pytest.raises(ValueError, match="reading must be one of"):
        EvoLinkSimulator(reading="strict")  # type: ignore[arg-type]
