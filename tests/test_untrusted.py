"""``exact_str`` copies a str subclass without running any of its methods (the hostile-input suite,
tests/reliability/test_hostile_input.py, drives the operators with such values end to end)."""

from __future__ import annotations

from typing import Any

from kling_provider.models.untrusted import exact_str


class _Trap(str):
    """A str whose every method a check might call raises."""

    def _trap(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a method of the str subclass ran")

    __eq__ = __ne__ = __hash__ = __str__ = __getitem__ = __len__ = __iter__ = __contains__ = _trap  # type: ignore[assignment]
    strip = lower = split = encode = __fspath__ = _trap  # type: ignore[assignment]


def test_a_str_subclass_becomes_an_exact_str_without_running_its_methods() -> None:
    copy = exact_str(_Trap("s3://bucket/v.mp4"))
    assert type(copy) is str
    assert copy == "s3://bucket/v.mp4" and copy.strip() == copy


def test_anything_else_is_returned_as_it_is() -> None:
    plain, other = "kling_default", object()
    assert exact_str(plain) is plain
    assert exact_str(other) is other and exact_str(None) is None and exact_str(5) == 5
