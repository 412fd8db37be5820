"""The docs under docs/ stay in step with the code: every operator argument, every vendor error code."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseOperator

from kling_provider import exceptions
from kling_provider.operators.kling import (
    KlingCreateElementOperator,
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = {
    "text_to_video.md": KlingTextToVideoOperator,
    "image_to_video.md": KlingImageToVideoOperator,
    "create_element.md": KlingCreateElementOperator,
}
# | `name` | default | templated | meaning |
_ROW = re.compile(r"^\| `(\w+)` \| (.+?) \| (yes|no) \| .+\|$", re.MULTILINE)


def own_arguments(operator: type[BaseOperator]) -> dict[str, inspect.Parameter]:
    """The arguments this provider adds, from the operator down to (not including) BaseOperator."""
    arguments: dict[str, inspect.Parameter] = {}
    for cls in operator.__mro__:
        if cls is BaseOperator or not issubclass(cls, BaseOperator):
            break
        if "__init__" in cls.__dict__:
            for name, param in inspect.signature(cls.__dict__["__init__"]).parameters.items():
                if name not in ("self", "kwargs"):
                    arguments.setdefault(name, param)
    return arguments


def documented(guide: str) -> dict[str, tuple[str, bool]]:
    text = (DOCS / "operators" / guide).read_text(encoding="utf-8")
    rows = _ROW.findall(text)
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)), f"{guide}: an argument is listed twice"
    return {name: (default, templated == "yes") for name, default, templated in rows}


@pytest.mark.parametrize(("guide", "operator"), GUIDES.items())
def test_every_argument_is_documented_and_nothing_else(guide: str, operator: type[BaseOperator]) -> None:
    assert set(documented(guide)) == set(own_arguments(operator))


@pytest.mark.parametrize(("guide", "operator"), GUIDES.items())
def test_documented_defaults_and_templating_match_the_code(guide: str, operator: type[BaseOperator]) -> None:
    arguments = own_arguments(operator)
    for name, (default, templated) in documented(guide).items():
        expected: Any = arguments[name].default
        if expected is inspect.Parameter.empty:
            assert default == "(required)", name
        else:
            assert default.startswith("`") and default.endswith("`"), (name, default)
            assert eval(default.strip("`"), {"timedelta": timedelta}) == expected, name
        assert templated == (name in operator.template_fields), name


def test_troubleshooting_covers_every_task_error_code_and_http_error() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    codes = exceptions.NON_RETRYABLE_TASK_CODES | exceptions.RETRYABLE_TASK_CODES
    assert codes, "the code sets are not empty"
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"docs/troubleshooting.md lacks {missing}"
    statuses = re.findall(r"^\| (\d{3})\b", text, re.MULTILINE)
    assert set(statuses) >= {"400", "401", "402", "403", "404", "429", "500", "502", "503"}
    for code in ("invalid_request", "unauthorized", "insufficient_quota", "model_access_denied", "task_not_found"):
        assert f"`{code}`" in text, code


def test_the_cost_guide_has_the_price_table_the_code_uses() -> None:
    from kling_provider.pricing import PRICE_TABLES

    text = (DOCS / "cost.md").read_text(encoding="utf-8")
    for (quality, sound), rate in PRICE_TABLES["kling-v3-text-to-video"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {quality} |"))
        cell = row.split("|")[3 if sound else 2]
        assert f"{rate.credits_per_second} credits/s" in cell, (quality, sound, cell)


def test_the_readme_links_the_guides() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    guides = [f"docs/operators/{guide}" for guide in GUIDES] + [
        "docs/cost.md",
        "docs/reliability.md",
        "docs/troubleshooting.md",
        "docs/lineage.md",
        "docs/scaling.md",
        "docs/campaigns.md",
        "docs/review.md",
        "docs/examples/offline_testing/README.md",
    ]
    for link in guides:
        assert (DOCS.parent / link).is_file(), link
        assert f"]({link})" in readme, f"README does not link {link}"
