"""What a request will cost, from EvoLink's published Kling 3.0 price table.

Used to log (and cap) the spend before submitting. Where no price is published (4k, the custom
element call, models not listed here) the estimate says so, ``known=False`` with a note,
instead of guessing. The vendor's ``usage.credits_reserved`` on the created task stays the
authority; this is the client-side forecast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from pydantic_core import PydanticCustomError

from kling_provider.exceptions import KlingValidationError
from kling_provider.models.common import MAX_DURATION, MIN_DURATION, KlingRequest, choice, strict_bool, strict_int
from kling_provider.models.families import VIDEO_MODEL_RULES
from kling_provider.models.video import VideoRequest

#: Seconds billed at least, whatever the requested duration.
MIN_BILLED_SECONDS = 3
BASE_CREDITS_PER_SECOND = Decimal("5.4")


@dataclass(frozen=True)
class Rate:
    """One row of the price table: per second of requested duration."""

    multiplier: Decimal
    credits_per_second: Decimal
    usd_per_second: Decimal


# The published per-second values, taken as they are rather than computed as base * multiplier:
# the multipliers are rounded (0.075 * 1.333 = $0.099975/s, the table bills $0.100/s).
_KLING_V3_RATES: dict[tuple[str, bool], Rate] = {
    ("720p", False): Rate(Decimal("1.0"), Decimal("5.4"), Decimal("0.075")),
    ("720p", True): Rate(Decimal("1.5"), Decimal("8.1"), Decimal("0.1125")),
    ("1080p", False): Rate(Decimal("1.333"), Decimal("7.1982"), Decimal("0.100")),
    ("1080p", True): Rate(Decimal("2.0"), Decimal("10.8"), Decimal("0.150")),
}

#: Model name -> (quality, sound) -> rate. Turbo and O3 are absent: their OpenAPI documents give
#: no price (only an example ``usage`` block), so they come out as "unknown", not as v3's price.
PRICE_TABLES: dict[str, dict[tuple[str, bool], Rate]] = {
    "kling-v3-text-to-video": _KLING_V3_RATES,
    "kling-v3-image-to-video": _KLING_V3_RATES,
}

_TURBO_UNPUBLISHED = "EvoLink publishes no price for {model} (neither its API document nor the Kling 3.0 price table)"
# The o3 documents' example usage ("per_call", 7 credits for 9 s) is an example, not a price.
_O3_UNPUBLISHED = (
    "EvoLink publishes no price for {model}: the product page only says O3's pricing factors differ from Kling 3.0's"
)
#: Why a model has no estimate, where the documents were checked and found to give no price.
_UNPUBLISHED_REASONS = {
    model: reason.format(model=model)
    for model, reason in {
        "kling-v3-turbo-text-to-video": _TURBO_UNPUBLISHED,
        "kling-v3-turbo-image-to-video": _TURBO_UNPUBLISHED,
        "kling-o3-text-to-video": _O3_UNPUBLISHED,
        "kling-o3-image-to-video": _O3_UNPUBLISHED,
    }.items()
}

_PER_CALL_UNPUBLISHED = {
    "kling-custom-element": "kling-custom-element is billed per call and its price is not published",
}


@dataclass(frozen=True)
class CostEstimate:
    """A forecast of the cost of one request; ``known`` is False when no price is published."""

    model: str
    credits: float | None
    usd: float | None
    billable_seconds: int | None
    multiplier: float | None
    known: bool
    note: str = ""
    duration: int | None = None
    quality: str | None = None
    sound: bool | None = None

    def describe(self) -> str:
        """One log line, e.g. ``27.0 credits (~$0.375) for 5 s at 720p, sound off``."""
        what = self._what()
        if not self.known or self.credits is None or self.usd is None:
            return f"cost unknown: {self.note}" + (f" ({what})" if what else "")
        line = f"{self.credits} credits (~${_usd(self.usd)})"
        if what:
            line += f" for {what}"
        if self.note:
            line += f"; {self.note}"
        return line

    def _what(self) -> str:
        if self.duration is None:
            return ""
        what = f"{self.duration} s"
        if self.quality is not None:
            what += f" at {self.quality}"
        if self.sound is not None:
            what += f", sound {'on' if self.sound else 'off'}"
        return what

    def __str__(self) -> str:
        return self.describe()


def _usd(amount: float) -> str:
    """At least cents, up to the 4 decimals the table uses: 0.375, 0.50, 0.5625."""
    text = f"{amount:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def billable_seconds(duration: int) -> int:
    """Seconds charged for ``duration``: per second, with a 3 s minimum."""
    return max(MIN_BILLED_SECONDS, duration)


def rate_for(model: str, quality: str, sound: bool) -> Rate | None:
    """The published per-second rate, or ``None`` when there is none (4k, unlisted models)."""
    return PRICE_TABLES.get(model, {}).get((quality, sound))


def estimate(request: KlingRequest) -> CostEstimate:
    """Forecast the credits and dollars ``request`` will reserve."""
    if not isinstance(request, VideoRequest):
        model = request.model
        note = _PER_CALL_UNPUBLISHED.get(model, f"no published price for {model}")
        return CostEstimate(model, None, None, None, None, known=False, note=note)
    return _video_estimate(request.model, request.duration, request.quality, request.sound)


def estimate_video(
    model: str = "kling-v3-text-to-video", duration: int = 5, quality: str = "720p", sound: bool = False
) -> CostEstimate:
    """What one video of ``model`` costs, from the four things its price depends on.

    No request object (prompt, images) is needed, so a batch can be totalled before it is
    built: ``sum(estimate_video(**row).credits for row in rows)``. The defaults are the
    operators' (5 s, 720p, silent; text- and image-to-video v3 cost the same). Values are
    checked like the operators check them: a ``KlingValidationError`` names the argument.
    Models with no published price (turbo, o3, 4k) come back with ``known=False``.
    """
    from kling_provider.models import REQUEST_MODELS  # every request model: only when a price is guessed

    models = tuple(REQUEST_MODELS)
    model = _checked("model", lambda value: choice(value, models), model)
    if model not in VIDEO_MODEL_RULES:  # kling-custom-element: billed per call, not per second
        return CostEstimate(model, None, None, None, None, known=False, note=_PER_CALL_UNPUBLISHED[model])
    what = f"an integer from {MIN_DURATION} to {MAX_DURATION}"
    duration = _checked("duration", lambda value: strict_int(value, MIN_DURATION, MAX_DURATION, what), duration)
    quality = _checked("quality", lambda value: choice(value, VIDEO_MODEL_RULES[model].qualities), quality)
    sound = _checked("sound", strict_bool, sound)
    return _video_estimate(model, duration, quality, sound)


_T = TypeVar("_T")


def _checked(name: str, check: Callable[[Any], _T], value: Any) -> _T:
    """``check(value)``, its rule error raised as a ``KlingValidationError`` naming ``name``."""
    try:
        return check(value)
    except PydanticCustomError as err:
        raise KlingValidationError(f"{name}: {err.message()}", param=name) from None


def _video_estimate(model: str, duration: int, quality: str, sound: bool) -> CostEstimate:
    seconds = billable_seconds(duration)
    rate = rate_for(model, quality, sound)
    if rate is None:
        if model in PRICE_TABLES:
            note = f"{quality} pricing is not published"
        else:
            note = _UNPUBLISHED_REASONS.get(model, f"no published price for {model}")
        return CostEstimate(
            model, None, None, seconds, None, known=False, note=note, duration=duration, quality=quality, sound=sound
        )
    note = f"billed as {seconds} s (minimum)" if seconds != duration else ""
    return CostEstimate(
        model,
        credits=float(rate.credits_per_second * seconds),
        usd=float(rate.usd_per_second * seconds),
        billable_seconds=seconds,
        multiplier=float(rate.multiplier),
        known=True,
        note=note,
        duration=duration,
        quality=quality,
        sound=sound,
    )
