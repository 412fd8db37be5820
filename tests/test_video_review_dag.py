"""Verification, poster frames and contact sheets on ``dag.test()`` runs over loopback HTTP.

The DAGs live in tests/dags/kling_review_dags.py. Every picture checked here is a real decode of
the real saved video (PyAV), compared with what the simulator drew into that frame.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import av
import pytest
import test_operators_storage as storage_tests
from PIL import Image, ImageChops, ImageStat
from test_operators_storage import BIG_VIDEO, CONN_ID, S3Bucket

from kling_provider.video import read_video_info_at
from kling_provider.video.sheet import render_label

DAGS = Path(__file__).parent / "dags"
QUALITIES = ("720p", "1080p", "4k")
ASPECTS = ("16:9", "9:16", "1:1")
PROMPTS = ("paper boat on a rainy street", "red kite over green hills", "neon fox in the snow")
# The loopback S3 (moto) and a fresh bucket with its connection: the storage tests' fixtures.
moto_server = storage_tests.moto_server
s3_bucket = storage_tests.s3_bucket
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


def run_dag(dag_id: str, **conf: Any) -> Any:
    from airflow_compat import DagBag

    dag = DagBag(str(DAGS / "kling_review_dags.py")).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found"
    return dag.test(run_conf=conf)


def xcom(run: Any, task_id: str = "video", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value", map_index=map_index)
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def states(run: Any) -> dict[str, str]:
    return {
        ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state) for ti in run.get_task_instances()
    }


def local(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(unquote(urlsplit(uri).path))


def decoded_frame(video: Path | bytes, at: float) -> Image.Image:
    """The frame PyAV shows at ``at`` seconds, decoded from the start (no seeking)."""
    source: Any = io.BytesIO(video) if isinstance(video, bytes) else str(video)
    with av.open(source) as container:
        chosen = None
        for frame in container.decode(video=0):
            if chosen is not None and frame.time > at + 1e-6:
                break
            chosen = frame
        assert chosen is not None
        return chosen.to_image()


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0..255); JPEG costs a little."""
    assert a.size == b.size, (a.size, b.size)
    return float(sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3)


# -- a poster frame, the XCom video entry, on each kind of output --------------------------------


@pytest.mark.parametrize("form", ["path", "file-uri"])
def test_poster_frame_and_video_entry_on_local_disk(kling_connection: Any, tmp_path: Path, form: str) -> None:
    folder = tmp_path / "saved videos"  # a space: file:// URIs are percent-encoded
    target = folder / "boat.mp4"
    output_uri = str(target) if form == "path" else target.as_uri()
    run = run_dag("review_one_silent_warn", output_uri=output_uri)
    assert states(run) == {"video": "success"}
    result = xcom(run)
    assert result["output_uri"] == target.as_uri()
    assert result["video"] == {
        "duration_s": 5.0,
        "width": 1280,
        "height": 720,
        "fps": 24.0,
        "codec": "h264",
        "has_audio": False,
        "matches_request": True,
        "mismatches": [],
    }
    assert result["poster_uri"] == (folder / "boat.poster.jpg").as_uri()
    poster = Image.open(local(result["poster_uri"]))
    assert (poster.format, poster.size) == ("JPEG", (1280, 720))
    assert difference(poster, decoded_frame(target, 2.5)) < 2.0  # the middle frame
    # The video, its re-run sidecar and its poster; no part files.
    assert sorted(p.name for p in folder.iterdir()) == ["boat.mp4", "boat.mp4.kling.json", "boat.poster.jpg"]


def test_poster_frame_at_a_chosen_time(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("review_poster_at", output_uri=str(tmp_path / "kite.mp4"))
    result = xcom(run)
    poster = Image.open(local(result["poster_uri"]))
    assert poster.size == (720, 1280)
    assert difference(poster, decoded_frame(tmp_path / "kite.mp4", 1.0)) < 2.0


def test_poster_frame_and_video_entry_on_s3(kling_connection: Any, s3_bucket: S3Bucket) -> None:
    run = run_dag("review_one_silent_warn", output_uri=f"s3://{s3_bucket.name}/clips/boat.mp4", conn_id=CONN_ID)
    assert states(run) == {"video": "success"}
    result = xcom(run)
    assert result["output_uri"] == f"s3://{s3_bucket.name}/clips/boat.mp4"
    assert result["poster_uri"] == f"s3://{s3_bucket.name}/clips/boat.poster.jpg"
    assert result["video"]["matches_request"] is True
    assert (result["video"]["width"], result["video"]["height"]) == (1280, 720)
    assert s3_bucket.keys() == ["clips/boat.mp4", "clips/boat.mp4.kling.json", "clips/boat.poster.jpg"]
    # Each written once, whole (no part objects ever existed).
    assert sorted(v["Key"] for v in s3_bucket.versions()) == [
        "clips/boat.mp4",
        "clips/boat.mp4.kling.json",
        "clips/boat.poster.jpg",
    ]
    assert s3_bucket.uploads() == []
    poster = Image.open(io.BytesIO(s3_bucket.read("clips/boat.poster.jpg")))
    assert difference(poster, decoded_frame(s3_bucket.read("clips/boat.mp4"), 2.5)) < 2.0


def test_metadata_of_a_video_in_s3_is_read_with_small_ranged_reads(s3_bucket: S3Bucket) -> None:
    """A 20 MiB object: a few ranged GETs of the box headers and the metadata, not the object."""
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="big.mp4", Body=BIG_VIDEO)
    before = len(s3_bucket.server.requests)
    info = read_video_info_at(f"s3://{s3_bucket.name}/big.mp4", CONN_ID)
    assert (info.width, info.height, info.duration_s) == (1280, 720, 5.0)
    gets = [r for r in s3_bucket.server.requests[before:] if r.method == "GET" and r.key == "big.mp4"]
    assert gets and all(r.range for r in gets), gets
    fetched = 0
    for r in gets:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", r.range or "")
        assert match, r.range
        fetched += int(match.group(2)) - int(match.group(1)) + 1
    assert fetched <= 4 * 64 * 1024, f"fetched {fetched} bytes of {len(BIG_VIDEO)}"


# -- a batch and its contact sheet ----------------------------------------------------------------


def test_contact_sheet_of_a_mapped_batch(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("review_batch", folder=str(tmp_path))
    assert set(states(run).values()) == {"success"}, states(run)
    results = [xcom(run, "variant", i) for i in range(3)]
    sheet = xcom(run, "sheet")
    assert sheet["uri"] == (tmp_path / "sheet.png").as_uri()
    image = Image.open(local(sheet["uri"])).convert("RGB")
    assert image.size == (sheet["width"], sheet["height"])
    assert [t["index"] for t in sheet["tiles"]] == [0, 1, 2]
    assert [t["poster_uri"] for t in sheet["tiles"]] == [r["poster_uri"] for r in results]
    posters = [Image.open(local(r["poster_uri"])).convert("RGB") for r in results]
    for tile in sheet["tiles"]:
        x, y, w, h = tile["box"]
        shown = image.crop((x, y, x + w, y + h))
        # Each tile is its own variant's poster, not another's: the closest poster by far.
        diffs = [difference(shown, p.resize((w, h), Image.Resampling.LANCZOS)) for p in posters]
        assert min(range(3), key=diffs.__getitem__) == tile["index"], diffs
        lx, ly, lw, lh = tile["label_box"]
        credits = results[tile["index"]]["credits_reserved"]
        caption = ("paper", "red", "neon")[tile["index"]]
        assert tile["label"] == f"{caption}\n5.0 s | {credits:g} credits"
        label = image.crop((lx, ly, lx + lw, ly + lh))
        assert difference(label, render_label(tile["label"], lw, lh)) == 0  # PNG: exact
        other = render_label(f"{caption}\n9.0 s | {credits:g} credits", lw, lh)
        assert difference(label, other) > 0


# -- arguments, checked when the DAG is parsed ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param", "text"),
    [
        ({"on_mismatch": "ignore"}, "on_mismatch", "must be 'warn' or 'fail'"),
        ({"poster": "yes"}, "poster", "must be True or False"),
        ({"poster": True, "poster_at": -1}, "poster_at", "a time in seconds >= 0"),
        ({"poster": True, "poster_at": float("nan")}, "poster_at", "a time in seconds >= 0"),
        ({"poster_at": 2.0}, "poster_at", "only used with poster=True"),
        ({"poster": True, "output_uri": None}, "poster", "needs output_uri"),
    ],
)
def test_review_arguments_are_checked_when_the_dag_is_parsed(kwargs: dict[str, Any], param: str, text: str) -> None:
    from kling_provider.exceptions import KlingValidationError
    from kling_provider.operators.kling import KlingTextToVideoOperator

    arguments = {"task_id": "t", "prompt": "a boat", "output_uri": "/tmp/boat.mp4", **kwargs}
    with pytest.raises(KlingValidationError, match=re.escape(text)) as err:
        KlingTextToVideoOperator(**arguments)
    assert err.value.param == param


def test_poster_without_the_review_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kling_provider.exceptions import KlingValidationError
    from kling_provider.operators.kling import KlingTextToVideoOperator

    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(KlingValidationError, match=r"poster: needs PyAV .*airflow-provider-kling\[review\]"):
        KlingTextToVideoOperator(task_id="t", prompt="a boat", output_uri="/tmp/boat.mp4", poster=True)


# -- the XCom video entry of every quality, aspect ratio and sound setting ------------------------


def test_video_entry_for_each_quality_aspect_ratio_and_sound(kling_connection: Any, tmp_path: Path) -> None:
    from kling_provider.testing.validation import output_size

    run = run_dag("review_matrix", folder=str(tmp_path))
    assert set(states(run).values()) == {"success"}, states(run)
    seen = set()
    for i, (quality, aspect) in enumerate((q, a) for q in QUALITIES for a in ASPECTS):
        result = xcom(run, f"v_{quality}_{aspect.replace(':', 'x')}")
        width, height = output_size(quality, aspect)
        sound = i % 2 == 0
        assert result["video"] == {
            "duration_s": 3.0,
            "width": width,
            "height": height,
            "fps": 24.0,
            "codec": "h264",
            "has_audio": sound,
            "matches_request": True,
            "mismatches": [],
        }, (quality, aspect)
        with av.open(str(tmp_path / f"v{i}.mp4")) as container:  # what FFmpeg says of the same file
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
            assert bool(container.streams.audio) is sound
        seen.add((quality, aspect, sound))
    assert {s for _, _, s in seen} == {True, False} and len(seen) == 9


# -- each mismatch the simulator can serve, caught ----------------------------------------------------


MISMATCHES = [
    ("wrong_duration", "silent", "duration", 5, 2.5, "lasts 2.5 s, asked for duration=5 (tolerance ±0.5 s)"),
    (
        "wrong_resolution",
        "silent",
        "quality",
        "720p",
        "854x480",
        "is 854x480 (short side 480 px), asked for quality='720p' (short side 720 px)",
    ),
    ("missing_audio", "sound", "sound", True, False, "has no audio track, asked for sound=True"),
    ("unexpected_audio", "silent", "sound", False, True, "has an audio track, asked for sound=False"),
]


@pytest.mark.parametrize(
    ("bad", "dag", "field", "expected", "actual", "message"), MISMATCHES, ids=[m[0] for m in MISMATCHES]
)
def test_each_mismatch_is_a_warning_naming_the_task(
    kling_connection: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    bad: str,
    dag: str,
    field: str,
    expected: Any,
    actual: Any,
    message: str,
) -> None:
    from kling_provider.testing import Fault

    kling_connection.sim.faults.add(Fault(kind="bad_video", bad_video=bad))
    target = tmp_path / "boat.mp4"
    run = run_dag(f"review_one_{dag}_warn", output_uri=str(target))
    assert states(run) == {"video": "success"}
    result = xcom(run)
    assert result["video"]["matches_request"] is False
    assert result["video"]["mismatches"] == [
        {"field": field, "expected": expected, "actual": actual, "message": message}
    ]
    assert target.exists() and local(result["poster_uri"]).exists()  # kept: it was paid for
    (task,) = kling_connection.sim.tasks
    log = capfd.readouterr()
    logged = log.out + log.err
    assert f"The video of EvoLink task {task.id} does not match the request: it {message}" in logged
    assert f"raise it with EvoLink, quoting task id {task.id}" in logged
    assert kling_connection.sim.count(method="POST", phase="submit") == 1


@pytest.mark.parametrize("bad", ["wrong_duration", "missing_audio"])
def test_on_mismatch_fail_fails_without_retrying(kling_connection: Any, tmp_path: Path, bad: str) -> None:
    from kling_provider.testing import Fault

    kling_connection.sim.faults.add(Fault(kind="bad_video", bad_video=bad))
    target = tmp_path / "boat.mp4"
    run = run_dag("review_one_sound_fail", output_uri=str(target))
    (ti,) = run.get_task_instances()
    assert str(ti.state) == "failed"
    assert ti.try_number == 1, "retries=1, yet a mismatch must not be retried: a retry would pay again"
    assert xcom(run) is None
    assert target.exists(), "the video stays saved: it is the evidence for EvoLink"
    assert kling_connection.sim.count(method="POST", phase="submit") == 1
    assert kling_connection.sim.count(phase="download") == 1


def test_matching_video_passes_with_on_mismatch_fail(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("review_one_sound_fail", output_uri=str(tmp_path / "boat.mp4"))
    assert states(run) == {"video": "success"}
    assert xcom(run)["video"]["has_audio"] is True and xcom(run)["video"]["matches_request"] is True


def test_truncated_video_is_a_download_failure(kling_connection: Any, tmp_path: Path) -> None:
    """Served with a matching Content-Length: only the boxes tell. Retried as a download (3
    attempts a try, 2 tries), never resubmitted, and nothing ever appears at output_uri."""
    from kling_provider.testing import Fault

    kling_connection.sim.faults.add(Fault(kind="bad_video", bad_video="truncated"))
    target = tmp_path / "out" / "boat.mp4"
    run = run_dag("review_one_silent_warn", output_uri=str(target))
    (ti,) = run.get_task_instances()
    assert str(ti.state) == "failed" and ti.try_number == 2
    assert kling_connection.sim.count(phase="download") == 2 * 3
    assert kling_connection.sim.count(method="POST", phase="submit") == 1
    assert not target.exists()
    assert list(target.parent.iterdir()) == [], "no part files left"


# -- what the poster frames show ------------------------------------------------------------------


def _shown(image: Image.Image) -> tuple[str, str]:
    from kling_provider.testing.overlay import read_text

    grey = image.convert("L")
    return read_text(lambda x, y: int(grey.getpixel((x, y))), grey.width, grey.height)


def test_poster_frame_shows_the_middle_frame_of_this_task(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("review_one_silent_warn", output_uri=str(tmp_path / "boat.mp4"))
    poster = Image.open(local(xcom(run)["poster_uri"]))
    # 5 s at 24 fps: the middle, 2.5 s, is frame 60; the caption is the prompt's first words.
    assert _shown(poster) == ("PAPER BOAT ON A RAINY", "F0060")  # 26 characters fit 1280 px


def test_poster_frame_at_a_chosen_time_shows_that_frame(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("review_poster_at", output_uri=str(tmp_path / "kite.mp4"))
    poster = Image.open(local(xcom(run)["poster_uri"]))
    assert _shown(poster) == ("RED KITE OVER", "F0024")  # 9:16: fewer columns; 1.0 s = frame 24


def test_each_variant_poster_shows_its_own_prompt(kling_connection: Any, tmp_path: Path) -> None:
    run = run_dag("review_batch", folder=str(tmp_path))
    shown = [_shown(Image.open(local(xcom(run, "variant", i)["poster_uri"]))) for i in range(3)]
    assert shown == [
        ("PAPER BOAT ON A RAINY", "F0060"),
        ("RED KITE OVER GREEN HILLS", "F0060"),
        ("NEON FOX IN THE SNOW", "F0060"),
    ]
