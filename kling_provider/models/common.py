"""Field types and checks shared by every request model.

Each check is strict and writes its own message (``must be an integer from 3 to 15 (got 20)``):
a wrong value caught here costs nothing, the same value sent to EvoLink may cost credits. Types
are not coerced (no ``"5"`` -> ``5``, no ``1.0`` -> ``1``, no ``"on"`` -> ``True``), because
a silently converted value is a guess about what the user meant.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import InitErrorDetails

from kling_provider.models.errors import build_request, detail, fail, nested, raise_all, to_kling_error
from kling_provider.models.untrusted import exact_str, show
from kling_provider.models.urls import check_callback_url, check_media_url

MIN_DURATION = 3
MAX_DURATION = 15
DEFAULT_DURATION = 5
MAX_PROMPT_CHARS = 2500

Quality = Literal["720p", "1080p", "4k"]
QUALITIES: tuple[Quality, ...] = ("720p", "1080p", "4k")

R = TypeVar("R", bound="KlingRequest")
T = TypeVar("T")


def plain_str(value: Any, what: str = "a string") -> str:
    """``value`` as an exact ``str`` (not a subclass with surprising methods), or a rule error."""
    if not isinstance(value, str):
        fail(f"must be {what} (got {show(value)})")
    text = exact_str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        fail("contains characters that cannot be sent as UTF-8 (unpaired surrogates)")
    return text


def text(value: Any, *, max_chars: int, blank_ok: bool = False) -> str:
    """A bounded, non-blank text; length in code points, as the vendor schema's ``maxLength`` counts."""
    result = plain_str(value)
    if len(result) > max_chars:
        fail(f"must be at most {max_chars} characters (got {len(result)})")
    if not blank_ok and not result.strip():
        fail("must not be empty or blank")
    return result


def strict_int(value: Any, low: int, high: int | None, what: str) -> int:
    """An ``int`` (or numpy-style integral), never a bool, float or numeric string."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(f"must be {what} (got {show(value)})")
    number = int(value)
    if number < low or (high is not None and number > high):
        fail(f"must be {what} (got {show(number)})")
    return number


def strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        fail(f"must be True or False (got {show(value)})")
    return value


def choice(value: Any, options: tuple[str, ...]) -> str:
    """One of ``options``, compared exactly (``"4K"`` is not ``"4k"``)."""
    if isinstance(value, str):
        exact = exact_str(value)
        if exact in options:
            return exact
    listed = ", ".join(repr(o) for o in options)
    fail(f"must be one of {listed} (got {show(value)})")


def _duration(value: Any) -> int:
    return strict_int(value, MIN_DURATION, MAX_DURATION, f"an integer from {MIN_DURATION} to {MAX_DURATION}")


def _prompt(value: Any) -> str | None:
    """Blank means "not given": the body then omits it (or sends ``""`` where it is required)."""
    if value is None:
        return None
    result = text(value, max_chars=MAX_PROMPT_CHARS, blank_ok=True)
    return result if result.strip() else None


def _quality(value: Any) -> str:
    return choice(value, QUALITIES)


def _callback(value: Any) -> str | None:
    return None if value is None else check_callback_url(value)


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else strict_bool(value)


def _media(value: Any) -> str | None:
    return None if value is None else check_media_url(value)


Duration = Annotated[int, PlainValidator(_duration)]
Prompt = Annotated[str | None, PlainValidator(_prompt)]
QualityField = Annotated[Quality, PlainValidator(_quality)]
StrictBool = Annotated[bool, PlainValidator(strict_bool)]
OptionalBool = Annotated[bool | None, PlainValidator(_optional_bool)]
CallbackUrl = Annotated[str | None, PlainValidator(_callback)]
MediaUrl = Annotated[str | None, PlainValidator(_media)]
RequiredMediaUrl = Annotated[str, PlainValidator(check_media_url)]


def model_name_validator(*names: str) -> PlainValidator:
    """The ``model`` field: one of the EvoLink model names a class serves."""
    return PlainValidator(lambda value: choice(value, names))


def sequence_items(value: Any, what: str) -> list[Any]:
    """A list or tuple (order matters, so no sets or dicts); ``None`` is an empty one."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        fail(f"must be a list of {what} (got {show(value)})")
    return list(value)


def check_items(items: Sequence[Any], check: Callable[[Any], T]) -> tuple[dict[int, T], list[InitErrorDetails]]:
    """``check`` on every item: the results by position, and a problem at each position that fails."""
    results: dict[int, T] = {}
    problems: list[InitErrorDetails] = []
    for position, item in enumerate(items):
        try:
            results[position] = check(item)
        except ValueError as err:  # PydanticCustomError is a ValueError
            problems.append(detail((position,), str(err), item))
    return results, problems


_PLACEHOLDER = re.compile(r"<<<element_([0-9]+)>>>")


def placeholder_problems(
    value: str | None, elements: int, loc: tuple[str | int, ...], no_elements: str = "no elements are given"
) -> list[InitErrorDetails]:
    """Each ``<<<element_N>>>`` must name an element that exists (1 <= N <= elements)."""
    if not value:
        return []
    problems = []
    for match in _PLACEHOLDER.finditer(value):
        digits = match.group(1)
        # Compare by length first: int() of a 5000-digit string raises in Python 3.11+.
        if len(digits.lstrip("0")) > 3 or not 1 <= int(digits) <= elements:
            shown = show(match.group(0))
            if elements:
                message = f"{shown} refers to an element that does not exist (elements 1 to {elements} are given)"
            else:
                message = f"{shown} refers to an element, but {no_elements}"
            problems.append(detail(loc, message))
    return problems


class KlingRequest(BaseModel):
    """Base of the request models: immutable, strict about unknown arguments, one body format.

    ``model_name`` is the default EvoLink model; ``removed_fields`` maps arguments the vendor
    dropped to the message that explains it.
    """

    #: defer_build: a request class builds its validator on first use, so the shared bases
    #: never build one and a DAG builds only the family it uses (bench #4).
    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, validate_default=False, defer_build=True
    )

    model_name: ClassVar[str] = ""
    removed_fields: ClassVar[Mapping[str, str]] = {}

    model: str

    def to_body(self) -> dict[str, Any]:
        """Exactly the JSON EvoLink accepts: unset optional fields left out, never a null."""
        raise NotImplementedError

    @classmethod
    def build(cls: type[R], **kwargs: Any) -> R:
        """Validate ``kwargs``; raises ``RequestValidationError`` (a ``KlingValidationError``)."""
        return build_request(cls, **kwargs)

    @classmethod
    def from_body(cls: type[R], body: Any) -> R:
        """Parse a vendor JSON body back into the model (simulators, round-trip checks)."""
        if not isinstance(body, Mapping):
            err = ValidationError.from_exception_data(
                cls.__name__, [detail((), f"must be a JSON object (got {show(body)})")]
            )
            raise to_kling_error(err, cls) from None
        return build_request(cls, **cls._kwargs_from_body(dict(body)))

    @classmethod
    def _kwargs_from_body(cls, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def replace(self: R, **changes: Any) -> R:
        """A validated copy with ``changes`` (``model_copy(update=...)`` would skip validation)."""
        kwargs = {name: getattr(self, name) for name in self.model_fields_set}
        kwargs.update(changes)
        return type(self).build(**kwargs)


def validate_nested(
    model: type[BaseModel], value: Any, loc: tuple[str | int, ...]
) -> tuple[Any, list[InitErrorDetails]]:
    """Validate a mapping into ``model``; errors come back located under ``loc``."""
    try:
        return model.model_validate(value), []
    except ValidationError as err:
        return None, nested(err, loc)


__all__ = [
    "DEFAULT_DURATION",
    "MAX_DURATION",
    "MAX_PROMPT_CHARS",
    "MIN_DURATION",
    "QUALITIES",
    "CallbackUrl",
    "Duration",
    "KlingRequest",
    "MediaUrl",
    "OptionalBool",
    "Prompt",
    "Quality",
    "QualityField",
    "RequiredMediaUrl",
    "StrictBool",
    "check_items",
    "choice",
    "detail",
    "placeholder_problems",
    "raise_all",
    "sequence_items",
    "strict_int",
    "text",
]
