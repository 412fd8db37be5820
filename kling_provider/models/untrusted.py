"""Looking at a value the caller passed in without running its code.

A DAG author's argument can be any object: a ``str`` subclass with its own ``__eq__`` or
``__str__``, an object whose ``__repr__`` raises, an integer too large to print. The checks and
the error messages must work on all of them (tests/reliability/test_hostile_input.py tries them).
Nothing here imports more than the standard library: operators use it when a DAG is parsed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["show"]

_SHOW_LIMIT = 60


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
