"""Where the video goes: object storage (a real S3 API on loopback), asset events, the extra link.

The DAGs live in tests/dags/kling_storage_dags.py and run with ``dag.test()`` against the
simulator over loopback HTTP. ``s3://`` goes through Airflow's own object storage
(``ObjectStoragePath`` + the Amazon provider's s3fs filesystem) to moto's standalone server,
started in this process on a free loopback port. The test bucket keeps versions, so a test can
tell not just what the final key holds but everything that was ever written to it, and the server
records every request it answered (method, key, query), so a test can tell how it was written.
"""

from __future__ import annotations

import json
import logging
import random
import re
import struct
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
from hook.support import MAX_ATTEMPTS, SimEnv, open_env, text_request

from kling_provider.exceptions import KlingServerError
from kling_provider.storage import _PART_SIZE, VerifiedWriter
from kling_provider.testing import Fault
from kling_provider.testing.media import make_mp4, mp4_info

DAGS = Path(__file__).parent / "dags"
CONN_ID = "aws_moto"
ALIAS = "kling-videos"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


# -- a loopback S3 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Request:
    method: str
    bucket: str
    key: str
    query: dict[str, list[str]]
    copy_source: bool
    #: The Range header of a GET (a ranged read), else None.
    range: str | None = None

    @property
    def operation(self) -> str:
        """The S3 API operation, for the ones a write can use."""
        q, m = self.query, self.method
        if m == "POST" and "uploads" in q:
            return "CreateMultipartUpload"
        if m == "PUT" and "partNumber" in q:
            return "UploadPartCopy" if self.copy_source else "UploadPart"
        if m == "POST" and "uploadId" in q:
            return "CompleteMultipartUpload"
        if m == "DELETE" and "uploadId" in q:
            return "AbortMultipartUpload"
        if m == "PUT" and self.key:
            return "CopyObject" if self.copy_source else "PutObject"
        if m == "DELETE" and self.key:
            return "DeleteObject"
        return f"{m} {'object' if self.key else 'bucket'}"


@dataclass
class MotoServer:
    """moto's S3 app behind werkzeug, as ``ThreadedMotoServer`` serves it, plus a request log."""

    endpoint: str = ""
    requests: list[S3Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def recording(self, app: Any) -> Any:
        def record(environ: dict[str, Any], start_response: Any) -> Any:
            bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
            query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            request = S3Request(
                environ["REQUEST_METHOD"],
                bucket,
                key,
                query,
                "HTTP_X_AMZ_COPY_SOURCE" in environ,
                environ.get("HTTP_RANGE"),
            )
            with self._lock:
                self.requests.append(request)
            return app(environ, start_response)

        return record


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's standalone S3 server on a free loopback port, for the whole session."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    moto = MotoServer()
    app = moto.recording(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    moto.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield moto
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture(scope="session")
def moto_endpoint(moto_server: MotoServer) -> str:
    return moto_server.endpoint


@dataclass(frozen=True)
class S3Bucket:
    name: str
    client: Any  # a boto3 S3 client on the loopback server
    server: MotoServer

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

    def uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads begun and neither completed nor aborted."""
        return list(self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", []))

    def writes(self) -> list[tuple[str, str]]:
        """(operation, key) of every request that changed an object in this bucket, in order."""
        return [
            (r.operation, r.key)
            for r in list(self.server.requests)
            if r.bucket == self.name and r.key and r.method in ("PUT", "POST", "DELETE")
        ]


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A fresh versioned bucket, and the Airflow connection ``aws_moto`` pointing at the server."""
    import boto3
    from airflow.sdk.io.store import _STORE_CACHE

    extra = {"endpoint_url": moto_server.endpoint, "region_name": "us-east-1"}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
    )
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"kling-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    # Airflow caches one filesystem per (protocol, connection) for the process: start clean.
    _STORE_CACHE.pop(f"s3-{CONN_ID}", None)
    yield S3Bucket(name, client, moto_server)
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
    return bytes(sim.video(task.id))


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
    # The final key was written exactly once, whole, and nothing else ever was (no part objects):
    # one multipart upload straight to the key, completed after the checks; then its sidecar.
    (version,) = s3_bucket.versions(key)
    assert version["Size"] == len(expected)
    assert s3_bucket.writes() == [
        ("CreateMultipartUpload", key),
        ("UploadPart", key),
        ("CompleteMultipartUpload", key),
        ("PutObject", key + ".kling.json"),
    ]
    assert s3_bucket.uploads() == []
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
    assert s3_bucket.keys() == [key, key + ".kling.json"]
    (version,) = s3_bucket.versions(key)
    assert version["Size"] == len(expected)
    assert s3_bucket.uploads() == []
    assert posts(kling_connection.sim) == 1


# -- s3:// straight to the final key: a multipart upload completed only after the checks ------

#: A playable MP4 padded with a ``free`` box (ISO/IEC 14496-12, 8.1.2) of random bytes to 2.5
#: parts, so the upload has several parts and a drop (half the body) comes after the first one.
#: Random, not zeros: parts stored out of order would not compare equal.
_PAD = int(2.5 * _PART_SIZE)
BIG_VIDEO = make_mp4(1280, 720, 5.0) + struct.pack(">I4s", 8 + _PAD, b"free") + random.Random(4).randbytes(_PAD)


@pytest.fixture
def big_video_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimEnv]:
    """The simulator over loopback HTTP, serving :data:`BIG_VIDEO` as every result."""
    with open_env("loopback", monkeypatch) as env:
        monkeypatch.setattr(env.sim, "video", lambda task_id: BIG_VIDEO)
        yield env


def _video_link(env: SimEnv) -> str:
    hook = env.hook()
    task = hook.submit(text_request())
    env.finish(task.id)
    url = hook.get_task(task.id).video_url
    assert url is not None
    return url


def test_s3_download_is_one_multipart_upload_byte_identical(big_video_env: SimEnv, s3_bucket: S3Bucket) -> None:
    url = _video_link(big_video_env)
    saved = big_video_env.hook().download(url, f"s3://{s3_bucket.name}/clips/v.mp4", conn_id=CONN_ID)
    assert saved.uri == f"s3://{s3_bucket.name}/clips/v.mp4" and saved.size == len(BIG_VIDEO)
    assert s3_bucket.read("clips/v.mp4") == BIG_VIDEO
    key = "clips/v.mp4"
    assert s3_bucket.writes() == [
        ("CreateMultipartUpload", key),
        ("UploadPart", key),
        ("UploadPart", key),
        ("UploadPart", key),
        ("CompleteMultipartUpload", key),
    ], "written once, to the final key: no part object, no copy"
    (version,) = s3_bucket.versions()
    assert version["Key"] == key and version["Size"] == len(BIG_VIDEO)
    assert s3_bucket.uploads() == []


def test_s3_download_dropped_mid_stream_aborts_every_upload(big_video_env: SimEnv, s3_bucket: S3Bucket) -> None:
    url = _video_link(big_video_env)
    big_video_env.sim.faults.add(Fault(phase="download", kind="drop", rate=1.0))  # half the body, every time
    with pytest.raises(KlingServerError, match=rf"interrupted .* \(gave up after {MAX_ATTEMPTS} attempts\)"):
        big_video_env.hook().download(url, f"s3://{s3_bucket.name}/clips/v.mp4", conn_id=CONN_ID)
    assert big_video_env.sim.count(phase="download") == MAX_ATTEMPTS
    key = "clips/v.mp4"
    # Each attempt had sent a part to the final key when the connection broke; each was aborted.
    attempt = [("CreateMultipartUpload", key), ("UploadPart", key), ("AbortMultipartUpload", key)]
    assert s3_bucket.writes() == attempt * MAX_ATTEMPTS
    assert s3_bucket.uploads() == [], "an incomplete multipart upload was left behind"
    assert s3_bucket.keys() == [] and s3_bucket.versions() == [], "something appeared at the key"


def test_s3_download_recovers_from_a_drop_with_one_object(big_video_env: SimEnv, s3_bucket: S3Bucket) -> None:
    url = _video_link(big_video_env)
    big_video_env.sim.faults.add(Fault(phase="download", kind="drop", times=1))
    big_video_env.hook().download(url, f"s3://{s3_bucket.name}/v.mp4", conn_id=CONN_ID)
    assert s3_bucket.read("v.mp4") == BIG_VIDEO
    ops = [op for op, _ in s3_bucket.writes()]
    assert ops == ["CreateMultipartUpload", "UploadPart", "AbortMultipartUpload", "CreateMultipartUpload"] + [
        "UploadPart"
    ] * 3 + ["CompleteMultipartUpload"]
    assert len(s3_bucket.versions()) == 1 and s3_bucket.uploads() == []


def _chunks(data: bytes, size: int = 1 << 20) -> Iterable[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize(
    ("body", "announced", "error"),
    [
        pytest.param(BIG_VIDEO[:-1], len(BIG_VIDEO), "incomplete", id="short"),
        pytest.param(b"<html>" + BIG_VIDEO[6:], len(BIG_VIDEO), "not an MP4", id="not-mp4"),
        pytest.param(BIG_VIDEO + b"x", len(BIG_VIDEO), "more than the announced", id="too-long"),
    ],
)
def test_s3_a_failed_check_publishes_nothing(s3_bucket: S3Bucket, body: bytes, announced: int, error: str) -> None:
    """Size and header are checked after the last part went up, before the upload is completed."""
    from airflow.sdk import ObjectStoragePath

    writer = VerifiedWriter(ObjectStoragePath(f"s3://{s3_bucket.name}/v.mp4", conn_id=CONN_ID), announced)
    with pytest.raises(KlingServerError, match=error):
        writer.write_all(_chunks(body))
        writer.commit()
    ops = [op for op, _ in s3_bucket.writes()]
    assert ops[0] == "CreateMultipartUpload" and ops.count("UploadPart") >= 2, "the parts had gone up"
    assert ops[-1] == "AbortMultipartUpload" and "CompleteMultipartUpload" not in ops
    assert s3_bucket.uploads() == [] and s3_bucket.versions() == []


def test_s3_an_upload_a_killed_worker_left_is_invisible(s3_bucket: S3Bucket) -> None:
    """A SIGKILL runs no ``finally``: the upload stays open, and nothing shows at the key. The
    bucket's AbortIncompleteMultipartUpload lifecycle rule removes it (docs/reliability.md)."""
    from airflow.sdk import ObjectStoragePath

    writer = VerifiedWriter(ObjectStoragePath(f"s3://{s3_bucket.name}/v.mp4", conn_id=CONN_ID), len(BIG_VIDEO))
    writer.write_all(_chunks(BIG_VIDEO))  # every byte sent; the worker dies before commit()
    assert s3_bucket.keys() == [] and s3_bucket.versions() == []
    (upload,) = s3_bucket.uploads()
    assert upload["Key"] == "v.mp4"
    parts = s3_bucket.client.list_parts(Bucket=s3_bucket.name, Key="v.mp4", UploadId=upload["UploadId"])["Parts"]
    assert sum(p["Size"] for p in parts) == len(BIG_VIDEO)
    writer.discard()
    assert s3_bucket.uploads() == []


def test_other_object_stores_keep_the_part_file_and_rename() -> None:
    """Stores not known to hide uncommitted writes (here fsspec's in-memory one, through
    universal-pathlib as ObjectStoragePath is) get a hidden part object, then a rename."""
    from upath import UPath

    store = UPath(f"memory:///kling-{uuid.uuid4().hex[:8]}/clips")
    writer = VerifiedWriter(store / "v.mp4", len(BIG_VIDEO))
    assert not writer.staged
    writer.write_all(_chunks(BIG_VIDEO))
    assert [p.name for p in store.iterdir()] == [writer.part.name], "the bytes wait in the part object"
    writer.commit()
    assert [p.name for p in store.iterdir()] == ["v.mp4"]
    assert (store / "v.mp4").read_bytes() == BIG_VIDEO

    failed = VerifiedWriter(store / "w.mp4", len(BIG_VIDEO))
    with pytest.raises(KlingServerError, match="incomplete"):
        failed.write_all(_chunks(BIG_VIDEO[:-1]))
        failed.commit()
    assert [p.name for p in store.iterdir()] == ["v.mp4"]


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
    assert s3_bucket.writes() == [] and s3_bucket.uploads() == []
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
    assert sorted(p.name for p in target.parent.iterdir()) == ["v.mp4", "v.mp4.kling.json"]
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
