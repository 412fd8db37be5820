"""A reviewer at work: the ``kling_review`` example on a real Airflow, answered in headless Chromium.

Scheduler, triggerer, dag-processor and api-server run as separate processes (tests/e2e/cluster.py)
with the login required, and the browser signs in through Airflow's own page (the fixtures of
tests/e2e/test_ui.py). The reviewer opens Required Actions from the home page, sees the variants
(contact sheet, poster frames, links, credits), and picks one or rejects them all with a note.
Screenshots go to ``test-artifacts/review/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from .cluster import AirflowCluster, wait_for
from .conftest import running_cluster
from .test_ui import PASSWORD, USER, _screenshot, browser, page

#: test_ui's fixtures, reused here: its signed-in ``page`` on its ``browser`` (with this module's
#: ``airflow_cluster`` and ``artifacts``).
REUSED_FIXTURES = (browser, page)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from kling_provider.testing import SimulatorServer

pytestmark = [pytest.mark.slow, pytest.mark.newer_airflow("human-in-the-loop operators need Airflow 3.1+")]

EXAMPLE = Path(__file__).resolve().parents[2] / "dags_examples" / "kling_review.py"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "review"
DAG_ID = "kling_review"
#: Short generations: the review, not the wait, is under test.
GENERATION_SECONDS = 2.0


@pytest.fixture(scope="module")
def airflow_cluster(
    simulator_server: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowCluster]:
    """A real Airflow with the review example, requiring a login (named like conftest's, whose
    failure report attaches the components' logs)."""
    root = tmp_path_factory.mktemp("airflow-review")
    with running_cluster(root, simulator_server, [EXAMPLE], [DAG_ID], login=(USER, PASSWORD)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """``test-artifacts/review/``, emptied of an earlier run's screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def fast(simulator: SimulatorServer) -> SimulatorServer:
    simulator.sim.generation_seconds = GENERATION_SECONDS
    return simulator


def _start(cluster: AirflowCluster, tmp_path: Path, **conf: Any) -> tuple[str, dict[str, str]]:
    """A run of the example on this test's folders, waiting for its review; returns (run id, folders)."""
    folders = {"output_dir": str(tmp_path / "variants"), "publish_dir": str(tmp_path / "published")}
    run_id = cluster.trigger(DAG_ID, {**folders, "campaign": f"mug-{uuid.uuid4().hex[:6]}", **conf})
    _await_review(cluster, run_id)
    return run_id, folders


def _await_review(cluster: AirflowCluster, run_id: str) -> None:
    """Until the review waits for its answer, and the scheduler has seen its worker exit.

    An answer given before the scheduler handles the pausing worker's exit (seconds later on a
    loaded machine) fails the resumed review: Airflow takes that stale exit for the resumed try
    ending ("TI was not in a state where it could be marked as running", apache/airflow#72716,
    open in 3.3). A person takes longer than that to read the form; the test must wait for it."""
    cluster.wait_for_task_state(DAG_ID, run_id, "review", ["awaiting_input"], timeout=240)
    exit_seen = f"for task instance TaskInstanceKey(dag_id='{DAG_ID}', task_id='review', run_id='{run_id}'"
    wait_for(
        "the scheduler to handle the pausing review's exit",
        lambda: exit_seen in cluster.read_logs("scheduler") or None,
        timeout=120,
        check=cluster.check_alive,
    )


def _variants(cluster: AirflowCluster, run_id: str) -> list[dict[str, Any]]:
    """The three generate results (XCom), in map-index order."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/generate/xcomEntries/return_value"
    return [cluster.get(path, map_index=i, deserialize="true")["value"] for i in range(3)]


def _open_review(page: Page, cluster: AirflowCluster, run_id: str) -> Locator:
    """From the home page, as a reviewer goes: Required Actions, then this run's review."""
    from playwright.sync_api import expect

    page.goto(cluster.base_url + "/")
    page.get_by_role("button", name=re.compile("Required Actions")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile("Required Actions"))).to_be_visible()
    run_date = run_id.split("__", 1)[1][:19].replace("T", " ")
    dialog.get_by_role("row").filter(has_text=run_date).click()
    expect(dialog.get_by_text(re.compile(r": pick a variant \(round"))).to_be_visible()
    return dialog


def _loaded_images(page: Page, dialog: Locator) -> dict[str, int]:
    """alt text -> natural width of each picture in the form, once the browser has decoded them all."""
    images = dialog.get_by_role("img", name=re.compile("poster frame|Contact sheet"))
    page.wait_for_function(
        """() => [...document.querySelectorAll('[role=dialog] img')]
              .filter(i => /poster frame|Contact sheet/.test(i.alt))
              .every(i => i.complete && i.naturalWidth > 0)"""
    )
    return {img.get_attribute("alt") or "": int(img.evaluate("i => i.naturalWidth")) for img in images.all()}


def test_reviewer_picks_variant_2_in_the_browser_and_exactly_it_is_published(
    airflow_cluster: AirflowCluster, fast: SimulatorServer, page: Page, artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    run_id, folders = _start(airflow_cluster, tmp_path)
    variants = _variants(airflow_cluster, run_id)
    dialog = _open_review(page, airflow_cluster, run_id)

    # What the reviewer sees: the sheet and three poster frames (decoded by the browser, served by
    # the API server to this signed-in session), each variant's links and credits.
    images = _loaded_images(page, dialog)
    assert set(images) == {"Contact sheet of all variants"} | {f"Variant {n}: poster frame" for n in (1, 2, 3)}
    assert all(width >= 320 for width in images.values()), images
    for number, variant in enumerate(variants, 1):
        expect(dialog.get_by_role("heading", name=re.compile(rf"^Variant {number}: "))).to_be_visible()
        expect(dialog.get_by_role("link", name="EvoLink result").nth(number - 1)).to_have_attribute(
            "href", variant["video_url"]
        )
    expect(dialog.get_by_text("27 credits (estimate 27, about $0.38)")).to_have_count(3)
    # "saved copy" opens the saved file itself, through the API server, for this session only.
    saved_links = dialog.get_by_role("link", name="saved copy")
    expect(saved_links).to_have_count(3)
    second = page.request.get(str(saved_links.nth(1).get_attribute("href")))
    assert second.status == 200 and second.headers["content-type"] == "video/mp4", second.headers
    assert second.headers.get("accept-ranges") == "bytes"  # the player can seek
    assert second.body() == Path(variants[1]["output_uri"].removeprefix("file://")).read_bytes()
    _screenshot(page, artifacts, "02-review-form.png")
    dialog.get_by_role("img", name="Variant 2: poster frame").scroll_into_view_if_needed()
    _screenshot(page, artifacts, "03-review-variant-2.png")

    # The pick.
    answer = dialog.get_by_role("button", name="Variant 2", exact=True)
    answer.scroll_into_view_if_needed()
    expect(answer).to_be_enabled()
    _screenshot(page, artifacts, "04-review-options.png")
    answer.click()
    state = airflow_cluster.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", airflow_cluster.run_report(DAG_ID, run_id)

    decision = airflow_cluster.xcom(DAG_ID, run_id, "review")
    assert (decision["decision"], decision["variant"], decision["responded_by"]["name"]) == ("publish", 2, USER)
    campaign = airflow_cluster.dag_run(DAG_ID, run_id)["conf"]["campaign"]
    published = Path(folders["publish_dir"]) / f"{campaign}.mp4"
    saved = [Path(v["output_uri"].removeprefix("file://")).read_bytes() for v in variants]
    assert published.read_bytes() == saved[1]
    assert saved[1] not in (saved[0], saved[2])  # the variants differ: a mix-up would show
    assert airflow_cluster.task_instance(DAG_ID, run_id, "next_round")["state"] == "skipped"
    events = airflow_cluster.get("/api/v2/assets/events", name_pattern="kling_review_published")["asset_events"]
    mine = [e for e in events if e["extra"].get("uri") == published.as_uri()]
    assert len(mine) == 1 and mine[0]["extra"]["kling_task_id"] == variants[1]["id"], events


def test_reviewer_rejects_with_a_note_and_the_next_round_asks_for_it(
    airflow_cluster: AirflowCluster, fast: SimulatorServer, page: Page, artifacts: Path, tmp_path: Path
) -> None:

    from playwright.sync_api import expect

    sim = fast.sim
    note = f"matte black glaze, no steam ({uuid.uuid4().hex[:6]})"
    run_id, folders = _start(airflow_cluster, tmp_path, max_rounds=2)
    submitted = len(_prompts(sim))
    dialog = _open_review(page, airflow_cluster, run_id)
    # (Airflow 3.3's label of a string form field does not point at its input: find the field's group.)
    group = dialog.get_by_role("group").filter(has=page.get_by_text("Note for the next round", exact=True))
    field = group.get_by_role("textbox")
    field.fill(note)
    expect(field).to_have_value(note)
    reject = dialog.get_by_role("button", name="Reject all", exact=True)
    reject.scroll_into_view_if_needed()
    _screenshot(page, artifacts, "05-review-reject-with-note.png")
    reject.click()
    state = airflow_cluster.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", airflow_cluster.run_report(DAG_ID, run_id)
    assert airflow_cluster.task_instance(DAG_ID, run_id, "publish")["state"] == "skipped"

    # next_round started a run of the same DAG: round 2 with the note, whose requests carry it.
    def next_run() -> dict[str, Any] | None:
        runs = airflow_cluster.get(f"/api/v2/dags/{DAG_ID}/dagRuns", order_by="-id")["dag_runs"]
        later = [r for r in runs if (r.get("conf") or {}).get("notes") == [note]]
        return later[0] if later else None

    second = wait_for("the next round's run", next_run, timeout=60)
    first_conf = airflow_cluster.dag_run(DAG_ID, run_id)["conf"]
    assert second["conf"]["round"] == 2 and second["conf"]["campaign"] == first_conf["campaign"]
    _await_review(airflow_cluster, second["dag_run_id"])
    round_two = _prompts(sim)[submitted:]
    assert len(round_two) == 3, round_two
    assert all(prompt.endswith(f"\nReviewer notes: {note}.") for prompt in round_two), round_two
    assert not any(note in prompt for prompt in _prompts(sim)[:submitted])

    # The second round's form shows the note; answered through the REST API, the last round's
    # rejection ends the chain: nothing published, no third round.
    form = airflow_cluster.get(_hitl_path(second["dag_run_id"]))
    assert f"**Notes from earlier rounds**: {note}" in form["body"] and form["subject"].endswith("(round 2 of 2)")
    answer = {"chosen_options": ["Reject all"], "params_input": {"note": "still not right"}}
    response = airflow_cluster.api.patch(_hitl_path(second["dag_run_id"]), json=answer)
    assert response.status_code == 200, response.text
    state = airflow_cluster.wait_for_run(DAG_ID, second["dag_run_id"], timeout=120)
    assert state == "success", airflow_cluster.run_report(DAG_ID, second["dag_run_id"])
    for task_id in ("publish", "plan_next_round", "next_round"):
        assert airflow_cluster.task_instance(DAG_ID, second["dag_run_id"], task_id)["state"] == "skipped", task_id
    assert not Path(folders["publish_dir"]).exists()


def _hitl_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/review/-1/hitlDetails"


def _prompts(sim: Any) -> list[str]:
    return [str(r.json["prompt"]) for r in sim.requests if r.phase == "submit" and r.method == "POST"]
