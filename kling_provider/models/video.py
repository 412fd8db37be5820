"""What text-to-video and image-to-video share: duration, quality, sound, multi-shot, watermark.

The cross-field rules live here once (shot type needs multi-shot, shots add up to the duration,
``<<<element_N>>>`` names an element that exists). Subclasses add their inputs through
``_inputs`` / ``_model_params`` and say whether a prompt is required.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import model_validator
from pydantic_core import InitErrorDetails

from kling_provider.models.common import (
    DEFAULT_DURATION,
    CallbackUrl,
    Duration,
    KlingRequest,
    OptionalBool,
    Prompt,
    QualityField,
    StrictBool,
    placeholder_problems,
)
from kling_provider.models.errors import detail, raise_all
from kling_provider.models.shots import Shots, ShotTypeField


class VideoRequest(KlingRequest):
    """Common fields of the Kling 3.0 video models.

    ``sound`` and ``watermark`` are Python bools (sent as ``"on"``/``"off"`` and
    ``model_params.watermark_info``); ``shots`` are the per-shot prompts of
    ``multi_shot=True, shot_type="customize"``.
    """

    #: Whether the vendor requires a prompt outside customize multi-shot (text-to-video does).
    prompt_required: ClassVar[bool] = True
    #: Whether ``<<<element_N>>>`` placeholders can refer to anything (image-to-video's ``elements``).
    takes_elements: ClassVar[bool] = False

    prompt: Prompt = None
    negative_prompt: Prompt = None
    duration: Duration = DEFAULT_DURATION
    quality: QualityField = "720p"
    sound: StrictBool = False
    multi_shot: StrictBool = False
    shot_type: ShotTypeField = None
    shots: Shots = ()
    watermark: OptionalBool = None
    callback_url: CallbackUrl = None

    @property
    def element_count(self) -> int:
        return 0

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VideoRequest:
        raise_all([*self._multi_shot_problems(), *self._placeholder_problems(), *self._extra_problems()])
        return self

    def _multi_shot_problems(self) -> list[InitErrorDetails]:
        problems: list[InitErrorDetails] = []
        customize = self.multi_shot and self.shot_type == "customize"
        if not self.multi_shot:
            if self.shot_type is not None:
                problems.append(detail(("shot_type",), "only allowed with multi_shot=True"))
            if self.shots:
                problems.append(detail(("shots",), "only allowed with multi_shot=True and shot_type='customize'"))
        elif self.shot_type is None:
            problems.append(detail(("shot_type",), "required when multi_shot=True: 'customize' or 'intelligence'"))
        elif customize:
            if not self.shots:
                problems.append(detail(("shots",), "required when shot_type='customize': 1 to 6 shots"))
            elif (total := sum(shot.duration for shot in self.shots)) != self.duration:
                problems.append(
                    detail(
                        ("shots",), f"shot durations must add up to duration={self.duration} (they add up to {total})"
                    )
                )
            if self.prompt is not None:
                problems.append(
                    detail(
                        ("prompt",),
                        "must be left out when shot_type='customize': EvoLink ignores it, the shots carry the text",
                    )
                )
        elif self.shots:
            problems.append(
                detail(("shots",), "only allowed with shot_type='customize' ('intelligence' plans its own shots)")
            )
        if self.prompt_required and not customize and self.prompt is None:
            problems.append(detail(("prompt",), "required (unless multi_shot=True with shot_type='customize')"))
        return problems

    def _placeholder_problems(self) -> list[InitErrorDetails]:
        count = self.element_count
        none = "no elements are given" if self.takes_elements else f"{self.model} takes no elements"
        problems = placeholder_problems(self.prompt, count, ("prompt",), none)
        problems += placeholder_problems(self.negative_prompt, count, ("negative_prompt",), none)
        for position, shot in enumerate(self.shots):
            problems += placeholder_problems(shot.prompt, count, ("shots", position, "prompt"), none)
        return problems

    def _extra_problems(self) -> list[InitErrorDetails]:
        return []

    def _inputs(self) -> dict[str, Any]:
        """Top-level fields particular to the subclass (images, aspect ratio)."""
        return {}

    def _model_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.multi_shot:
            params["multi_shot"] = True
            params["shot_type"] = self.shot_type
            if self.shots:
                params["multi_prompt"] = [shot.to_body() for shot in self.shots]
        if self.watermark is not None:
            params["watermark_info"] = {"enabled": self.watermark}
        return params

    def to_body(self) -> dict[str, Any]:
        """The create-task JSON. ``duration``, ``quality`` and ``sound`` are always sent, even at
        their defaults: they set the price, so the body pins what :func:`estimate` assumed."""
        body: dict[str, Any] = {"model": self.model}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        elif self.prompt_required:
            body["prompt"] = ""  # the schema requires the key; EvoLink ignores it under customize
        if self.negative_prompt is not None:
            body["negative_prompt"] = self.negative_prompt
        body.update(self._inputs())
        body["duration"] = self.duration
        body["quality"] = self.quality
        body["sound"] = "on" if self.sound else "off"
        params = self._model_params()
        if params:
            body["model_params"] = params
        if self.callback_url is not None:
            body["callback_url"] = self.callback_url
        return body

    @classmethod
    def _kwargs_from_body(cls, body: dict[str, Any]) -> dict[str, Any]:
        """Vendor JSON -> constructor arguments; unexpected keys pass through so they are reported."""
        kwargs = dict(body)
        if _is_str(kwargs.get("prompt"), ""):
            del kwargs["prompt"]
        if _is_str(kwargs.get("sound"), "on", "off"):
            kwargs["sound"] = _is_str(kwargs["sound"], "on")
        params = kwargs.pop("model_params", None)
        if params is None:
            return kwargs
        if not isinstance(params, Mapping):
            kwargs["model_params"] = params  # reported as an unknown field, with its value
            return kwargs
        params = dict(params)
        for key in ("multi_shot", "shot_type"):
            if key in params:
                kwargs[key] = params.pop(key)
        if "multi_prompt" in params:
            kwargs["shots"] = _shots_from_body(params.pop("multi_prompt"))
        if "watermark_info" in params:
            info = params.pop("watermark_info")
            kwargs["watermark"] = info.get("enabled") if isinstance(info, Mapping) else info
        cls._params_from_body(params, kwargs)
        for key, value in params.items():
            kwargs[f"model_params.{key}"] = value
        return kwargs

    @classmethod
    def _params_from_body(cls, params: dict[str, Any], kwargs: dict[str, Any]) -> None:
        """Move subclass-specific ``model_params`` entries into ``kwargs`` (pop them)."""


def _is_str(value: Any, *options: str) -> bool:
    """``value`` is exactly one of ``options`` (never calling a foreign ``__eq__``)."""
    return isinstance(value, str) and str.__getitem__(value, slice(None)) in options


def _shots_from_body(items: Any) -> Any:
    """``multi_prompt`` items carry the duration as a string of digits; the model takes ints."""
    if not isinstance(items, list):
        return items
    shots = []
    for item in items:
        if isinstance(item, Mapping):
            item = dict(item)
            duration = item.get("duration")
            if isinstance(duration, str):
                digits = str.__getitem__(duration, slice(None))
                if digits.isascii() and digits.isdigit() and len(digits) < 4:
                    item["duration"] = int(digits)
        shots.append(item)
    return shots
