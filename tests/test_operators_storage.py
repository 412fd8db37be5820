"""Where the video goes: object storage (a real S3 API on loopback), asset events, the extra link.

The DAGs live in tests/dags/kling_storage_dags.py and run with ``dag.test()`` against the
simulator over loopback HTTP. ``s3://`` goes through Airflow's own object storage
(``ObjectStoragePath`` + the Amazon provider's s3fs filesystem) to moto's standalone server,
started in this process on a free loopback port. The test bucket keeps versions, so a test can
tell not just what the final key holds but everything that was ever written to it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kling_provider.testing import Fault
from kling_provider.testing.media import mp4_info

DAGS = Path(__file__).parent / "dags"
CONN_ID = "aws_moto"
ALIAS = "kling-videos"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


# -- a loopback S3 ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Bucket:
    name: str
    client: Any  # a boto3 S3 client on the loopback server

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def versions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every version ever written (and delete markers), of one key or of all."""
        listing = self.client.list_object_versions(Bucket=self.name)
        found = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
        return [v for v in found if key is None or v["Key"] == key]

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A fresh versioned bucket, and the Airflow connection ``aws_moto`` pointing at the server."""
    import boto3
    from airflow.sdk.io.store import _STORE_CACHE

    extra = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
    )
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"kling-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    # Airflow caches one filesystem per (protocol, connection) for the process: start clean.
    _STORE_CACHE.pop(f"s3-{CONN_ID}", None)
    yield S3Bucket(name, client)
    _STORE_CACHE.pop(f"s3-{CONN_ID}", None)


# -- running DAGs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    dag_id: str
    run_id: str
    state: str
    ds: str
    tasks: dict[str, str]

    def xcom(self, key: str = "return_value", task_id: str = "video") -> Any:
        return xcom_value(self.dag_id, self.run_id, key, task_id)


def xcom_value(dag_id: str, run_id: str, key: str, task_id: str = "video") -> Any:
    """An XCom as stored in the metadata database; None when there is none."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key).one_or_none()
        return None if row is None else XComModel.deserialize_value(row)


def run_dag(dag_id: str, **conf: Any) -> Run:
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS / "kling_storage_dags.py")).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {DAGS}"
    run = dag.test(run_conf={k: str(v) for k, v in conf.items()})
    return Run(
        dag_id=dag_id,
        run_id=run.run_id,
        state=str(run.state),
        ds=run.logical_date.strftime("%Y-%m-%d"),
        tasks={ti.task_id: str(ti.state) for ti in run.get_task_instances()},
    )


def posts(sim: Any) -> int:
    return int(sim.count(method="POST", phase="submit"))


def served_video(sim: Any) -> bytes:
    """The bytes the simulator serves for its (only) task's result link."""
    (task,) = sim.tasks
    return sim._video(task.width, task.height, task.spec.duration)


# -- s3:// -------------------------------------------------------------------------------------


def test_s3_output_is_saved_through_object_storage(kling_connection: Any, s3_bucket: S3Bucket) -> None:
    run = run_dag("storage_t2v_s3", bucket=s3_bucket.name)
    assert "success" in run.state, run
    key = f"{run.ds}/v.mp4"
    result = run.xcom()
    assert result["output_uri"] == f"s3://{s3_bucket.name}/{key}"

    body = s3_bucket.read(key)
    expected = served_video(kling_connection.sim)
    assert len(body) == len(expected) and body == expected
    assert body[4:8] == b"ftyp"
    assert s3_bucket.keys() == [key], "no .part- objects left behind"
    # The final key was written exactly once, whole: never a partial object under that name.
    (version,) = s3_bucket.versions(key)
    assert version["Size"] == len(expected)
    parts = [v for v in s3_bucket.versions() if v["Key"] != key]
    assert parts and all(re.fullmatch(rf"{run.ds}/\.v\.mp4\.part-[0-9a-f]{{12}}", v["Key"]) for v in parts)
    assert posts(kling_connection.sim) == 1
    # The extra link still opens the generated video, not the saved copy.
    assert result["video_url"].startswith(kling_connection.base_url + "/files/results/")
    assert run.xcom("_link_KlingVideoLink") == result["video_url"]


def test_interrupted_download_still_ends_with_a_complete_object(kling_connection: Any, s3_bucket: S3Bucket) -> None:
    kling_connection.sim.faults.add(Fault(phase="download", kind="drop", times=1))
    run = run_dag("storage_t2v_s3", bucket=s3_bucket.name)
    assert "success" in run.state, run
    key = f"{run.ds}/v.mp4"
    expected = served_video(kling_connection.sim)
    assert s3_bucket.read(key) == expected
    assert kling_connection.sim.count(phase="download") == 2
    assert s3_bucket.keys() == [key]
    (version,) = s3_bucket.versions(key)
    assert version["Size"] == len(expected)
    assert posts(kling_connection.sim) == 1


# The link is signed to expire a minute before the task even completes: dead on first sight.
@pytest.mark.newer_airflow("3.0's dag.test() logs the task's error where caplog/capfd do not see it")
@pytest.mark.kling_simulator(link_lifetime=-60, generation_seconds=1)
def test_expired_link_fails_the_task_and_leaves_no_object(
    kling_connection: Any, s3_bucket: S3Bucket, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        run = run_dag("storage_t2v_s3", bucket=s3_bucket.name)
    assert "failed" in run.tasks["video"], run
    output = caplog.text + "".join(capfd.readouterr())
    assert re.search(r"no longer serves the video: HTTP 403 \(it expired at \d{4}-\d\d-\d\dT", output), output[-3000:]
    assert s3_bucket.versions() == [], "nothing was ever written to the bucket"
    assert kling_connection.sim.count(phase="download", status=403) == 1, "an expired link is not retried"
    assert posts(kling_connection.sim) == 1


# -- file:// -----------------------------------------------------------------------------------


def test_file_uri_output(kling_connection: Any, tmp_path: Path) -> None:
    target = tmp_path / "videos" / "v.mp4"
    run = run_dag("storage_t2v_uri", output_uri=target.as_uri())
    assert "success" in run.state, run
    assert run.xcom()["output_uri"] == target.as_uri()
    assert target.read_bytes() == served_video(kling_connection.sim)
    assert mp4_info(target).frame_count > 0
    assert [p.name for p in target.parent.iterdir()] == ["v.mp4"]
    assert posts(kling_connection.sim) == 1
    assert [uri for uri, _ in asset_events(run)] == [target.as_uri()]


# -- asset events --------------------------------------------------------------------------


def asset_events(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """(asset URI, extra) of every asset event the run's tasks emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
        return [(uri, dict(extra)) for uri, extra in rows]


@pytest.fixture
def alias_consumer() -> Iterator[str]:
    """The DAG scheduled on ``AssetAlias("kling-videos")``, in the database and unpaused."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    dag_id = "storage_on_new_video"
    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():  # what dag.test() does, before the run this time
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)

    def set_paused(paused: bool) -> None:
        with create_session() as session:
            changed = session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))
            assert changed.rowcount == 1, f"{dag_id} is not in the database"

    set_paused(False)
    yield dag_id
    set_paused(True)  # other tests' videos must not queue it


@pytest.mark.newer_airflow("3.3: the consumer DAG is synced with BundleDagBag / sync_bag_to_db")
def test_saved_video_is_an_asset_event_that_schedules_the_alias_consumer(
    kling_connection: Any, s3_bucket: S3Bucket, alias_consumer: str
) -> None:
    from airflow.models.asset import AssetAliasModel, AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run = run_dag("storage_t2v_s3", bucket=s3_bucket.name)
    assert "success" in run.state, run
    uri = f"s3://{s3_bucket.name}/{run.ds}/v.mp4"
    assert run.xcom()["output_uri"] == uri
    (task,) = kling_connection.sim.tasks
    assert asset_events(run) == [(uri, {"kling_task_id": task.id, "model": "kling-v3-text-to-video"})]

    with create_session() as session:
        alias = session.scalars(select(AssetAliasModel).where(AssetAliasModel.name == ALIAS)).one()
        assert uri in {asset.uri for asset in alias.assets}, "the alias resolves to the saved video"
        (asset_id,) = session.scalars(select(AssetModel.id).where(AssetModel.uri == uri)).all()
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id))
        assert list(queued) == [alias_consumer], "the DAG scheduled on the alias is queued to run"


# -- no output_uri: the link, and when it expires -------------------------------------------


def test_without_output_uri_the_log_says_when_the_link_expires(
    kling_connection: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime, timedelta, timezone

    from kling_provider.triggers.kling import KlingTaskTrigger

    # What the link reads while the task is deferred, seen from inside the (in-line) trigger.
    while_deferred: list[Any] = []
    original_run = KlingTaskTrigger.run

    def spying_run(self: KlingTaskTrigger) -> Any:
        while_deferred.append(xcom_value("storage_t2v_link_only", _running_run_id(), "kling_video_url"))
        return original_run(self)

    monkeypatch.setattr(KlingTaskTrigger, "run", spying_run)
    with caplog.at_level(logging.INFO):
        run = run_dag("storage_t2v_link_only")
    assert "success" in run.state, run
    assert while_deferred == [""]

    result = run.xcom()
    assert result["output_uri"] is None
    expires_at = result["expires_at"]
    (task,) = kling_connection.sim.tasks
    created = datetime.fromtimestamp(int(task.created), tz=timezone.utc)
    assert datetime.fromisoformat(expires_at) == created + timedelta(hours=24)
    output = caplog.text + "".join(capfd.readouterr())
    assert f"the video is only at {result['video_url']}, and that link expires at {expires_at}" in output
    assert run.xcom("kling_video_url") == result["video_url"]
    assert run.xcom("_link_KlingVideoLink") == result["video_url"]
    assert asset_events(run) == [], "nothing was saved, so no asset event"
    assert posts(kling_connection.sim) == 1


def _running_run_id() -> str:
    """The id of the storage_t2v_link_only run in progress (the trigger runs inside dag.test())."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as session:
        (run_id,) = session.scalars(
            select(DagRun.run_id).where(DagRun.dag_id == "storage_t2v_link_only", DagRun.state == DagRunState.RUNNING)
        ).all()
        return run_id
