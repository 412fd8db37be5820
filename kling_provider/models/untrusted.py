"""Looking at a value the caller passed in without running its code.

A DAG author's argument can be any object: a ``str`` subclass with its own ``__eq__`` or
``__str__``, an object whose ``__repr__`` raises, an integer too large to print. The checks and
the error messages must work on all of them (tests/reliability/test_hostile_input.py tries them).
Nothing here imports more than the standard library: operators use it when a DAG is parsed.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

__all__ = ["exact_str", "show"]

_SHOW_LIMIT = 60
T = TypeVar("T")


@overload
def exact_str(value: str) -> str: ...
@overload
def exact_str(value: T) -> T: ...
def exact_str(value: Any) -> Any:
    """A ``str`` (or subclass) as an exact ``str``; anything else unchanged.

    Why: a ``str`` subclass's own methods (``__eq__``, ``__hash__``, ``strip``, ``__str__``,
    ``__fspath__``...) must never run in our checks or reach storage code, or a value could pass a
    check as one string and be used as another. ``str.__getitem__(value, slice(None))`` copies the
    characters without calling anything the subclass defines; compare, hash and strip the copy.
    """
    return str.__getitem__(value, slice(None)) if isinstance(value, str) else value


def show(value: Any, limit: int = _SHOW_LIMIT) -> str:
    """A short, safe ``repr`` for messages: truncated, and never raising on hostile objects."""
    if isinstance(value, int) and not isinstance(value, bool) and int.bit_length(value) > 64:
        return "a very large integer"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = f"{text[: limit - 3]}... ({str.__len__(value) if isinstance(value, str) else len(text)} chars)"
    return text
