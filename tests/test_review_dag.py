"""The review example (dags_examples/kling_review.py) on real Airflow with ``dag.test()``.

A person's answer is recorded the way Airflow's API records one (the HITL detail row, then the
parked task is resumed), from a thread while ``dag.test()`` waits for it; the browser version is
tests/e2e/test_review_ui.py. Generations run against the simulator over loopback HTTP.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.kling_simulator(generation_seconds=1),
    pytest.mark.newer_airflow("human-in-the-loop operators need Airflow 3.1+"),
]

DAGS = Path(__file__).parent / "dags"
DAG_ID = "kling_review"
NOTE = "make the mug matte black, no steam"


class Reviewer:
    """Answers the next pending review of ``kling_review`` as a person would, from a thread."""

    def __init__(self, option: str, note: str = "") -> None:
        self.option, self.note = option, note
        self.seen: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reviewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=5)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        try:
            self._answer()
        except BaseException as err:  # reported by __exit__
            self.error = err

    def _answer(self) -> None:
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from airflow.utils.timezone import utcnow
        from sqlalchemy import select

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with create_session() as session:
                row = session.execute(
                    select(HITLDetail, TaskInstance)
                    .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
                    .where(TaskInstance.dag_id == DAG_ID, HITLDetail.responded_at.is_(None))
                ).first()
                if row is not None and row[1].state == TaskInstanceState.AWAITING_INPUT:
                    detail, ti = row
                    self.seen = {
                        "subject": detail.subject,
                        "body": detail.body,
                        "options": list(detail.options),
                        "params": dict(detail.params),
                        "run_id": ti.run_id,
                    }
                    detail.responded_by = {"id": "reviewer", "name": "reviewer"}
                    detail.responded_at = utcnow()
                    detail.chosen_options = [self.option]
                    detail.params_input = {"note": self.note}
                    session.add(detail)
                    handle_event_submit(
                        TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                    )
                    return
            time.sleep(0.2)  # polling the database for the form, with a deadline
        raise TimeoutError("no review of kling_review was waiting for an answer within 120 s")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    return {"output_dir": str(tmp_path / "variants"), "publish_dir": str(tmp_path / "published")}


def run_review(conf: dict[str, Any], option: str, note: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """One run of the example, answered with ``option``; returns ({task: state/xcom}, what the form showed)."""
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS)).get_dag(DAG_ID)
    assert dag is not None
    with Reviewer(option, note) as reviewer:
        run = dag.test(run_conf=conf)
    tasks: dict[str, Any] = {"_run_state": str(run.state), "_run_id": run.run_id}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[key] = {"state": str(ti.state), "xcom": _xcom(ti)}
    return tasks, reviewer.seen


def _states(tasks: dict[str, Any]) -> dict[str, Any]:
    return {k: v if k.startswith("_") else v["state"] for k, v in tasks.items()}


def _xcom(ti: Any, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index, key=key)
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def _prompts(sim: Any) -> list[str]:
    return [str(r.json["prompt"]) for r in sim.requests if r.phase == "submit" and r.method == "POST"]


def _asset_events(name: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetModel.name == name)
            .all()
        )
        return [dict(r.extra or {}) for r in rows]


def test_picking_variant_2_publishes_exactly_variant_2(kling_connection: Any, folders: dict[str, str]) -> None:
    before = _asset_events("kling_review_published")
    tasks, form = run_review(folders, "Variant 2")
    assert "success" in tasks["_run_state"], _states(tasks)

    # The form: three variants, each with its saved copy, EvoLink link and credits; only the note to fill in.
    assert form["options"] == ["Variant 1", "Variant 2", "Variant 3", "Reject all"]
    assert set(form["params"]) == {"note"}, form["params"]
    assert form["subject"] == "mug-launch: pick a variant (round 1 of 3)"
    body = form["body"]
    variants = [tasks[f"generate[{i}]"]["xcom"] for i in range(3)]
    for number, variant in enumerate(variants, 1):
        assert f"### Variant {number}: " in body
        assert f"/kling/review-media/{DAG_ID}/" in body and f"/review/v{number}-video)" in body
        assert f"[EvoLink result]({variant['video_url']})" in body
        assert f"EvoLink task `{variant['id']}`" in body
    assert body.count("- **Credits**: 27 credits (estimate 27, about $0.38)") == 3
    assert "**Brief**: a ceramic coffee mug" in body

    # The decision and what was published: variant 2's bytes, under the campaign's name.
    decision = tasks["review"]["xcom"]
    assert decision["decision"] == "publish" and decision["variant"] == 2 and decision["option"] == "Variant 2"
    assert decision["chosen"] == variants[1]
    assert decision["responded_by"]["name"] == "reviewer"
    published = Path(folders["publish_dir"]) / "mug-launch.mp4"
    saved = [Path(v["output_uri"].removeprefix("file://")) for v in variants]
    assert published.read_bytes() == saved[1].read_bytes()
    assert published.read_bytes() not in (saved[0].read_bytes(), saved[2].read_bytes())  # variants differ
    assert sorted(p.name for p in published.parent.iterdir()) == ["mug-launch.mp4"], "no part files left"
    assert "success" in tasks["publish"]["state"]
    assert tasks["publish"]["xcom"]["uri"] == published.as_uri()

    # Downstream DAGs hear of it: one asset event naming the published file and its origin.
    events = _asset_events("kling_review_published")[len(before) :]
    assert len(events) == 1, events
    assert events[0]["uri"] == published.as_uri()
    assert events[0]["source_uri"] == variants[1]["output_uri"]
    assert events[0]["kling_task_id"] == variants[1]["id"] and events[0]["variant"] == 2
    assert events[0]["approved_by"] == "reviewer"

    # The other branch did not run: no next round.
    assert "skipped" in tasks["plan_next_round"]["state"] and "skipped" in tasks["next_round"]["state"]
    # The pictures: the contact sheet first, then each variant's poster frame, linking to its video.
    media = _xcom_of(tasks["_run_id"], "review", "kling_review_media")
    expected = {"sheet": "image/jpeg"}
    for n in (1, 2, 3):
        expected.update({f"v{n}-video": "video/mp4", f"v{n}-poster": "image/jpeg"})
    assert {k: v["type"] for k, v in media.items()} == expected
    assert media["sheet"]["uri"] == tasks["sheet"]["xcom"]["uri"]
    for n, variant in enumerate(variants, 1):
        assert media[f"v{n}-poster"]["uri"] == variant["poster_uri"]
        assert media[f"v{n}-video"]["uri"] == variant["output_uri"]
        poster = re.search(rf"\[!\[Variant {n}: poster frame\]\((\S+/v{n}-poster)\)\]\((\S+/v{n}-video)\)", body)
        assert poster is not None, body
    assert re.search(r"\[!\[Contact sheet of all variants\]\((\S+/sheet)\)\]\(\1\)", body), body


def _xcom_of(run_id: str, task_id: str, key: str) -> Any:
    class _Ti:
        dag_id, map_index = DAG_ID, -1

    ti = _Ti()
    ti.run_id, ti.task_id = run_id, task_id  # type: ignore[attr-defined]
    return _xcom(ti, key)


def test_a_rejection_starts_the_next_round_with_the_note_in_every_prompt(
    kling_connection: Any, folders: dict[str, str]
) -> None:
    sim = kling_connection.sim
    tasks, _ = run_review({**folders, "max_rounds": 2}, "Reject all", NOTE)
    assert "success" in tasks["_run_state"], _states(tasks)
    assert tasks["review"]["xcom"]["decision"] == "reject" and tasks["review"]["xcom"]["note"] == NOTE
    assert "skipped" in tasks["publish"]["state"]
    assert not Path(folders["publish_dir"]).exists()
    conf = tasks["plan_next_round"]["xcom"]
    assert conf["round"] == 2 and conf["notes"] == [NOTE] and conf["max_rounds"] == 2
    assert "success" in tasks["next_round"]["state"]
    round_one = _prompts(sim)
    assert len(round_one) == 3 and not any(NOTE in p for p in round_one)

    # The run next_round started, with that conf (dag.test() does not run it: run it the same way).
    triggered = _runs_triggered_by(tasks["_run_id"])
    assert [r["conf"] for r in triggered] == [conf]
    tasks2, form2 = run_review(conf, "Reject all", "still too glossy")
    assert form2["subject"] == "mug-launch: pick a variant (round 2 of 2)"
    assert f"**Notes from earlier rounds**: {NOTE}" in form2["body"]
    round_two = _prompts(sim)[3:]
    assert len(round_two) == 3
    for prompt in round_two:
        assert prompt.endswith(f"\nReviewer notes: {NOTE}."), prompt
    assert len({re.sub(r"\nReviewer notes:.*", "", p, flags=re.S) for p in round_two}) == 3  # three angles
    # The last round's rejection publishes nothing and starts nothing.
    assert "skipped" in tasks2["plan_next_round"]["state"] and "skipped" in tasks2["next_round"]["state"]
    assert "skipped" in tasks2["publish"]["state"]
    assert _runs_triggered_by(tasks2["_run_id"]) == []


def _runs_triggered_by(run_id: str) -> list[dict[str, Any]]:
    """DAG runs of kling_review other than ``run_id`` created after it (what next_round triggered)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        this = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=run_id).one()
        later = (
            session.query(DagRun)
            .filter(DagRun.dag_id == DAG_ID, DagRun.run_id != run_id, DagRun.id > this.id)
            .order_by(DagRun.id)
            .all()
        )
        return [{"run_id": r.run_id, "conf": dict(r.conf or {})} for r in later if r.run_type != "manual" or r.conf]


@pytest.fixture(autouse=True)
def _fresh_runs() -> Iterator[None]:
    """Each test sees only its own runs of kling_review (others may have left some)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == DAG_ID).delete()
    yield
