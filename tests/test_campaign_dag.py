"""The campaign example (dags_examples/kling_campaign.py) with ``dag.test()`` against the simulator.

The DAG runs as shipped, over its sample catalogue: one generation per product, one POST each,
and a manifest whose paths, credits and USD match the videos and the published prices. The
real-scheduler version (20 products, a cleared re-run) is tests/e2e/test_campaign_e2e.py.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest

from kling_provider.testing.media import mp4_info

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"
DAG_FILE = EXAMPLES / "kling_campaign.py"
SAMPLE = EXAMPLES / "kling_campaign_products.csv"


def _example_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kling_campaign_example", DAG_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


campaign = _example_module()


def _sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- the catalogue: a bad row is refused by its line, before anything is paid ----------------------


def test_rows_carry_the_operator_arguments_and_their_own_file(tmp_path: Path) -> None:
    rows = campaign.read_rows(SAMPLE, str(tmp_path / "day"))
    assert [r["sku"] for r in rows] == [r["sku"] for r in _sample_rows()]
    assert all(r["output_uri"] == f"{tmp_path}/day/{r['sku']}.mp4" for r in rows)
    arguments = campaign.teaser_arguments(rows[0])
    assert set(arguments) == {"prompt", "duration", "output_uri"}
    assert arguments["prompt"].startswith(rows[0]["product"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("product,scene\nmug,table\n", "the header lacks the column(s) ['sku']"),
        ("sku,product\n../x,mug\n", "line 2: sku '../x' must be 1-64 letters"),
        ("sku,product\nA,mug\nB,lamp\nA,bag\n", "line 4: sku 'A' is already on line 2"),
        ("sku,product\nA,\n", "line 2: product is empty"),
        ("sku,product,duration\nA,mug,5.5\n", "line 2: duration '5.5' must be whole seconds"),
        ("sku,product\n", "no product rows"),
    ],
)
def test_a_bad_catalogue_names_the_line_and_the_rule(tmp_path: Path, text: str, message: str) -> None:
    path = _write_csv(tmp_path / "catalogue.csv", text)
    with pytest.raises(ValueError) as raised:
        campaign.read_rows(path, str(tmp_path))
    assert str(raised.value).startswith(str(path)) and message in str(raised.value)


def test_the_manifest_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    campaign.write_atomically(target, "old\n")
    campaign.write_atomically(target, "new\n")
    assert target.read_text() == "new\n"

    with pytest.raises(UnicodeEncodeError):  # fails half-way through writing: the old file stays
        campaign.write_atomically(target, "newer " * 1000 + "\udc80")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"], "no temporary file left"


# -- the DAG, as shipped -----------------------------------------------------------------------


@pytest.fixture
def campaign_dag(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example DAG. dag.test() runs only DAGs it finds in a configured DAG bundle (else "the dag
    is not serialized"): dags_examples/ becomes a second bundle beside the tests' DAGs folder."""
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": "kling-examples", "classpath": local, "kwargs": {"path": str(EXAMPLES)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    from airflow_compat import DagBag

    # The campaign file alone: the review example beside it needs Airflow 3.1+ (HITL) by design.
    bag = DagBag(str(EXAMPLES / "kling_campaign.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("kling_campaign")


def _submits(sim: Any) -> list[str]:
    """The prompt of every create call (POST /v1/videos/generations) the simulator received."""
    return [r.json["prompt"] for r in sim.requests if r.method == "POST" and r.phase == "submit"]


def _local(uri: str) -> Path:
    return Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)


@pytest.mark.kling_simulator(generation_seconds=1)
def test_the_campaign_pays_once_per_product_and_nothing_when_run_again(
    kling_connection: Any, campaign_dag: Any, tmp_path: Path
) -> None:
    when = datetime(2026, 12, 1, tzinfo=timezone.utc)
    conf = {"output_dir": str(tmp_path)}
    run = campaign_dag.test(logical_date=when, run_after=when, run_conf=conf)

    assert "success" in str(run.state)
    products = _sample_rows()
    prompts = _submits(kling_connection.sim)
    assert len(prompts) == len(products) == 4
    for product in products:  # one paid generation per product, never two
        assert sum(p.startswith(product["product"] + " ") for p in prompts) == 1, product

    [manifest_path] = tmp_path.glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["dag_id"] == "kling_campaign" and manifest["run_id"] == run.run_id
    assert [i["sku"] for i in manifest["items"]] == [p["sku"] for p in products]
    for item, product in zip(manifest["items"], products, strict=True):
        video = _local(item["output_uri"])
        assert video == manifest_path.parent / f"{product['sku']}.mp4"
        assert mp4_info(video).duration_s == pytest.approx(int(product["duration"]), abs=0.1)
        # The published table: 720p without sound is 5.4 credits and $0.075 per second.
        assert item["credits"] == pytest.approx(5.4 * int(product["duration"]))
        assert item["usd"] == pytest.approx(0.075 * int(product["duration"]))
        assert item["evolink_task_id"]
        assert item["matches_request"] is True and item["poster_uri"] is None  # checked; no poster asked for
        assert item["reused"] is False
    assert manifest["totals"] == {
        "items": 4,
        "credits": pytest.approx(102.6),
        "usd": pytest.approx(1.425),
        "mismatched": 0,
        "reused": 0,
        "credits_this_run": pytest.approx(102.6),
        "usd_this_run": pytest.approx(1.425),
    }
    leftovers = [p.name for p in manifest_path.parent.iterdir() if p.name.endswith(".part")]
    assert not leftovers, "no partial video or manifest left behind"

    # The same run again: dag.test() replaces the run of that date by a fresh one (same run id) and
    # runs every task (clearing the run on a real Airflow: tests/e2e/test_campaign_e2e.py). The
    # videos are already saved from the same requests: nothing is paid.
    videos = {p.name: p.read_bytes() for p in manifest_path.parent.glob("*.mp4")}
    seen = len(kling_connection.sim.requests)
    again = campaign_dag.test(logical_date=when, run_after=when, run_conf=conf)

    assert "success" in str(again.state) and again.run_id == run.run_id
    assert [r for r in kling_connection.sim.requests[seen:] if r.method == "POST"] == [], "the re-run paid"
    assert {p.name: p.read_bytes() for p in manifest_path.parent.glob("*.mp4")} == videos
    rewritten = json.loads(manifest_path.read_text())
    assert rewritten["written_at"] > manifest["written_at"], "the manifest was not written again"
    assert [i["evolink_task_id"] for i in rewritten["items"]] == [i["evolink_task_id"] for i in manifest["items"]]
    # What the catalogue's videos cost is unchanged; this run reused all four and spent nothing.
    assert [i["reused"] for i in rewritten["items"]] == [True] * 4
    assert rewritten["totals"] == {
        **manifest["totals"],
        "reused": 4,
        "credits_this_run": 0,
        "usd_this_run": 0,
    }


@pytest.mark.kling_simulator(generation_seconds=1)
def test_a_catalogue_over_the_batch_budget_sends_nothing(
    kling_connection: Any, campaign_dag: Any, tmp_path: Path
) -> None:
    # 19 teasers of 10 s: 54 credits each passes the per-video cap (60), 1026 in all does not (1000).
    rows = "".join(f"S{n:02d},product {n},on a table,10\n" for n in range(19))
    catalogue = _write_csv(tmp_path / "big.csv", "sku,product,scene,duration\n" + rows)
    assert campaign.MAX_BATCH_CREDITS < 19 * 5.4 * 10

    run = campaign_dag.test(run_conf={"catalogue": str(catalogue), "output_dir": str(tmp_path / "out")})

    assert "failed" in str(run.state)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert "failed" in states["budget"] and "upstream_failed" in states["teaser"], states
    assert "upstream_failed" in states["write_manifest"], states
    assert kling_connection.sim.requests == [], "a request was sent for an over-budget batch"
    assert not (tmp_path / "out").exists()
