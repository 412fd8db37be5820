"""The per-model tables in the operator guides say what kling_provider.models.families enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kling_provider.models import IMAGE_TO_VIDEO_MODEL_NAMES, TEXT_TO_VIDEO_MODEL_NAMES, VIDEO_MODEL_RULES

GUIDES = Path(__file__).resolve().parent.parent / "docs" / "operators"


def model_table(guide: str) -> dict[str, dict[str, str]]:
    """``{row name: {model: cell}}`` from the guide's "## The models" table."""
    text = (GUIDES / guide).read_text(encoding="utf-8")
    section = text[text.index("## The models") :]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [re.sub(r"`| \(default\)", "", cell).strip() for cell in rows[0].strip("|").split("|")][1:]
    table: dict[str, dict[str, str]] = {}
    for row in rows[2:]:
        name, *cells = (cell.strip() for cell in row.strip("|").split("|"))
        table[name.split(" ")[0]] = dict(zip(header, cells, strict=True))
    return table


@pytest.mark.parametrize(
    ("guide", "models"),
    [("text_to_video.md", TEXT_TO_VIDEO_MODEL_NAMES), ("image_to_video.md", IMAGE_TO_VIDEO_MODEL_NAMES)],
)
def test_the_models_table_matches_the_rules(guide: str, models: tuple[str, ...]) -> None:
    table = model_table(guide)
    assert list(table["quality"]) == list(models)
    for model in models:
        rules = VIDEO_MODEL_RULES[model]
        assert table["quality"][model] == ", ".join(rules.qualities), model
        assert table["sound"][model].startswith("yes" if rules.sound else "no"), model
        assert table["negative_prompt"][model].startswith("yes" if rules.negative_prompt else "no"), model
        assert table["watermark"][model].startswith("yes" if rules.model_params else "no"), model
        shot_cell = table["shot_type"][model]
        if rules.shot_types:
            assert shot_cell.startswith(", ".join(rules.shot_types)), model
        else:
            assert shot_cell == "no multi-shot", model
        elements = table["elements"][model]
        assert (elements == "no") == (rules.max_elements == 0), model
        if rules.max_elements and not rules.image_urls:
            assert f"up to {rules.max_elements}" in elements, model
