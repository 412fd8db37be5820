"""The soak's verdict on small, hand-made request logs: what counts as billed twice, refused, lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checks import Generation, judge

VIDEO = b"\x00\x00\x00\x18ftypmp42 a video"


def _post(prompt: str, at: float, task_id: str | None, status: int = 200, fault: str | None = None) -> dict[str, Any]:
    return {
        "time": at,
        "method": "POST",
        "phase": "submit",
        "status": status,
        "task_id": task_id,
        "fault": fault,
        "prompt": prompt,
    }


def _generation(tmp_path: Path, saved_task: str | None) -> Generation:
    g = Generation(run=0, index=0, prompt="soak m run 0 scene 0", output=tmp_path / "video-0.mp4")
    g.ti_state = "success"
    g.saved_task = saved_task
    if saved_task:
        g.output.write_bytes(VIDEO)
    return g


def _judge(
    g: Generation,
    requests: list[dict[str, Any]],
    tasks: dict[str, Any],
    run_states: dict[str, str] | None = None,
    **kw: Any,
) -> Any:
    log = {"requests": requests, "tasks": tasks, "faults": []}
    return judge(
        [g],
        log,
        run_states=run_states or {"r": "success"},
        served=lambda _: VIDEO,
        decodes=lambda _: True,
        left_deferred=0,
        crashes=[],
        **kw,
    )


def test_a_refused_create_call_and_a_replacement_after_an_evolink_failure_are_not_double_billing(
    tmp_path: Path,
) -> None:
    g = _generation(tmp_path, "t2")
    g.stored = {"t1": 11.0, "t2": 31.0}
    requests = [_post(g.prompt, 5.0, None, 429, "status"), _post(g.prompt, 10.0, "t1"), _post(g.prompt, 30.0, "t2")]
    tasks = {"t1": {"status": "failed", "error": "service_error"}, "t2": {"status": "completed", "error": None}}
    verdict = _judge(g, requests, tasks)
    assert verdict.passed, [(i.name, i.detail) for i in verdict.invariants if not i.held]
    assert verdict.figures["posts_refused"] == 1 and verdict.figures["posts_replacing_evolink_failures"] == 1


def test_a_second_task_after_a_stored_one_is_double_billing(tmp_path: Path) -> None:
    g = _generation(tmp_path, "t2")
    g.stored = {"t1": 11.0, "t2": 31.0}
    tasks = {"t1": {"status": "completed", "error": None}, "t2": {"status": "completed", "error": None}}
    verdict = _judge(g, [_post(g.prompt, 10.0, "t1"), _post(g.prompt, 30.0, "t2")], tasks, worker_kills=[12.0])
    assert not verdict.passed and verdict.figures["double_billed"] == 1
    assert any("t1 was stored" in p for p in g.problems), g.problems


def test_a_generation_whose_worker_died_inside_the_create_call_is_held_not_lost(tmp_path: Path) -> None:
    g = _generation(tmp_path, None)
    g.ti_state, g.run_id = "failed", "r"
    tasks = {"t1": {"status": "completed", "error": None}}
    requests = [_post(g.prompt, 10.0, "t1")]
    verdict = _judge(g, requests, tasks, worker_kills=[10.4], run_states={"r": "failed"})
    assert verdict.passed, [i for i in verdict.invariants if not i.held]
    assert g.held == "t1" and verdict.figures["generations_held_after_kill"] == 1 and verdict.figures["lost"] == 0
    # Without a worker kill after the create call, the same log is a lost video.
    g2 = _generation(tmp_path, None)
    g2.ti_state, g2.run_id = "failed", "r"
    assert not _judge(g2, requests, tasks, worker_kills=[5.0], run_states={"r": "failed"}).passed
    assert any(p.startswith("lost") for p in g2.problems), g2.problems


def test_a_second_task_after_an_unstored_one_is_double_billing(tmp_path: Path) -> None:
    """The retry must stop for a person: paying again is a bug even after a kill."""
    g = _generation(tmp_path, "t2")
    g.stored = {"t2": 31.0}
    tasks = {"t1": {"status": "completed", "error": None}, "t2": {"status": "completed", "error": None}}
    requests = [_post(g.prompt, 10.0, "t1"), _post(g.prompt, 30.0, "t2")]
    verdict = _judge(g, requests, tasks, worker_kills=[10.4])
    assert not verdict.passed and verdict.figures["double_billed"] == 1


def test_a_missing_or_different_video_is_lost(tmp_path: Path) -> None:
    g = _generation(tmp_path, None)
    tasks = {"t1": {"status": "completed", "error": None}}
    verdict = _judge(g, [_post(g.prompt, 10.0, "t1")], tasks)
    assert verdict.figures["lost"] == 1 and not verdict.passed
    g2 = _generation(tmp_path, "t1")
    g2.output.write_bytes(b"something else")
    assert _judge(g2, [_post(g2.prompt, 10.0, "t1")], tasks).figures["lost"] == 1
