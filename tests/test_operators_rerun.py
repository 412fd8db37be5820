"""Re-runs never pay twice for what is already saved (``if_exists``, the ``.kling.json`` sidecar).

Real Airflow (``dag.test()``) against the simulator over loopback HTTP; the DAGs are in
tests/dags/kling_rerun_dags.py. Every test counts the create calls (POSTs) the simulator answered.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_operators_storage import S3Bucket, moto_server, s3_bucket, xcom_value  # noqa: F401 (fixtures)

from kling_provider.operators.reuse import SIDECAR_SUFFIX, Sidecar, check_if_exists, request_fingerprint
from kling_provider.testing import Fault
from kling_provider.testing.media import make_png, mp4_info

DAGS = Path(__file__).parent / "dags" / "kling_rerun_dags.py"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


@dataclass(frozen=True)
class Run:
    dag_id: str
    run_id: str
    state: str
    task_state: str
    try_number: int

    def xcom(self, key: str = "return_value") -> Any:
        return xcom_value(self.dag_id, self.run_id, key)


def run_dag(dag_id: str, **conf: Any) -> Run:
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS)).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {DAGS}"
    run = dag.test(run_conf={k: str(v) for k, v in conf.items()})
    (ti,) = run.get_task_instances()
    return Run(dag_id, run.run_id, str(run.state), str(ti.state), ti.try_number)


def posts(sim: Any) -> int:
    return int(sim.count(method="POST", phase="submit"))


def sidecar_of(video: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(video.with_name(video.name + SIDECAR_SUFFIX).read_text())
    return document


# -- local paths and file:// -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dag_id", "as_uri"),
    [("rerun_skip", False), ("rerun_skip", True), ("rerun_skip_worker", False)],
    ids=["deferred-path", "deferred-file-uri", "worker-path"],
)
def test_a_rerun_of_the_same_request_sends_nothing_and_returns_the_same_result(
    kling_connection: Any, tmp_path: Path, dag_id: str, as_uri: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "out" / "kite.mp4"
    output = video.as_uri() if as_uri else str(video)
    first = run_dag(dag_id, output_uri=output)
    assert "success" in first.state, first
    assert posts(kling_connection.sim) == 1
    saved = video.read_bytes()
    sidecar = sidecar_of(video)
    result = first.xcom()
    assert sidecar["task_id"] == result["id"] and sidecar["result"] == result
    assert sidecar["video_size"] == len(saved) and sidecar["credits"] == pytest.approx(27.0)
    assert sidecar["usd"] == pytest.approx(0.375) and sidecar["fingerprint"].startswith("sha256:")
    capfd.readouterr()

    again = run_dag(dag_id, output_uri=output)
    assert "success" in again.state, again
    assert posts(kling_connection.sim) == 1, "the re-run paid again"
    assert kling_connection.sim.count(phase="download") == 1, "nothing was downloaded again"
    assert again.xcom() == {**result, "reused": True} and result["reused"] is False
    assert video.read_bytes() == saved and sidecar_of(video) == sidecar
    log = capfd.readouterr().out
    assert (
        f"Skipped: already saved at {video.as_uri()} (EvoLink task {result['id']}, paid 27 credits on "
        f"{sidecar['saved_at'][:10]})" in log
    ), log[-3000:]
    assert "Submitted EvoLink task" not in log


def test_a_changed_prompt_generates_anew_and_replaces_the_video(kling_connection: Any, tmp_path: Path) -> None:
    video = tmp_path / "kite.mp4"
    first = run_dag("rerun_skip", output_uri=video, prompt="a red kite")
    second = run_dag("rerun_skip", output_uri=video, prompt="a blue kite")
    assert "success" in first.state and "success" in second.state
    assert posts(kling_connection.sim) == 2
    assert second.xcom()["id"] != first.xcom()["id"]
    assert sidecar_of(video)["task_id"] == second.xcom()["id"]
    third = run_dag("rerun_skip", output_uri=video, prompt="a blue kite")
    assert posts(kling_connection.sim) == 2 and third.xcom() == {**second.xcom(), "reused": True}


def test_overwrite_always_generates(kling_connection: Any, tmp_path: Path) -> None:
    video = tmp_path / "kite.mp4"
    first = run_dag("rerun_overwrite", output_uri=video)
    second = run_dag("rerun_overwrite", output_uri=video)
    assert "success" in first.state and "success" in second.state
    assert posts(kling_connection.sim) == 2
    assert sidecar_of(video)["task_id"] == second.xcom()["id"] != first.xcom()["id"]


def test_fail_refuses_before_any_request_when_the_output_exists(
    kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "kite.mp4"
    assert "success" in run_dag("rerun_fail", output_uri=video).state
    assert posts(kling_connection.sim) == 1
    saved = video.read_bytes()
    capfd.readouterr()

    refused = run_dag("rerun_fail", output_uri=video)
    assert "failed" in refused.task_state and refused.try_number == 1
    assert posts(kling_connection.sim) == 1
    assert video.read_bytes() == saved

    # A file the provider never wrote (no sidecar) is refused too, before any request at all.
    other = tmp_path / "theirs.mp4"
    other.write_bytes(b"not ours")
    before = len(kling_connection.sim.requests)
    assert "failed" in run_dag("rerun_fail", output_uri=other).task_state
    assert len(kling_connection.sim.requests) == before and other.read_bytes() == b"not ours"


@pytest.mark.newer_airflow("3.0's dag.test() logs the task's error where caplog/capfd do not see it")
def test_fail_says_why_it_refused(kling_connection: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "kite.mp4"
    video.write_bytes(b"someone else's")
    capfd.readouterr()
    assert "failed" in run_dag("rerun_fail", output_uri=video).task_state
    assert f"output_uri: {video.as_uri()} already exists and if_exists='fail'; nothing was submitted" in (
        capfd.readouterr().out
    )


def test_a_video_without_its_sidecar_is_generated_anew(kling_connection: Any, tmp_path: Path) -> None:
    """What a crash between the video and its sidecar leaves: nothing says which request made
    the video, so it is not trusted."""
    video = tmp_path / "kite.mp4"
    run_dag("rerun_skip", output_uri=video)
    video.with_name(video.name + SIDECAR_SUFFIX).unlink()
    again = run_dag("rerun_skip", output_uri=video)
    assert "success" in again.state
    assert posts(kling_connection.sim) == 2
    assert sidecar_of(video)["task_id"] == again.xcom()["id"]


def test_a_changed_video_is_generated_anew(kling_connection: Any, tmp_path: Path) -> None:
    video = tmp_path / "kite.mp4"
    run_dag("rerun_skip", output_uri=video)
    video.write_bytes(video.read_bytes()[:-10])  # edited since: no longer the size recorded
    again = run_dag("rerun_skip", output_uri=video)
    assert "success" in again.state
    assert posts(kling_connection.sim) == 2
    assert mp4_info(video).frame_count > 0 and sidecar_of(video)["video_size"] == video.stat().st_size


def test_the_old_sidecar_goes_before_a_new_video_is_written(kling_connection: Any, tmp_path: Path) -> None:
    """A new request whose download fails leaves the old video, but no sidecar that could be
    taken to describe whatever is at the output next."""
    video = tmp_path / "kite.mp4"
    run_dag("rerun_skip", output_uri=video, prompt="a red kite")
    old = video.read_bytes()
    kling_connection.sim.faults.add(Fault(phase="download", kind="drop", rate=1.0))
    failed = run_dag("rerun_skip", output_uri=video, prompt="a blue kite")
    assert "failed" in failed.task_state
    assert video.read_bytes() == old, "the old video is intact (downloads are atomic)"
    assert not video.with_name(video.name + SIDECAR_SUFFIX).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [video.name]


def test_a_local_image_is_matched_by_content_not_by_path_or_upload_url(kling_connection: Any, tmp_path: Path) -> None:
    video = tmp_path / "kite.mp4"
    image = tmp_path / "frame.png"
    image.write_bytes(make_png(640, 640))
    assert "success" in run_dag("rerun_i2v", image=image, output_uri=video).state
    assert posts(kling_connection.sim) == 1 and kling_connection.sim.count(phase="upload") == 1

    copy = tmp_path / "copy-of-frame.png"
    copy.write_bytes(image.read_bytes())
    assert "success" in run_dag("rerun_i2v", image=copy, output_uri=video).state
    assert posts(kling_connection.sim) == 1, "the same image content is the same request"
    assert kling_connection.sim.count(phase="upload") == 1, "nothing was uploaded either"

    image.write_bytes(make_png(640, 641))
    assert "success" in run_dag("rerun_i2v", image=image, output_uri=video).state
    assert posts(kling_connection.sim) == 2, "a different image is a different request"


def test_a_retry_after_a_crash_past_the_sidecar_reuses_its_own_video(
    kling_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try saves the video and its sidecar, then dies before finishing (its task state
    still names the EvoLink task): the retry finds its own video and neither pays nor downloads."""
    from kling_provider.operators.base import BaseKlingOperator

    original = BaseKlingOperator._publish_link
    calls: list[int] = []

    def crash_once(self: Any, context: Any, result: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("worker lost after saving")
        original(self, context, result)

    monkeypatch.setattr(BaseKlingOperator, "_publish_link", crash_once)
    video = tmp_path / "kite.mp4"
    run = run_dag("rerun_retrying", output_uri=video)
    assert "success" in run.state and run.try_number == 2, run
    assert posts(kling_connection.sim) == 1
    assert kling_connection.sim.count(phase="download") == 1
    assert run.xcom()["id"] == sidecar_of(video)["task_id"]


# -- s3:// (moto on loopback) ------------------------------------------------------------------


def test_s3_rerun_skip_overwrite_and_fail(kling_connection: Any, s3_bucket: S3Bucket) -> None:  # noqa: F811
    key, sidecar_key = "teasers/kite.mp4", "teasers/kite.mp4" + SIDECAR_SUFFIX
    first = run_dag("rerun_s3_skip", bucket=s3_bucket.name)
    assert "success" in first.state, first
    assert posts(kling_connection.sim) == 1
    assert s3_bucket.keys() == [key, sidecar_key]
    document = json.loads(s3_bucket.read(sidecar_key))
    assert document["result"] == first.xcom() and document["video_size"] == len(s3_bucket.read(key))
    writes = s3_bucket.writes()
    assert [op for op, k in writes if k == sidecar_key] == ["PutObject"], "the sidecar is one PUT, after the video"
    assert writes[-1] == ("PutObject", sidecar_key)

    again = run_dag("rerun_s3_skip", bucket=s3_bucket.name)
    assert "success" in again.state and again.xcom() == {**first.xcom(), "reused": True}
    assert posts(kling_connection.sim) == 1
    assert s3_bucket.writes() == writes, "a skipped re-run writes nothing"

    refused = run_dag("rerun_s3_fail", bucket=s3_bucket.name)
    assert "failed" in refused.task_state and posts(kling_connection.sim) == 1

    replaced = run_dag("rerun_s3_overwrite", bucket=s3_bucket.name)
    assert "success" in replaced.state and posts(kling_connection.sim) == 2
    assert json.loads(s3_bucket.read(sidecar_key))["task_id"] == replaced.xcom()["id"]
    # Order: the old sidecar is deleted (DeleteObjects), then the video is uploaded, then the new sidecar.
    mine = [r for r in s3_bucket.server.requests if r.bucket == s3_bucket.name]
    order = [
        "DeleteObjects" if r.method == "POST" and "delete" in r.query else f"{r.operation} {r.key}"
        for r in mine[mine.index(next(r for r in mine if r.method == "POST" and "delete" in r.query)) :]
        if r.method in ("PUT", "POST", "DELETE")
    ]
    assert order == [
        "DeleteObjects",
        f"CreateMultipartUpload {key}",
        f"UploadPart {key}",
        f"CompleteMultipartUpload {key}",
        f"PutObject {sidecar_key}",
    ], order
    assert s3_bucket.uploads() == []


# -- the pieces ----------------------------------------------------------------------------------


def test_if_exists_is_checked_when_the_dag_is_parsed() -> None:
    from kling_provider.exceptions import KlingValidationError
    from kling_provider.operators.kling import KlingTextToVideoOperator

    assert check_if_exists("overwrite") == "overwrite"
    with pytest.raises(KlingValidationError, match=r"if_exists: must be one of 'skip', 'overwrite', 'fail'") as err:
        KlingTextToVideoOperator(task_id="t", prompt="p", output_uri="/tmp/v.mp4", if_exists="replace")
    assert err.value.param == "if_exists"


def test_the_fingerprint_is_what_was_asked_for() -> None:
    body = {"model": "kling-v3-text-to-video", "prompt": "a kite", "duration": 5}
    base = request_fingerprint(body, {})
    assert request_fingerprint({**body, "callback_url": "https://example.com/hook"}, {}) == base
    assert request_fingerprint(dict(reversed(body.items())), {}) == base
    assert request_fingerprint({**body, "duration": 6}, {}) != base
    assert request_fingerprint(body, {"image_start": "sha256:ab:3"}) != base


@pytest.mark.parametrize(
    "data",
    [None, b"", b"not json", b"[]", b'{"kind": "something else"}', b'{"kind": "airflow-provider-kling/saved-video"}'],
)
def test_anything_but_a_sidecar_is_not_taken_for_one(data: bytes | None) -> None:
    assert Sidecar.from_json(data) is None


def test_logs_of_a_healthy_rerun_have_no_warnings(
    kling_connection: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        run_dag("rerun_skip", output_uri=tmp_path / "kite.mp4")
        run_dag("rerun_skip", output_uri=tmp_path / "kite.mp4")
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING and "kling" in r.name]
    assert noisy == []
