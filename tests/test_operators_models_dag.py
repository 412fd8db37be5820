"""turbo and o3 chosen with ``model=`` on real Airflow (``dag.test()``) against the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_operators_dag import run_dag

from kling_provider.testing.media import make_png, mp4_info

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.kling_simulator(generation_seconds=1)]


def test_turbo_and_o3_models_make_videos(kling_connection: Any, tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    frame.write_bytes(make_png(900, 900))
    reference = tmp_path / "street.png"
    reference.write_bytes(make_png(1280, 720))
    result = run_dag("other_kling_models", out=tmp_path, frame=frame, reference=reference)
    assert "success" in result["_run_state"], result

    bodies = {r.json["model"]: r.json for r in kling_connection.sim.requests if r.phase == "submit"}
    assert set(bodies) == {"kling-v3-turbo-text-to-video", "kling-o3-text-to-video", "kling-o3-image-to-video"}
    turbo = bodies["kling-v3-turbo-text-to-video"]
    assert turbo["prompt"] == "镜头 1, 2, the girl walks toward the window; 镜头 2, 3, close-up;"
    assert "sound" not in turbo and "model_params" not in turbo  # its document has neither
    assert bodies["kling-o3-text-to-video"]["sound"] == "on"
    o3_images = bodies["kling-o3-image-to-video"]
    assert o3_images["image_start"].startswith(kling_connection.base_url)  # local files were uploaded
    assert [u.startswith(kling_connection.base_url) for u in o3_images["image_urls"]] == [True]
    assert kling_connection.sim.count(phase="upload") == 2

    expected = {
        "turbo_shots": ("kling-v3-turbo-text-to-video", tmp_path / "turbo.mp4", (720, 1280, 5)),
        "o3_text": ("kling-o3-text-to-video", tmp_path / "o3_text.mp4", (1280, 720, 3)),
        "o3_images": ("kling-o3-image-to-video", tmp_path / "o3_images.mp4", (720, 720, 5)),
    }
    for task_id, (model, path, (width, height, seconds)) in expected.items():
        xcom = result[task_id]["xcom"]
        assert xcom["model"] == model and xcom["status"] == "completed"
        assert xcom["output_uri"] == path.as_uri()
        # No published price for these models: no estimate, but EvoLink's own reservation is reported.
        assert xcom["estimated_credits"] is None and xcom["credits_reserved"] > 0
        info = mp4_info(path)
        assert (info.width, info.height) == (width, height)
        assert info.duration_s == pytest.approx(seconds, abs=0.05)


def _run_page_forms(kling_connection: Any, tmp_path: Path) -> dict[str, Any]:
    frame = tmp_path / "night.png"
    frame.write_bytes(make_png(800, 800))
    return run_dag("v3_page_forms", out=tmp_path, frame=frame)


def test_the_product_pages_forms_are_sent_as_documented(kling_connection: Any, tmp_path: Path) -> None:
    """An end frame alone and aspect_ratio on kling-v3-image-to-video: the page documents them, the
    OpenAPI document does not; the operator sends them and the (page-reading) simulator makes the video."""
    result = _run_page_forms(kling_connection, tmp_path)
    assert "success" in result["end_frame_only"]["state"], result
    (body,) = [r.json for r in kling_connection.sim.requests if r.phase == "submit"]
    assert "image_start" not in body and body["image_end"].startswith(kling_connection.base_url)
    assert body["aspect_ratio"] == "9:16"
    info = mp4_info(tmp_path / "end.mp4")
    assert (info.width, info.height) == (720, 1280)


@pytest.mark.kling_simulator(generation_seconds=1, reading="openapi")
def test_an_evolink_that_follows_the_openapi_document_refuses_them_for_free(
    kling_connection: Any, tmp_path: Path
) -> None:
    result = _run_page_forms(kling_connection, tmp_path)
    assert "failed" in result["end_frame_only"]["state"], result
    assert result["end_frame_only"]["try_number"] == 1  # refused: no retry would be accepted either
    submits = [r for r in kling_connection.sim.requests if r.phase == "submit"]
    assert [r.status for r in submits] == [400]
    assert kling_connection.sim.tasks == [] and kling_connection.sim.credits_spent == 0
