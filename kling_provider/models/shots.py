"""Multi-shot mode: the shot type and the per-shot prompts (``model_params.multi_prompt``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainValidator
from pydantic_core import InitErrorDetails

from kling_provider.models.common import MAX_DURATION, choice, sequence_items, strict_int, text, validate_nested
from kling_provider.models.errors import detail, fail, raise_all
from kling_provider.models.untrusted import show

MAX_SHOTS = 6
MAX_SHOT_PROMPT_CHARS = 512

ShotType = Literal["customize", "intelligence"]
SHOT_TYPES: tuple[ShotType, ...] = ("customize", "intelligence")


def _shot_prompt(value: Any) -> str:
    return text(value, max_chars=MAX_SHOT_PROMPT_CHARS)


def _shot_duration(value: Any) -> int:
    return strict_int(value, 1, MAX_DURATION, f"a whole number of seconds from 1 to {MAX_DURATION}")


def _shot_index(value: Any) -> int | None:
    return None if value is None else strict_int(value, 1, MAX_SHOTS, f"an integer from 1 to {MAX_SHOTS}")


class Shot(BaseModel):
    """One shot of a ``shot_type="customize"`` video.

    ``index`` may be left out: the request numbers shots from 1 in the order given. The
    duration is an ``int`` here and a string in the JSON body, as EvoLink wants.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    prompt: Annotated[str, PlainValidator(_shot_prompt)]
    duration: Annotated[int, PlainValidator(_shot_duration)]
    index: Annotated[int | None, PlainValidator(_shot_index)] = None

    def to_body(self) -> dict[str, Any]:
        return {"index": self.index, "prompt": self.prompt, "duration": str(self.duration)}


def _shot_type(value: Any) -> str | None:
    return None if value is None else choice(value, SHOT_TYPES)


def _shots(value: Any) -> tuple[Shot, ...]:
    """Accept ``Shot``s, ``{"prompt", "duration"[, "index"]}`` mappings or ``(prompt, duration)``
    pairs; number them from 1 in order (explicit indexes must match that order)."""
    items = sequence_items(value, "shots")
    if len(items) > MAX_SHOTS:
        fail(f"must have at most {MAX_SHOTS} shots (got {len(items)})")
    shots: list[Shot] = []
    problems: list[InitErrorDetails] = []
    for position, item in enumerate(items):
        if isinstance(item, list | tuple) and len(item) == 2:
            item = {"prompt": item[0], "duration": item[1]}
        if not isinstance(item, Shot | Mapping):
            problems.append(
                detail(
                    (position,),
                    f"must be a Shot, a {{prompt, duration}} mapping or a (prompt, duration) pair (got {show(item)})",
                )
            )
            continue
        shot, errors = validate_nested(Shot, item, (position,))
        problems.extend(errors)
        if shot is None:
            continue
        if shot.index is None:
            shot = shot.model_copy(update={"index": position + 1})
        elif shot.index != position + 1:
            problems.append(
                detail(
                    (position, "index"),
                    f"must be {position + 1}: shots are numbered from 1 in order (got {shot.index})",
                )
            )
        shots.append(shot)
    raise_all(problems)
    return tuple(shots)


ShotTypeField = Annotated[ShotType | None, PlainValidator(_shot_type)]
Shots = Annotated[tuple[Shot, ...], PlainValidator(_shots)]
