"""Mapped Kling operators are checked when the DAG file is parsed, like plain ones (issue 10).

DAG files that must fail to import, with the plain operator's message (or the item named), and
valid mapped DAGs (XComArg lists, literal lists, expand_kwargs with templated rows) that parse
and run with ``dag.test()`` against the simulator.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow_compat import DagBag
from test_operators_dag import DAGS

from kling_provider.exceptions import KlingValidationError
from kling_provider.operators.kling import KlingImageToVideoOperator, KlingTextToVideoOperator
from kling_provider.testing.media import mp4_info

HEADER = """
from datetime import datetime

from airflow.sdk import DAG, task

from kling_provider.operators.kling import (
    KlingCreateElementOperator,
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
)

with DAG(dag_id="broken", start_date=datetime(2026, 1, 1), schedule=None):

    @task
    def rows():
        return [{"prompt": "a kite"}]

"""

# (the mapped task, indented into the DAG above; what the import error must say)
BROKEN = [
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", duration=20).expand(prompt=rows())',
        "duration: must be an integer from 3 to 15 (got 20)",
        id="partial-duration",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", quality="HD").expand_kwargs(rows())',
        "quality: must be one of '720p', '1080p', '4k' (got 'HD')",
        id="partial-quality",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", duration=15, quality="1080p", max_credits=30)'
        ".expand(prompt=rows())",
        "max_credits: the request would cost 107.973 credits (~$1.50) for 15 s at 1080p, sound off, "
        "more than max_credits=30; nothing was submitted",
        id="partial-budget",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", quality="1080p", max_credits=10).expand_kwargs(rows())',
        "max_credits: the request would cost at least 21.5946 credits (~$0.30) for 3 s at 1080p",
        id="budget-least-with-mapped-duration",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t").expand_kwargs(['
        '{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "duration": 20}])',
        "expand_kwargs item 2: duration: must be an integer from 3 to 15 (got 20)",
        id="expand-kwargs-item",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", prompt="x").expand(duration=[5, 10, 16])',
        "expand duration item 2: duration: must be an integer from 3 to 15 (got 16)",
        id="expand-item",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", max_credits=50).expand_kwargs(['
        '{"prompt": "a"}, {"prompt": "b", "duration": 10}])',
        "expand_kwargs item 1: max_credits: the request would cost 54.0 credits",
        id="expand-kwargs-item-budget",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", duration=5).expand_kwargs([{"prompt": "a", "duration": 8}])',
        "expand_kwargs item 0: duration: given in partial() too",
        id="row-repeats-partial",
    ),
    pytest.param(
        'KlingImageToVideoOperator.partial(task_id="t", model="kling-v3-turbo-image-to-video", sound=True)'
        ".expand(image_start=rows())",
        "sound: kling-v3-turbo-image-to-video makes silent videos",
        id="model-rule",
    ),
    pytest.param(
        'KlingImageToVideoOperator.partial(task_id="t", image_start="https://e.com/a.png", prompt="<<<element_4>>>")'
        ".expand(elements=rows())",
        "elements: must have at most 3 elements for kling-v3-image-to-video",
        id="placeholder-needs-more-elements-than-the-model-takes",
    ),
    pytest.param(
        'KlingTextToVideoOperator.partial(task_id="t", timeout=-1).expand(prompt=rows())',
        "timeout: must be a positive number of seconds",
        id="operator-setting",
    ),
    pytest.param(
        'KlingCreateElementOperator.partial(task_id="t", element_description="d" * 101).expand(element_name=rows())',
        "element_description: must be at most 100 characters (got 101)",
        id="create-element",
    ),
]


@pytest.mark.parametrize(("mapped", "message"), BROKEN)
def test_a_broken_mapped_operator_fails_the_dag_file(tmp_path: Path, mapped: str, message: str) -> None:
    dag_file = tmp_path / "broken_dag.py"
    dag_file.write_text(HEADER + textwrap.indent(mapped, "    ") + "\n", encoding="utf-8")
    bag = DagBag(str(dag_file))
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert message in error, error
    assert "ValidationError" in error  # KlingValidationError or its RequestValidationError
    assert "never mapped" not in error


def test_the_plain_operator_says_the_same() -> None:
    """The mapped messages above are the plain operator's."""
    with pytest.raises(KlingValidationError, match=r"duration: must be an integer from 3 to 15 \(got 20\)"):
        KlingTextToVideoOperator(task_id="plain", prompt="x", duration=20)
    with pytest.raises(KlingValidationError, match=r"would cost 107\.973 credits \(~\$1\.50\) for 15 s at 1080p"):
        KlingTextToVideoOperator(task_id="plain", prompt="x", duration=15, quality="1080p", max_credits=30)


VALID = [
    # Mapped values that could make the rest valid are not refused: a DAG fails only if none could.
    'KlingTextToVideoOperator.partial(task_id="t").expand_kwargs(rows())',
    'KlingImageToVideoOperator.partial(task_id="t").expand_kwargs(rows())',  # rows may give image_start
    'KlingImageToVideoOperator.partial(task_id="t", image_urls=["https://e.com/a.png"], prompt="<<<image_1>>>")'
    ".expand_kwargs(rows())",  # rows may pick kling-o3-image-to-video
    'KlingTextToVideoOperator.partial(task_id="t", shots=[("a", 4), ("b", 6)]).expand(duration=rows())',
    'KlingTextToVideoOperator.partial(task_id="t", model="kling-o3-text-to-video", prompt="<<<element_2>>> runs")'
    ".expand(elements=rows())",
    'KlingTextToVideoOperator.partial(task_id="t", model="kling-v3-turbo-text-to-video").expand_kwargs(rows())',
    'KlingTextToVideoOperator.partial(task_id="t", quality="1080p", max_credits=30).expand_kwargs(rows())',
    'KlingCreateElementOperator.partial(task_id="t", element_description="d").expand_kwargs(rows())',
    'KlingTextToVideoOperator.partial(task_id="t").expand_kwargs([{"prompt": "{{ params.p }}"}, rows()])',
    'KlingTextToVideoOperator.partial(task_id="t", duration=5).expand_kwargs([{"prompt": "a", "duration": 8}], '
    "strict=False)",
]


@pytest.mark.parametrize("mapped", VALID)
def test_what_a_mapped_value_could_make_valid_parses(tmp_path: Path, mapped: str) -> None:
    dag_file = tmp_path / "valid_dag.py"
    dag_file.write_text(HEADER + textwrap.indent(mapped, "    ") + "\n", encoding="utf-8")
    bag = DagBag(str(dag_file))
    assert bag.import_errors == {}
    assert bag.dag_ids == ["broken"]


def test_partial_on_an_instance_is_still_refused() -> None:
    with pytest.raises(TypeError):
        KlingImageToVideoOperator(task_id="i", image_start="https://e.com/a.png").partial(task_id="x")


# -- valid mapped DAGs run ---------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.kling_simulator(generation_seconds=1)
def test_valid_mapped_dags_parse_and_run(kling_connection: Any, tmp_path: Path) -> None:
    dag = DagBag(str(DAGS / "kling_mapped_dags.py")).get_dag("mapped_teasers")
    assert dag is not None
    run = dag.test(run_conf={"out": str(tmp_path), "product": "lamp"})
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    mapped = {key: state for key, state in states.items() if key[1] >= 0}
    assert len(mapped) == 6 and all("success" in state for state in mapped.values()), states
    bodies = [r.json for r in kling_connection.sim.requests if r.phase == "submit"]
    assert len(bodies) == 6  # one POST per mapped index
    assert sorted(b["prompt"] for b in bodies) == [
        "a glass lamp",
        "a lamp in the rain",  # rendered row templates
        "a lamp on a white table",
        "a paper boat",
        "a red kite at dusk",
        "a red kite over hills",
    ]
    videos = ["literal-0.mp4", "literal-1.mp4", "row-0.mp4", "row-1.mp4", "xcom-0.mp4", "xcom-1.mp4"]
    # Each video with the sidecar that lets a re-run reuse it (docs/reliability.md), nothing else.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([*videos, *(f"{video}.kling.json" for video in videos)])
    assert mp4_info(tmp_path / "row-1.mp4").duration_s == pytest.approx(4, abs=0.05)
    assert mp4_info(tmp_path / "literal-1.mp4").duration_s == pytest.approx(4, abs=0.05)
