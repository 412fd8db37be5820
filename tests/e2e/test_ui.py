"""The connection form and the extra link as a user sees them: a real Airflow UI in headless Chromium.

A real api-server (with the scheduler, dag-processor and triggerer) runs with login required:
the simple auth manager knows one admin user and its password. Through the REST API the test
checks that the ``kling`` connection type and its fields are served; in Debian's ``chromium``,
driven by Playwright (which never downloads a browser here), it signs in on the login page, opens
Admin -> Connections -> Add Connection, picks the Kling type, checks the fields, labels and
placeholders, and saves a connection; then it runs a Kling DAG against the simulator, opens the
finished task and follows its "Kling video" extra link to the video.

Screenshots go to ``test-artifacts/ui/`` at the repository root (kept after the test, gitignored).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

from kling_provider._provider_info import PROVIDER_INFO
from kling_provider.testing.media import mp4_info

from .cluster import AirflowCluster
from .conftest import DAGS, SIM_KEY, running_cluster

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from kling_provider.testing import SimulatorServer

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
#: Debian's chromium; Playwright drives it instead of a browser of its own (none is downloaded).
CHROMIUM = "chromium"
#: Without the background-networking flags chromium's own connections (updates, sync, safe
#: browsing) are refused by a closed network and slow every page down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER = "kling-admin"
PASSWORD = f"pw-{uuid.uuid4().hex[:16]}"
#: Deferred, with a 2 s generation: without PollPolicy.settle the event beat the scheduler to the
#: deferring process's exit and Airflow failed the task (apache/airflow#72716).
DAG_ID = "kling_e2e_deferrable"
TASK_ID = "generate"
CONNECTION = PROVIDER_INFO["connection-types"][0]
HOOK_NAME = CONNECTION["hook-name"]
#: How long Playwright waits for anything on a page (its auto-waiting), in milliseconds.
UI_TIMEOUT_MS = 30_000


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_cluster(
    simulator_server: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowCluster]:
    """A real Airflow whose API and UI require a login (named like conftest's, whose failure
    report attaches the components' logs)."""
    root = tmp_path_factory.mktemp("airflow-ui")
    with running_cluster(root, simulator_server, [DAGS / "kling_e2e.py"], [DAG_ID], login=(USER, PASSWORD)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Iterator[Path]:
    """``test-artifacts/ui/``, emptied of an earlier run's screenshots; the new ones are listed
    on the terminal at the end (even when pytest captures output)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    yield ARTIFACTS
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for shot in sorted(ARTIFACTS.glob("*.png")):
                reporter.write_line(f"UI screenshot: {shot}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless Debian chromium on a fresh profile, driven by Playwright."""
    from playwright.sync_api import expect, sync_playwright

    # expect() waits 5 s by default, too short for a first page load on a busy machine.
    expect.set_options(timeout=UI_TIMEOUT_MS)
    executable = shutil.which(CHROMIUM)
    if executable is None:
        pytest.fail(
            "chromium is not installed: this test drives Debian's chromium package "
            "(`make test-slow` installs it; by hand: apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def page(airflow_cluster: AirflowCluster, browser: BrowserContext, artifacts: Path) -> Page:
    """A tab signed in through Airflow's real login page."""
    from playwright.sync_api import expect

    page = browser.pages[0] if browser.pages else browser.new_page()
    page.goto(airflow_cluster.base_url + "/")
    # Not signed in: the UI sends the browser to the simple auth manager's login page.
    expect(page).to_have_url(re.compile(r"/auth/login"))
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    expect(page.get_by_label("Password")).to_have_attribute("type", "password")
    _screenshot(page, artifacts, "01-login.png")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(airflow_cluster.base_url + "/")
    expect(page.get_by_role("button", name="Admin")).to_be_visible()
    return page


# -- helpers ------------------------------------------------------------------------------------


def _screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / name
    page.screenshot(path=str(path), animations="disabled")  # transitions jump to their end
    print(f"screenshot: {path}")
    return path


def _kling_meta(cluster: AirflowCluster) -> dict[str, Any]:
    """The ``kling`` entry of what the UI's connection form is built from."""
    metas = cluster.get("/ui/connections/hook_meta")
    kling = [meta for meta in metas if meta["connection_type"] == "kling"]
    served = [meta["connection_type"] for meta in metas]
    assert len(kling) == 1, f"connection type 'kling' served {len(kling)} times among {served}"
    return dict(kling[0])


# -- tests --------------------------------------------------------------------------------------


def test_rest_api_serves_the_kling_connection_form(airflow_cluster: AirflowCluster) -> None:
    # The login is real: without a token the API refuses.
    anonymous = httpx.get(airflow_cluster.base_url + "/ui/connections/hook_meta", timeout=30)
    assert anonymous.status_code in (401, 403), anonymous.text[:500]

    kling = _kling_meta(airflow_cluster)
    assert kling["hook_name"] == "Kling video (EvoLink)"
    assert kling["hook_class_name"] == "kling_provider.hooks.kling.KlingHook"

    standard = kling["standard_fields"]
    assert standard["host"] == {"hidden": False, "title": "API host", "placeholder": "https://api.evolink.ai"}
    # The key: relabelled and shown (the UI always renders the password field masked).
    assert standard["password"] == {"hidden": False, "title": "API key", "placeholder": "sk-..."}
    for name in ("url_schema", "login", "port"):
        assert standard[name] is not None and standard[name]["hidden"] is True, (name, standard[name])
    assert standard["description"] is None  # left as Airflow shows it

    extra = kling["extra_fields"]
    assert set(extra) == {"files_host", "rate_limit_rpm", "timeout"}, extra
    expected = {
        "files_host": ("Files host", ["string", "null"], "https://files-api.evolink.ai"),
        "rate_limit_rpm": ("Requests per minute", ["number", "null"], 120),
        "timeout": ("HTTP timeout (seconds)", ["number", "null"], 30),
    }
    for name, (title, types, default) in expected.items():
        field = extra[name]
        assert field["schema"]["title"] == title, field
        assert field["schema"]["type"] == types, field
        assert field["value"] == default == field["schema"]["default"], field
        assert field["description"] == CONNECTION["conn-fields"][name]["description"], field
        assert field["schema"].get("format") != "password", field  # none of these is a secret


def test_connection_form_in_the_browser(airflow_cluster: AirflowCluster, page: Page, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    expect(page).to_have_url(airflow_cluster.base_url + "/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()

    dialog.get_by_role("combobox").fill("Kling")
    dialog.get_by_role("option", name=HOOK_NAME).click()
    expect(dialog.get_by_text(HOOK_NAME, exact=True)).to_be_visible()

    # Standard fields: relabelled, with placeholders; the key masked.
    host = dialog.get_by_label("API host", exact=True)
    key = dialog.get_by_label("API key", exact=True)
    expect(host).to_be_visible()
    expect(host).to_have_attribute("placeholder", "https://api.evolink.ai")
    expect(host).to_have_attribute("type", "text")
    expect(key).to_be_visible()
    expect(key).to_have_attribute("placeholder", "sk-...")
    expect(key).to_have_attribute("type", "password")
    expect(dialog.get_by_label("Description", exact=True)).to_be_visible()
    # Hidden fields, and the standard labels that were replaced, are nowhere in the form.
    for label in ("Schema", "Login", "Port", "Host", "Password"):
        expect(dialog.get_by_label(label, exact=True)).to_have_count(0)
    for name in ("schema", "login", "port"):
        expect(dialog.locator(f"input[name={name}]")).to_have_count(0)
    key.fill(SIM_KEY)
    expect(key).to_have_value(SIM_KEY)
    expect(key).to_have_attribute("type", "password")  # typed, still masked
    _screenshot(page, artifacts, "02-connection-form-standard-fields.png")
    conn_id = f"kling_ui_{uuid.uuid4().hex[:6]}"
    dialog.get_by_label("Connection ID").fill(conn_id)
    host.fill("https://api.evolink.ai")

    # Extra fields (their section replaces the standard one): labels, descriptions, defaults.
    # (Airflow 3.3's label of a string extra field does not point at its input, so each field is
    # found as the group holding its label.)
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for spec in CONNECTION["conn-fields"].values():
        group = dialog.get_by_role("group").filter(has=page.get_by_text(spec["label"], exact=True))
        expect(group).to_have_count(1)
        expect(group).to_be_visible()
        expect(group.get_by_text(spec["description"], exact=True)).to_be_visible()
        numeric = "number" in spec["schema"]["type"]
        field = group.get_by_role("spinbutton") if numeric else group.get_by_role("textbox")
        expect(field).to_have_value(str(spec["schema"]["default"]))
        expect(field).not_to_have_attribute("type", "password")
    expect(host).to_be_hidden()  # the standard section has finished collapsing: a settled picture
    _screenshot(page, artifacts, "03-connection-form-extra-fields.png")

    # Saved from the form, the connection is a kling connection with the extras the hook reads.
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_text(conn_id, exact=True)).to_be_visible()
    _screenshot(page, artifacts, "04-connection-saved.png")
    saved = airflow_cluster.get(f"/api/v2/connections/{conn_id}")
    assert saved["conn_type"] == "kling" and saved["host"] == "https://api.evolink.ai", saved
    assert json.loads(saved["extra"]) == {
        name: spec["schema"]["default"] for name, spec in CONNECTION["conn-fields"].items()
    }, saved["extra"]
    assert saved["login"] in (None, "") and saved["port"] is None and saved["schema"] in (None, ""), saved
    assert saved["password"] and saved["password"] != "", saved  # stored (the API shows it masked)


def test_extra_link_leads_to_the_video(
    airflow_cluster: AirflowCluster,
    simulator: SimulatorServer,
    page: Page,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import Response, expect

    simulator.sim.generation_seconds = 2.0
    marker = f"ui-{uuid.uuid4().hex[:12]}"
    output = tmp_path / "video.mp4"
    run_id = airflow_cluster.trigger(DAG_ID, {"prompt": f"a ceramic coffee mug ({marker})", "output_uri": str(output)})
    state = airflow_cluster.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", airflow_cluster.diagnostics()
    video_url = str(airflow_cluster.xcom(DAG_ID, run_id, TASK_ID, key="kling_video_url"))
    assert video_url.startswith(simulator.base_url + "/files/results/"), video_url
    evolink_task = video_url.rsplit("/", 1)[1].split(".mp4", 1)[0]
    links = airflow_cluster.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK_ID}/links")
    assert links["extra_links"] == {"Kling video": video_url}, links

    # The finished task instance, as a user reaches it: the DAG, the run, the task, its details.
    page.goto(f"{airflow_cluster.base_url}/dags/{DAG_ID}")
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_role("table").get_by_role("link", name=run_id, exact=True).click()
    expect(page.get_by_role("link", name="Task Instances", exact=True)).to_be_visible()
    page.get_by_role("table").get_by_role("link", name=TASK_ID, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/tasks/{TASK_ID}$"))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    page.get_by_role("link", name="Details", exact=True).click()
    expect(page.get_by_role("heading", name="Extra Links")).to_be_visible()
    link = page.get_by_role("link", name="Kling video", exact=True)
    expect(link).to_have_attribute("href", video_url)
    _screenshot(page, artifacts, "05-task-extra-link.png")

    def is_the_video(response: Response) -> bool:
        return response.url == video_url and response.request.resource_type == "document"

    downloads_before = _downloads(simulator, evolink_task)
    with (
        page.context.expect_page() as new_tab,
        page.context.expect_event("response", predicate=is_the_video) as answer,
    ):
        link.click()  # a link to another origin opens in a new tab
    response = answer.value
    assert response.status == 200, (response.status, response.headers)
    assert response.headers.get("content-type") == "video/mp4", response.headers
    tab = new_tab.value
    tab.wait_for_load_state()
    assert tab.url == video_url
    # The browser plays what the simulator made: a real MP4 of the requested length.
    tab.wait_for_function(
        "() => { const v = document.querySelector('video'); return v !== null && v.readyState >= 1; }"
    )
    duration = tab.evaluate("() => document.querySelector('video').duration")
    assert abs(duration - mp4_info(output).duration_s) < 0.5, duration
    assert _downloads(simulator, evolink_task) > downloads_before  # the browser itself fetched it
    _screenshot(tab, artifacts, "06-kling-video.png")
    tab.close()


def _downloads(simulator: SimulatorServer, evolink_task: str) -> int:
    """Successful fetches of the result video the simulator answered."""
    return sum(
        1
        for r in simulator.sim.requests
        if r.phase == "download" and r.task_id == evolink_task and r.status in (200, 206)
    )
