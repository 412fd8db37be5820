"""OpenLineage from the operators, extracted the way Airflow's OpenLineage provider does it.

The DAGs (tests/dags/kling_lineage_dags.py) run with ``dag.test()`` against the simulator. A
listener, registered with Airflow's listener manager like the OpenLineage listener, calls the
provider's own ``ExtractorManager.extract_metadata`` at each state change of each task, on the
task object that ran: what an OpenLineage backend would receive, minus the transport.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.listeners import hookimpl
from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.providers.openlineage.extractors.manager import ExtractorManager
from airflow.providers.openlineage.utils.utils import TaskInfoComplete
from airflow.utils.state import TaskInstanceState
from openlineage.client.event_v2 import Dataset, InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.serde import Serde

from kling_provider.operators import lineage as lineage_module
from kling_provider.operators.lineage import FACET_NAME, PRODUCER, KlingTaskRunFacet, dataset_for, input_datasets
from kling_provider.operators.lineage_facts import LineageSubject
from kling_provider.testing import Fault
from kling_provider.testing.media import make_png

DAGS = Path(__file__).parent / "dags"
DOCS = Path(__file__).resolve().parent.parent / "docs"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


# -- what the OpenLineage listener would extract -------------------------------------------------


@dataclass(frozen=True)
class Extracted:
    task_id: str
    state: TaskInstanceState
    hostname: str | None
    lineage: OperatorLineage
    #: The operator as ``[openlineage] include_full_task_info`` copies it into the Airflow run facet.
    task_info: str


class LineageRecorder:
    """Calls ExtractorManager.extract_metadata as the OpenLineage listener does, and keeps the result."""

    def __init__(self) -> None:
        self.manager = ExtractorManager()
        self.extracted: list[Extracted] = []

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self._extract(task_instance, TaskInstanceState.RUNNING)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._extract(task_instance, TaskInstanceState.SUCCESS)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any) -> None:
        self._extract(task_instance, TaskInstanceState.FAILED)

    def _extract(self, ti: Any, state: TaskInstanceState) -> None:
        dagrun = ti.get_template_context()["dag_run"]
        lineage = self.manager.extract_metadata(
            dagrun=dagrun, task=ti.task, task_instance_state=state, task_instance=ti
        )
        task_info = json.dumps(TaskInfoComplete(ti.task), default=str)
        self.extracted.append(Extracted(ti.task_id, state, getattr(ti, "hostname", None), lineage, task_info))

    def last(self, task_id: str, state: TaskInstanceState) -> Extracted:
        found = [e for e in self.extracted if e.task_id == task_id and e.state == state]
        assert found, f"no {state} extraction for {task_id}: {[(e.task_id, e.state) for e in self.extracted]}"
        return found[-1]


@pytest.fixture
def lineage() -> Iterator[LineageRecorder]:
    try:
        from airflow.sdk.listener import get_listener_manager
    except ImportError:  # Airflow 3.0: the task runner uses the core listener manager
        from airflow.listeners.listener import get_listener_manager  # type: ignore[no-redef]

    manager = get_listener_manager()
    recorder = LineageRecorder()
    manager.add_listener(recorder)
    try:
        yield recorder
    finally:
        manager.pm.unregister(recorder)


@dataclass(frozen=True)
class S3Bucket:
    name: str
    client: Any  # boto3, on the loopback server


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A bucket on moto's S3 server (loopback), and the connection ``aws_moto`` the DAG uses."""
    import boto3
    from airflow.sdk.io.store import _STORE_CACHE
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    extra = {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
    )
    client = boto3.client("s3", aws_access_key_id="testing", aws_secret_access_key="testing", **extra)
    bucket = S3Bucket(f"kling-lineage-{uuid.uuid4().hex[:8]}", client)
    client.create_bucket(Bucket=bucket.name)
    _STORE_CACHE.pop("s3-aws_moto", None)  # Airflow caches one filesystem per (protocol, connection)
    try:
        yield bucket
    finally:
        _STORE_CACHE.pop("s3-aws_moto", None)
        server.stop()


def run_dag(dag_id: str, **conf: Any) -> Any:
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS / "kling_lineage_dags.py")).get_dag(dag_id)
    assert dag is not None, dag_id
    return dag.test(run_conf={k: str(v) for k, v in conf.items()})


def xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value")
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def facet(extracted: Extracted) -> KlingTaskRunFacet:
    found = extracted.lineage.run_facets[FACET_NAME]
    assert isinstance(found, KlingTaskRunFacet)
    return found


def local(path: Path, hostname: str | None) -> tuple[str, str]:
    """A worker's file as OpenLineage names it: the host Airflow recorded for the task, the path."""
    assert hostname, "Airflow records the worker's host name on the task instance"
    return (f"file://{hostname}", str(path.resolve()))


# -- the operators, run ----------------------------------------------------------------------------


def test_text_to_video_reports_the_saved_video_and_the_evolink_task(
    lineage: LineageRecorder, kling_connection: Any, tmp_path: Path
) -> None:
    target = tmp_path / "out dir" / "teaser 视频.mp4"  # start and complete must name it alike
    run = run_dag("lineage_t2v", output_uri=target)
    assert "success" in str(run.state)
    result = xcom(run, "teaser")

    start = lineage.last("teaser", TaskInstanceState.RUNNING)
    assert start.lineage.inputs == []
    assert names(start.lineage.outputs) == [local(target, start.hostname)]
    assert FACET_NAME not in start.lineage.run_facets, "no EvoLink task before submitting"

    done = lineage.last("teaser", TaskInstanceState.SUCCESS)
    assert done.lineage.inputs == []
    assert names(done.lineage.outputs) == [local(target, done.hostname)]
    kling = facet(done)
    (task,) = kling_connection.sim.tasks
    assert kling.taskId == result["id"] == task.id
    assert kling.model == "kling-v3-text-to-video" and kling.status == "completed"
    assert kling.estimatedCredits == pytest.approx(21.6) and kling.estimatedUsd == pytest.approx(0.3)
    assert kling.creditsReserved == pytest.approx(21.6) == result["credits_reserved"]
    assert kling.outputUri == target.as_uri() == result["output_uri"]
    # Which result, without the signature that opens it (the XCom and the extra link keep that).
    assert "signature=" in result["video_url"]
    assert kling.videoUrl == result["video_url"].split("?", 1)[0]
    assert kling.videoUrl.startswith(kling_connection.base_url + "/files/results/")
    assert kling.videoUrlExpiresAt == result["expires_at"]
    assert kling.elementId is None and kling.errorCode is None
    assert kling._producer == PRODUCER
    # The OpenLineage provider can copy the operator's attributes into events: no signed link there.
    assert result["id"] in done.task_info
    assert "signature=" not in done.task_info.lower()


def test_element_and_scene_link_images_element_and_video(
    lineage: LineageRecorder, kling_connection: Any, tmp_path: Path
) -> None:
    frontal, frame, end_frame = tmp_path / "front.png", tmp_path / "beach.png", tmp_path / "sunset.png"
    frontal.write_bytes(make_png(600, 900))
    frame.write_bytes(make_png(1280, 720))
    end_frame.write_bytes(make_png(1280, 720, rgb=(200, 90, 30)))
    output = tmp_path / "scene.mp4"
    run = run_dag(
        "lineage_element_then_scene",
        frontal=frontal,
        frame=frame,
        end_frame=end_frame.as_uri(),  # a file:// URI names the same file as its path
        output_uri=output,
    )
    assert "success" in str(run.state)
    element_id = xcom(run, "mascot")["element_id"]
    api_host = kling_connection.base_url.split("://", 1)[1]
    element = (f"evolink://{api_host}", f"elements/{element_id}")

    mascot = lineage.last("mascot", TaskInstanceState.SUCCESS)
    # The images as the DAG names them (not EvoLink's upload URLs); the URL without its signature.
    assert names(mascot.lineage.inputs) == [
        local(frontal, mascot.hostname),
        ("https://images.example.com", "mascot/side.png"),
    ]
    assert names(mascot.lineage.outputs) == [element]
    assert facet(mascot).elementId == element_id and facet(mascot).outputUri is None
    assert facet(mascot).model == "kling-custom-element"
    assert names(lineage.last("mascot", TaskInstanceState.RUNNING).lineage.outputs) == [], "unknown until created"

    scene = lineage.last("scene", TaskInstanceState.SUCCESS)
    assert names(scene.lineage.inputs) == [local(frame, scene.hostname), local(end_frame, scene.hostname), element]
    assert names(scene.lineage.outputs) == [local(output, scene.hostname)]
    assert facet(scene).taskId == xcom(run, "scene")["id"] != facet(mascot).taskId
    assert names(lineage.last("scene", TaskInstanceState.RUNNING).lineage.inputs) == names(scene.lineage.inputs)

    for extracted in lineage.extracted:
        event = json.loads(event_json(extracted))
        text = json.dumps(event)
        assert "secret" not in text, "no URL signature (kling_lineage_dags.SIDE_VIEW_URL) in lineage"
        assert "signature=" not in text, "no signed result link in lineage"
        check_naming(event)
        for run_facet in event["run"]["facets"].values():
            check_facet(run_facet)


def test_s3_images_and_video_are_named_by_bucket_and_key(
    lineage: LineageRecorder,
    kling_connection: Any,
    s3_bucket: S3Bucket,
) -> None:
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="frames/start.png", Body=make_png(1280, 720))
    run = run_dag("lineage_s3", bucket=s3_bucket.name)
    assert "success" in str(run.state)
    key = f"videos/{run.logical_date:%Y-%m-%d}/animate.mp4"
    assert s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)["ContentLength"] > 0

    for state in (TaskInstanceState.RUNNING, TaskInstanceState.SUCCESS):
        extracted = lineage.last("animate", state)
        assert names(extracted.lineage.inputs) == [(f"s3://{s3_bucket.name}", "frames/start.png")]
        assert names(extracted.lineage.outputs) == [(f"s3://{s3_bucket.name}", key)]
    done = lineage.last("animate", TaskInstanceState.SUCCESS)
    assert facet(done).outputUri == f"s3://{s3_bucket.name}/{key}"
    assert facet(done).model == "kling-v3-image-to-video"


def test_a_refused_generation_reports_its_task_and_no_output(
    lineage: LineageRecorder, kling_connection: Any, tmp_path: Path
) -> None:
    kling_connection.sim.faults.add(Fault(kind="fail_task", error_code="content_policy_violation"))
    run = run_dag("lineage_refused", output_uri=tmp_path / "v.mp4")
    assert "failed" in str(run.state)

    failed = lineage.last("refused", TaskInstanceState.FAILED)
    assert failed.lineage.outputs == [], "nothing was written"
    kling = facet(failed)
    (task,) = kling_connection.sim.tasks
    assert kling.taskId == task.id
    assert kling.status == "failed" and kling.errorCode == "content_policy_violation"
    assert kling.outputUri is None and kling.videoUrl is None
    check_facet(json.loads(Serde.to_json(kling)))


def test_a_deferred_timeout_reports_the_task_still_running(
    lineage: LineageRecorder, kling_connection: Any, tmp_path: Path
) -> None:
    kling_connection.sim.generation_seconds = 3600
    run = run_dag("lineage_timeout", output_uri=tmp_path / "v.mp4")
    assert "failed" in str(run.state)

    failed = lineage.last("late", TaskInstanceState.FAILED)
    assert failed.lineage.outputs == []
    kling = facet(failed)
    (task,) = kling_connection.sim.tasks
    assert kling.taskId == task.id and kling.status == "timeout"


def test_the_openlineage_listener_emits_them(kling_connection: Any, tmp_path: Path) -> None:
    """End to end: the OpenLineage provider's own listener, adapter and file transport.

    In a fresh process, because the provider decides once per process whether it is enabled.
    """
    from airflow.utils.net import get_hostname  # the worker is this machine

    events, target = tmp_path / "events.jsonl", tmp_path / "out" / "teaser.mp4"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    code = (
        "from airflow_compat import DagBag\n"
        f"dag = DagBag({str(DAGS / 'kling_lineage_dags.py')!r}).get_dag('lineage_t2v')\n"
        f"print('STATE', dag.test(run_conf={{'output_uri': {str(target)!r}}}).state)\n"
    )
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and "STATE success" in done.stdout, done.stderr[-3000:]

    emitted = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    task_events = [e for e in emitted if e["job"]["name"] == "lineage_t2v.teaser"]
    kinds = sorted({e["eventType"] for e in task_events})
    assert kinds == ["COMPLETE", "START"], kinds
    (task,) = kling_connection.sim.tasks
    for event in task_events:
        check_naming(event)
        assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [(f"file://{get_hostname()}", str(target))]
    (complete,) = [e for e in task_events if e["eventType"] == "COMPLETE"]
    kling = complete["run"]["facets"][FACET_NAME]
    check_facet(kling)
    assert kling["taskId"] == task.id and kling["outputUri"] == target.as_uri()
    assert kling["creditsReserved"] == pytest.approx(21.6)


# -- serialisation and naming ----------------------------------------------------------------------


def event_json(extracted: Extracted) -> str:
    """The COMPLETE/START/FAIL event the OpenLineage listener would build from this lineage."""
    state = {
        TaskInstanceState.RUNNING: RunState.START,
        TaskInstanceState.SUCCESS: RunState.COMPLETE,
        TaskInstanceState.FAILED: RunState.FAIL,
    }[extracted.state]
    lineage = extracted.lineage
    event = RunEvent(
        eventType=state,
        eventTime=datetime.now(timezone.utc).isoformat(),
        run=Run(runId=str(uuid.uuid4()), facets=lineage.run_facets),
        job=Job(namespace="default", name=f"dag.{extracted.task_id}"),
        inputs=[InputDataset(namespace=d.namespace, name=d.name, facets=d.facets) for d in lineage.inputs],
        outputs=[OutputDataset(namespace=d.namespace, name=d.name, facets=d.facets) for d in lineage.outputs],
        producer="https://github.com/apache/airflow/tree/providers-openlineage",
    )
    return str(Serde.to_json(event))


#: Namespace = scheme://authority, nothing after it (https://openlineage.io/docs/spec/naming).
_NAMESPACE = re.compile(r"^(file|s3|gs|https?|evolink)://[^/?#\s]+$")


def check_naming(event: dict[str, Any]) -> None:
    for dataset in event["inputs"] + event["outputs"]:
        namespace, name = dataset["namespace"], dataset["name"]
        assert _NAMESPACE.match(namespace), namespace
        assert name and "?" not in name and "@" not in namespace, (namespace, name)
        if namespace.startswith("file://"):
            assert name.startswith("/"), name  # an absolute path
        else:
            assert not name.startswith("/"), name  # a key, relative to its bucket or host


def check_facet(payload: dict[str, Any]) -> None:
    """The serialised facet matches the schema docs/lineage.md publishes."""
    import jsonschema

    text = (DOCS / "lineage.md").read_text(encoding="utf-8")
    block = text.split("<!-- kling_task schema -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    schema = json.loads(block)
    jsonschema.validate(payload, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert payload["_producer"] == PRODUCER
    assert payload["_schemaURL"].startswith("https://openlineage.io/spec/")


def test_the_documented_example_facet_matches_its_schema() -> None:
    text = (DOCS / "lineage.md").read_text(encoding="utf-8")
    example = json.loads(text.split("## Run facet `kling_task`", 1)[1].split("```json", 1)[1].split("```", 1)[0])
    check_facet(example["kling_task"])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3://bucket/a/b.png", ("s3://bucket", "a/b.png")),
        ("s3://aws_default@bucket/a/b.png", ("s3://bucket", "a/b.png")),  # ObjectStoragePath's conn id
        ("gcs://bucket/b.png", ("gs://bucket", "b.png")),
        ("https://cdn.example.com:8443/i/b.png?sig=1#x", ("https://cdn.example.com:8443", "i/b.png")),
        ("https://user:pw@cdn.example.com/b.png", ("https://cdn.example.com", "b.png")),
        ("file://nas01/share/b.png", ("file://nas01", "/share/b.png")),
        ("file://nas01/my%20videos/%E8%A7%86.mp4", ("file://nas01", "/my videos/视.mp4")),  # as Path.as_uri() writes
        ("https://[::1]:8443/b.png", ("https://[::1]:8443", "b.png")),
        ("https://cdn.example.com:99999/b.png", None),  # not a URL after all
        (b"\x89PNG", None),
        ("", None),
        (None, None),
    ],
)
def test_dataset_names(source: Any, expected: tuple[str, str] | None) -> None:
    found = dataset_for(source)
    assert (None if found is None else (found.namespace, found.name)) == expected


def test_local_paths_are_absolute_and_carry_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.utils.net import get_hostname

    monkeypatch.chdir(tmp_path)
    expected = (f"file://{get_hostname()}", str(tmp_path / "frames" / "a.png"))
    for source in ("frames/a.png", tmp_path / "frames" / "a.png", (tmp_path / "frames" / "a.png").as_uri()):
        found = dataset_for(source)
        assert isinstance(found, Dataset) and (found.namespace, found.name) == expected, source


def test_object_storage_paths_are_named_without_their_connection() -> None:
    from airflow.sdk import ObjectStoragePath

    found = dataset_for(ObjectStoragePath("s3://bucket/frames/a.png", conn_id="aws_moto"))
    assert found is not None and (found.namespace, found.name) == ("s3://bucket", "frames/a.png")


# -- no cost for those who do not use it -------------------------------------------------------------


def _python(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_importing_the_operators_loads_no_openlineage() -> None:
    _python(
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import kling_provider.operators.kling\n"
        "new = sorted(m for m in set(sys.modules) - before if 'openlineage' in m or m.endswith('.lineage'))\n"
        "assert not new, new\n"
    )


def test_the_operators_work_without_the_openlineage_provider() -> None:
    """The provider does not require OpenLineage: with it unimportable, operators build and validate.

    Only its metadata stays readable (Airflow lists installed providers from it): the OpenLineage
    client and every module of the OpenLineage provider fail to import.
    """
    _python(
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        ol = name.startswith('airflow.providers.openlineage.') and not name.endswith('.get_provider_info')\n"
        "        if name.split('.')[0] == 'openlineage' or ol:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from airflow.sdk import DAG\n"
        "from kling_provider.operators.kling import *\n"
        "from kling_provider.exceptions import KlingValidationError\n"
        "with DAG('d'):\n"
        "    KlingTextToVideoOperator(task_id='t', prompt='p', output_uri='/tmp/x.mp4')\n"
        "    KlingImageToVideoOperator(task_id='i', image_start='/tmp/a.png', elements=['e1'])\n"
        "    KlingCreateElementOperator(task_id='e', element_name='n', element_description='d',\n"
        "                               frontal_image='/tmp/a.png', refer_images=['https://example.com/b.png'])\n"
        "try:\n"
        "    KlingTextToVideoOperator(task_id='bad', prompt='p', duration=99)\n"
        "except KlingValidationError: pass\n"
        "else: raise AssertionError('validation still runs')\n"
        "try:\n"
        "    import kling_provider.operators.lineage\n"
        "except ImportError: pass\n"
        "else: raise AssertionError('openlineage was importable: the block did not work')\n"
    )


def test_lineage_reads_only_the_subject_the_operator_hands_it() -> None:
    """No import of the operators' base (the cycle is gone) and no attribute probing of an operator."""
    import ast

    tree = ast.parse(Path(lineage_module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name and name.startswith("kling_provider.operators.")} - {
        "kling_provider.operators.lineage_facts"
    }
    calls = [node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    assert "getattr" not in calls


def test_elements_are_named_after_the_api_host_read_only_when_needed(caplog: pytest.LogCaptureFixture) -> None:
    asked: list[str] = []

    def base_url() -> str:
        asked.append("asked")
        return "http://127.0.0.1:8123"

    without = LineageSubject("kling_x", base_url, inputs=(None, b"raw bytes"), elements=("", " "))
    assert input_datasets(without) == []
    assert asked == [], "no element, no connection lookup"
    subject = LineageSubject("kling_x", base_url, elements=("el-1", "el-2"))
    assert names(input_datasets(subject)) == [
        ("evolink://127.0.0.1:8123", "elements/el-1"),
        ("evolink://127.0.0.1:8123", "elements/el-2"),
    ]
    assert asked == ["asked"], "one lookup for every element of a run"

    def unreadable() -> str:
        raise KeyError("The conn_id `kling_x` isn't defined")

    named = input_datasets(LineageSubject("kling_x", unreadable, elements=("el-1",)))
    assert names(named) == [("evolink://api.evolink.ai", "elements/el-1")]
    assert "cannot read connection 'kling_x'" in caplog.text
