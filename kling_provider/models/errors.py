"""Turn pydantic's validation errors into one readable :class:`KlingValidationError`.

Operators and hooks catch a single exception type, and the person reading the Airflow log wants
every broken field with its rule in one go, not pydantic's internals. Inputs are shown
truncated: a 100 000-character prompt must not flood the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from kling_provider.exceptions import KlingValidationError
from kling_provider.models.untrusted import show

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

#: Error type of every rule this package checks itself; its message is final.
KLING_ERROR = "kling"

M = TypeVar("M", bound=BaseModel)


class Problem(NamedTuple):
    """One broken rule: ``path`` is the Python-facing field path, e.g. ``shots[1].prompt``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RequestValidationError(KlingValidationError):
    """A request model refused its arguments; ``problems`` lists every broken rule."""

    def __init__(self, message: str, *, problems: Sequence[Problem] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.problems = tuple(problems)


def rule(message: str) -> PydanticCustomError:
    """A final, human-written rule violation (braces in ``message`` are not templates)."""
    return PydanticCustomError(KLING_ERROR, "{message}", {"message": message})


def fail(message: str) -> NoReturn:
    raise rule(message)


def detail(loc: Sequence[str | int], message: str, value: Any = None) -> InitErrorDetails:
    return {"type": rule(message), "loc": tuple(loc), "input": value}


def raise_all(details: Iterable[InitErrorDetails], title: str = "request") -> None:
    """Raise every collected problem at once (no-op when there is none); pydantic prefixes the
    locations with the field being validated."""
    collected = list(details)
    if collected:
        raise ValidationError.from_exception_data(title, collected)


def nested(err: ValidationError, prefix: Sequence[str | int]) -> list[InitErrorDetails]:
    """Re-home the errors of a nested validation under ``prefix``, keeping their type."""
    out: list[InitErrorDetails] = []
    for item in err.errors(include_url=False):
        out.append(
            {
                "type": PydanticCustomError(item["type"], "{message}", {"message": item["msg"]}),
                "loc": (*prefix, *item["loc"]),
                "input": item.get("input"),
            }
        )
    return out


def format_path(loc: Sequence[str | int]) -> str:
    """``("shots", 1, "prompt")`` -> ``shots[1].prompt``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "request"


def _message(item: ErrorDetails, model: type[BaseModel], label: str) -> str:
    kind = item["type"]
    loc = item["loc"]
    if kind == KLING_ERROR:
        return item["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_field(loc, model, label)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of field names to values (got {show(item.get('input'))})"
    return f"{item['msg']} (got {show(item.get('input'))})"


def _unknown_field(loc: Sequence[str | int], model: type[BaseModel], label: str) -> str:
    """``label`` is the model asked for (the class default when it is not given, or not valid)."""
    name = str(loc[-1]) if loc else ""
    hints: Mapping[str, str] = getattr(model, "removed_fields", {})
    if len(loc) == 1 and name in hints:
        return hints[name]
    owner: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int) or owner is None:
            continue
        field = owner.model_fields.get(part)
        owner = _model_in(field.annotation) if field is not None else None
    message = f"unknown field for {label}"
    if owner is not None:
        import difflib  # only for a message: not imported with the models (bench #4)

        close = difflib.get_close_matches(name, list(owner.model_fields), n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return message


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``tuple[Shot, ...]`` and the like, for "did you mean" hints."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def to_kling_error(err: ValidationError, model: type[BaseModel], name: Any = None) -> RequestValidationError:
    """One readable multi-line error listing every problem; ``param`` is the first field.

    ``name`` is the model the caller asked for (``kling-o3-text-to-video``), named in the title
    and in unknown-field messages unless it is itself one of the problems."""
    items = err.errors(include_url=False)
    paths = [format_path(item["loc"]) for item in items]
    label = getattr(model, "model_name", model.__name__)
    if type(name) is str and len(name) <= 100 and "model" not in paths:
        label = name
    problems = [Problem(path, _message(item, model, label)) for path, item in zip(paths, items, strict=True)]
    noun = "problem" if len(problems) == 1 else "problems"
    lines = [f"Invalid {label} request ({len(problems)} {noun}):", *(f"  - {p}" for p in problems)]
    return RequestValidationError(
        "\n".join(lines),
        problems=problems,
        param=problems[0].path if problems else None,
        code="invalid_request",
    )


def build_request(model: type[M], /, **kwargs: Any) -> M:
    """Validate ``kwargs`` into ``model``; the one entry point operators and hooks use.

    Raises :class:`RequestValidationError` (a ``KlingValidationError``, so a ``ValueError``)
    naming every broken field; never pydantic's own exception.
    """
    try:
        return model(**kwargs)
    except ValidationError as err:
        raise to_kling_error(err, model, kwargs.get("model")) from None
