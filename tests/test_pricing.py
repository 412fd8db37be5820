"""The published Kling 3.0 price table, and "unknown" where nothing is published."""

from __future__ import annotations

import dataclasses

import pytest

from kling_provider.models import CustomElementRequest, ImageToVideoRequest, KlingRequest, TextToVideoRequest
from kling_provider.pricing import MIN_BILLED_SECONDS, CostEstimate, billable_seconds, estimate, rate_for

IMG = "https://files-api.evolink.ai/files/a.png"


# quality, sound, credits/s, $/s, multiplier: the product page's table, value for value.
TABLE = [
    ("720p", False, 5.4, 0.075, 1.0),
    ("720p", True, 8.1, 0.1125, 1.5),
    ("1080p", False, 7.1982, 0.100, 1.333),
    ("1080p", True, 10.8, 0.150, 2.0),
]


@pytest.mark.parametrize("model", [TextToVideoRequest, ImageToVideoRequest])
@pytest.mark.parametrize(("quality", "sound", "credits", "usd", "multiplier"), TABLE)
@pytest.mark.parametrize("duration", [3, 5, 10, 15])
def test_price_table(
    model: type[KlingRequest], quality: str, sound: bool, credits: float, usd: float, multiplier: float, duration: int
) -> None:
    kwargs = {"prompt": "x"} if model is TextToVideoRequest else {"image_start": IMG}
    cost = estimate(model.build(**kwargs, quality=quality, sound=sound, duration=duration))
    assert cost.known
    assert cost.billable_seconds == duration
    assert cost.multiplier == multiplier
    assert cost.credits == pytest.approx(credits * duration, abs=1e-9)
    assert cost.usd == pytest.approx(usd * duration, abs=1e-9)
    assert round(cost.credits, 4) == cost.credits  # no float noise (35.991, not 35.99100000000001)


def test_five_second_silent_720p_clip_is_27_credits() -> None:
    cost = estimate(TextToVideoRequest.build(prompt="x"))
    assert (cost.credits, cost.usd, cost.billable_seconds, cost.multiplier) == (27.0, 0.375, 5, 1.0)
    assert str(cost) == cost.describe() == "27.0 credits (~$0.375) for 5 s at 720p, sound off"


def test_table_values_not_base_times_multiplier() -> None:
    cost = estimate(TextToVideoRequest.build(prompt="x", quality="1080p", duration=10))
    assert cost.usd == pytest.approx(1.0)  # 0.075 * 1.333 * 10 would be 0.99975
    assert cost.credits == pytest.approx(71.982)
    assert cost.describe() == "71.982 credits (~$1.00) for 10 s at 1080p, sound off"


def test_describe_with_sound() -> None:
    cost = estimate(ImageToVideoRequest.build(image_start=IMG, quality="1080p", sound=True, duration=15))
    assert cost.describe() == "162.0 credits (~$2.25) for 15 s at 1080p, sound on"


@pytest.mark.parametrize("sound", [False, True])
def test_4k_is_unknown_not_guessed(sound: bool) -> None:
    cost = estimate(TextToVideoRequest.build(prompt="x", quality="4k", sound=sound, duration=8))
    assert not cost.known
    assert cost.credits is None and cost.usd is None and cost.multiplier is None
    assert cost.billable_seconds == 8
    assert cost.note == "4k pricing is not published"
    assert cost.describe() == f"cost unknown: 4k pricing is not published (8 s at 4k, sound {'on' if sound else 'off'})"


def test_custom_element_is_unknown() -> None:
    request = CustomElementRequest.build(
        element_name="Hero", element_description="A knight", refer_video="https://example.com/a.mp4"
    )
    cost = estimate(request)
    assert not cost.known
    assert cost.credits is None and cost.usd is None and cost.billable_seconds is None
    assert "billed per call" in cost.note and "not published" in cost.note
    assert cost.describe().startswith("cost unknown: kling-custom-element is billed per call")


def test_three_second_minimum() -> None:
    assert MIN_BILLED_SECONDS == 3
    assert [billable_seconds(d) for d in (0, 1, 2, 3, 4, 15)] == [3, 3, 3, 3, 4, 15]


def test_unlisted_models_are_unknown() -> None:
    assert rate_for("kling-v3-turbo-text-to-video", "720p", False) is None
    assert rate_for("kling-v3-text-to-video", "4k", False) is None
    assert rate_for("kling-v3-text-to-video", "720p", False) is not None


def test_estimate_is_frozen() -> None:
    cost = estimate(TextToVideoRequest.build(prompt="x"))
    assert isinstance(cost, CostEstimate)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.credits = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "kwargs", "why"),
    [
        (TextToVideoRequest, {"model": "kling-v3-turbo-text-to-video", "prompt": "x"}, "neither its API document"),
        (ImageToVideoRequest, {"model": "kling-v3-turbo-image-to-video", "image_start": IMG}, "Kling 3.0 price table"),
        (TextToVideoRequest, {"model": "kling-o3-text-to-video", "prompt": "x"}, "O3's pricing factors differ"),
        (ImageToVideoRequest, {"model": "kling-o3-image-to-video", "prompt": "x", "image_start": IMG}, "O3's"),
    ],
)
def test_turbo_and_o3_are_unknown_and_say_why(cls: type[KlingRequest], kwargs: dict[str, str], why: str) -> None:
    cost = estimate(cls.build(**kwargs, duration=5, quality="720p"))
    assert not cost.known and cost.credits is None and cost.usd is None
    assert cost.billable_seconds == 5
    assert why in cost.note and str(kwargs["model"]) in cost.note
    assert cost.describe().startswith(f"cost unknown: EvoLink publishes no price for {kwargs['model']}")
    assert cost.describe().endswith("(5 s at 720p, sound off)")


# -- estimate_video: the same figures without a request ------------------------------------------


@pytest.mark.parametrize("model", ["kling-v3-text-to-video", "kling-v3-image-to-video"])
@pytest.mark.parametrize(("quality", "sound", "credits", "usd", "multiplier"), TABLE)
@pytest.mark.parametrize("duration", [3, 8, 15])
def test_estimate_video_agrees_with_the_request_estimate(
    model: str, quality: str, sound: bool, credits: float, usd: float, multiplier: float, duration: int
) -> None:
    from kling_provider.pricing import estimate_video

    got = estimate_video(model, duration, quality, sound)
    cls = TextToVideoRequest if "text" in model else ImageToVideoRequest
    kwargs = {"prompt": "x"} if cls is TextToVideoRequest else {"image_start": IMG}
    assert got == estimate(cls.build(model=model, duration=duration, quality=quality, sound=sound, **kwargs))
    assert got.credits == pytest.approx(credits * duration) and got.usd == pytest.approx(usd * duration)


def test_estimate_video_defaults_and_unknowns() -> None:
    from kling_provider.pricing import estimate_video

    assert estimate_video().credits == 27.0 and estimate_video().usd == 0.375
    assert estimate_video(duration=10, quality="1080p", sound=True).describe() == (
        "108.0 credits (~$1.50) for 10 s at 1080p, sound on"
    )
    for unknown in (
        estimate_video(quality="4k"),
        estimate_video("kling-o3-text-to-video"),
        estimate_video("kling-custom-element"),
    ):
        assert unknown.credits is None and unknown.usd is None and not unknown.known


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 20}, "duration: must be an integer from 3 to 15 (got 20)"),
        ({"duration": "5"}, "duration: must be an integer from 3 to 15 (got '5')"),
        ({"quality": "HD"}, "quality: must be one of '720p', '1080p', '4k' (got 'HD')"),
        ({"model": "kling-v3-turbo-text-to-video", "quality": "4k"}, "quality: must be one of '720p', '1080p' (got"),
        ({"sound": "on"}, "sound: must be True or False (got 'on')"),
        ({"model": "kling-v4"}, "model: must be one of 'kling-v3-text-to-video'"),
    ],
)
def test_estimate_video_checks_its_arguments_like_the_operators(kwargs: dict[str, object], message: str) -> None:
    from kling_provider.exceptions import KlingValidationError
    from kling_provider.pricing import estimate_video

    with pytest.raises(KlingValidationError) as info:
        estimate_video(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert info.value.param == message.split(":")[0]
