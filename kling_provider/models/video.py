"""What text-to-video and image-to-video share: duration, quality, sound, multi-shot, watermark.

The cross-field rules live here once (shot type needs multi-shot, shots add up to the duration,
``<<<element_N>>>`` names an element that exists), and so do the per-model ones: each request
is checked against its model's row in :mod:`kling_provider.models.families`. Subclasses add
their inputs through ``_inputs`` / ``_model_params``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import PlainValidator, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails

from kling_provider.models.common import (
    DEFAULT_DURATION,
    MAX_PROMPT_CHARS,
    CallbackUrl,
    Duration,
    KlingRequest,
    OptionalBool,
    Prompt,
    QualityField,
    StrictBool,
    check_items,
    choice,
    placeholder_problems,
    plain_str,
    sequence_items,
)
from kling_provider.models.errors import detail, fail, raise_all
from kling_provider.models.families import (
    O3_MAX_ELEMENTS_WITH_FIRST_FRAME,
    VIDEO_MODEL_RULES,
    Family,
    VideoModelRules,
)
from kling_provider.models.shots import MAX_SHOT_PROMPT_CHARS, MAX_SHOTS, Shot, Shots, ShotTypeField
from kling_provider.models.untrusted import exact_str, show

#: The most elements any model takes: a longer list is refused before its ids are checked.
MAX_ANY_ELEMENTS = max(rules.max_elements for rules in VIDEO_MODEL_RULES.values())
MAX_ELEMENT_ID_CHARS = 64
#: turbo text-to-video's shot syntax: ``镜头 n, m, words;`` (ASCII or full-width separators).
PROMPT_SHOT = re.compile(r"镜头\s*([0-9]+)\s*[,\uff0c]\s*([0-9]+)\s*[,\uff0c]\s*([^;\uff1b]*)[;\uff1b]?")
_SHOT_END = re.compile(r"[;\uff1b]")
AspectRatio = Literal["16:9", "9:16", "1:1"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = ("16:9", "9:16", "1:1")


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


def too_many_elements(model: str | None, count: int) -> str:
    """The message for ``count`` elements, more than ``model`` takes (``None``: the model is not valid)."""
    rules = VIDEO_MODEL_RULES.get(model) if model is not None else None
    if rules is None:
        return f"must have at most {MAX_ANY_ELEMENTS} elements, the most any model takes (got {count})"
    if rules.image_urls:  # kling-o3-image-to-video: images share the limit (the rest in _extra_problems)
        return (
            f"must have at most {rules.max_elements} elements for {rules.name}, counting its images, "
            f"and {O3_MAX_ELEMENTS_WITH_FIRST_FRAME} with image_start (got {count})"
        )
    if rules.max_elements:
        return f"must have at most {rules.max_elements} elements for {rules.name} (got {count})"
    takers = ", ".join(r.name for r in VIDEO_MODEL_RULES.values() if r.max_elements)
    return f"{rules.name} takes no elements (models that do: {takers})"


def _elements(value: Any, info: ValidationInfo) -> tuple[str, ...]:
    items = sequence_items(value, "element ids")
    if len(items) > MAX_ANY_ELEMENTS:
        # ``model`` is validated first (absent when it is not valid); below this length the
        # model's limit is checked with its other rules, in ``VideoRequest._model_problems``.
        fail(too_many_elements(info.data.get("model"), len(items)))
    ids, problems = check_items(items, element_id)
    first: dict[str, int] = {}
    for position, found in ids.items():
        if found in first:
            problems.append(detail((position,), f"duplicates elements[{first[found]}] ({show(found)})"))
        else:
            first[found] = position
    raise_all(sorted(problems, key=lambda problem: problem["loc"]))
    return tuple(ids.values())


def _aspect_ratio(value: Any) -> str | None:
    return None if value is None else choice(value, ASPECT_RATIOS)


Elements = Annotated[tuple[str, ...], PlainValidator(_elements)]
AspectRatioField = Annotated[AspectRatio | None, PlainValidator(_aspect_ratio)]


_FAMILY_CLASSES: dict[Family, str] = {
    "text-to-video": "KlingTextToVideoOperator / TextToVideoRequest",
    "image-to-video": "KlingImageToVideoOperator / ImageToVideoRequest",
}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def family_model_validator(family: Family) -> PlainValidator:
    """The ``model`` field of a family: a model of the other family gets a message saying so."""
    names = tuple(rules.name for rules in VIDEO_MODEL_RULES.values() if rules.family == family)
    other = next(name for name in _FAMILY_CLASSES if name != family)
    other_names = tuple(rules.name for rules in VIDEO_MODEL_RULES.values() if rules.family == other)

    def check(value: Any) -> str:
        if isinstance(value, str) and exact_str(value) in other_names:
            listed = ", ".join(repr(n) for n in names)
            fail(
                f"must be one of {listed}, the {family} models (got {show(value)}: {_article(other)} {other} model, "
                f"for {_FAMILY_CLASSES[other]})"
            )
        return choice(value, names)

    return PlainValidator(check)


def render_prompt_shots(shots: tuple[Shot, ...]) -> str:
    """turbo text-to-video's multi-shot prompt, as its document's example writes it."""
    return " ".join(f"镜头 {shot.index}, {shot.duration}, {shot.prompt};" for shot in shots)


def prompt_shot_problems(prompt: str | None, duration: int, loc: tuple[str, ...]) -> list[InitErrorDetails]:
    """A hand-written ``镜头 n, m, words;`` prompt keeps the rules of customised shots."""
    if not prompt:
        return []
    found = list(PROMPT_SHOT.finditer(prompt))
    if not found:
        return []
    problems: list[InitErrorDetails] = []
    if len(found) > MAX_SHOTS:
        problems.append(detail(loc, f"has {len(found)} shots ('镜头 n, m, words;'): at most {MAX_SHOTS}"))
    total = 0
    for position, match in enumerate(found):
        number, seconds, words = match.group(1), match.group(2), match.group(3).strip()
        shown = show(match.group(0))
        if len(number) > 2 or int(number) != position + 1:
            problems.append(detail(loc, f"shot {shown} must be numbered {position + 1}: shots count from 1 in order"))
        if len(seconds) > 2 or not 1 <= int(seconds) <= duration:
            problems.append(detail(loc, f"shot {shown} must last from 1 to {duration} s"))
        else:
            total += int(seconds)
        if len(words) > MAX_SHOT_PROMPT_CHARS:
            message = f"shot {position + 1}'s words must be at most {MAX_SHOT_PROMPT_CHARS} characters"
            problems.append(detail(loc, message))
    if not problems and total != duration:
        problems.append(detail(loc, f"shot durations must add up to duration={duration} (they add up to {total})"))
    return problems


class VideoRequest(KlingRequest):
    """Common fields of the Kling 3.0 video models.

    ``sound`` and ``watermark`` are Python bools (sent as ``"on"``/``"off"`` and
    ``model_params.watermark_info``); ``shots`` are the per-shot prompts of
    ``multi_shot=True, shot_type="customize"``.
    """

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
    elements: Elements = ()

    @property
    def rules(self) -> VideoModelRules:
        """This request's model's row of :data:`~kling_provider.models.families.VIDEO_MODEL_RULES`."""
        return VIDEO_MODEL_RULES[self.model]

    @property
    def element_count(self) -> int:
        return len(self.elements)

    @property
    def prompt_required(self) -> bool:
        """Whether the vendor requires a prompt outside customize multi-shot."""
        return self.rules.prompt_required

    @property
    def _renders_prompt_shots(self) -> bool:
        return self.rules.prompt_shots and self.multi_shot and bool(self.shots)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VideoRequest:
        model_problems = self._model_problems()
        if model_problems:
            raise_all(model_problems)  # the other rules assume what the model allows
        raise_all([*self._multi_shot_problems(), *self._placeholder_problems(), *self._extra_problems()])
        return self

    def _model_problems(self) -> list[InitErrorDetails]:
        """What this model does not take at all, from its row of the rules table."""
        rules, model = self.rules, self.model
        problems: list[InitErrorDetails] = []
        if self.quality not in rules.qualities:
            listed = ", ".join(repr(q) for q in rules.qualities)
            problems.append(detail(("quality",), f"must be one of {listed} for {model} (got {show(self.quality)})"))
        if self.sound and not rules.sound:
            problems.append(detail(("sound",), f"{model} makes silent videos: it has no sound option (got True)"))
        if self.negative_prompt is not None and not rules.negative_prompt:
            problems.append(detail(("negative_prompt",), f"not accepted by {model} (say what you want in prompt)"))
        if self.watermark is not None and not rules.model_params:
            problems.append(detail(("watermark",), f"not accepted by {model} (it has no watermark option)"))
        if self.multi_shot and not rules.multi_shot:
            problems.append(detail(("multi_shot",), f"{model} has no multi-shot mode"))
        elif self.shot_type is not None and self.shot_type not in rules.shot_types:
            listed = ", ".join(repr(t) for t in rules.shot_types)
            message = f"must be {listed} for {model}: it has no other shot type (got {show(self.shot_type)})"
            problems.append(detail(("shot_type",), message))
        if len(self.elements) > rules.max_elements:
            problems.append(detail(("elements",), too_many_elements(model, len(self.elements))))
        return problems

    def _multi_shot_problems(self) -> list[InitErrorDetails]:
        problems: list[InitErrorDetails] = []
        customize = self.multi_shot and self.shot_type == "customize"
        if not self.multi_shot:
            if self.shot_type is not None:
                problems.append(detail(("shot_type",), "only allowed with multi_shot=True"))
            if self.shots:
                problems.append(detail(("shots",), "only allowed with multi_shot=True and shot_type='customize'"))
        elif self.shot_type is None:
            listed = " or ".join(repr(t) for t in self.rules.shot_types)
            problems.append(detail(("shot_type",), f"required when multi_shot=True: {listed}"))
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
        if self._renders_prompt_shots:
            problems += self._prompt_shot_problems()
        elif self.rules.prompt_shots:
            problems += prompt_shot_problems(self.prompt, self.duration, ("prompt",))
        return problems

    def _prompt_shot_problems(self) -> list[InitErrorDetails]:
        """Shots rendered into turbo's prompt: no separator inside, and the prompt's length."""
        problems: list[InitErrorDetails] = []
        for position, shot in enumerate(self.shots):
            if _SHOT_END.search(shot.prompt) or PROMPT_SHOT.search(shot.prompt):
                problems.append(
                    detail(
                        ("shots", position, "prompt"),
                        f"must not contain ';' or '镜头 n, m,' for {self.model}: its shots are written into "
                        "the prompt, where these end or start a shot",
                    )
                )
        rendered = render_prompt_shots(self.shots)
        if len(rendered) > MAX_PROMPT_CHARS:
            problems.append(
                detail(
                    ("shots",),
                    f"written into {self.model}'s prompt they take {len(rendered)} characters: "
                    f"at most {MAX_PROMPT_CHARS}",
                )
            )
        return problems

    def _placeholder_problems(self) -> list[InitErrorDetails]:
        count = self.element_count
        none = "no elements are given" if self.rules.max_elements else f"{self.model} takes no elements"
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
        if self.elements:
            params["element_list"] = [{"element_id": element} for element in self.elements]
        if self.multi_shot and not self.rules.prompt_shots:
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
        if self._renders_prompt_shots:
            body["prompt"] = render_prompt_shots(self.shots)
        elif self.prompt is not None:
            body["prompt"] = self.prompt
        elif self.prompt_required:
            body["prompt"] = ""  # the schema requires the key; EvoLink ignores it under customize
        if self.negative_prompt is not None:
            body["negative_prompt"] = self.negative_prompt
        body.update(self._inputs())
        body["duration"] = self.duration
        body["quality"] = self.quality
        if self.rules.sound:
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
        """Move ``model_params.element_list`` into ``kwargs`` (pop it)."""
        if "element_list" in params:
            items = params.pop("element_list")
            if isinstance(items, list):
                items = [item.get("element_id") if isinstance(item, Mapping) else item for item in items]
            kwargs["elements"] = items


def _is_str(value: Any, *options: str) -> bool:
    """``value`` is exactly one of ``options`` (never calling a foreign ``__eq__``)."""
    return isinstance(value, str) and exact_str(value) in options


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
                digits = exact_str(duration)
                if digits.isascii() and digits.isdigit() and len(digits) < 4:
                    item["duration"] = int(digits)
        shots.append(item)
    return shots
