"""The review helpers without a DAG run: rounds and notes, the form's Markdown, the atomic publish
copy, and which files the API-server app agrees to serve. (The flow on real Airflow:
tests/test_review_dag.py, and in a browser: tests/e2e/test_review_ui.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kling_provider.exceptions import KlingServerError, KlingValidationError
from kling_provider.models.common import MAX_PROMPT_CHARS
from kling_provider.operators import review
from kling_provider.operators.publish import publish_video
from kling_provider.operators.review import REJECT_OPTION, media_path, review_body, variant_options
from kling_provider.operators.rounds import current_round, fold_notes, next_round_conf
from kling_provider.plugins.review_media import recorded_media
from kling_provider.testing.media import make_mp4

# -- rounds -------------------------------------------------------------------------------------


def test_notes_end_the_prompt_oldest_first_and_blank_ones_are_dropped() -> None:
    assert fold_notes("a mug", []) == "a mug"
    assert fold_notes("a mug", ["", "  "]) == "a mug"
    folded = fold_notes("a mug, studio light ", ["warmer  light", "no steam!"])
    assert folded == "a mug, studio light\nReviewer notes: warmer light. no steam!"


def test_a_note_that_makes_the_prompt_too_long_fails_naming_the_notes() -> None:
    prompt = "x" * (MAX_PROMPT_CHARS - 20)
    with pytest.raises(KlingValidationError, match=r"notes: .* more than the 2500") as err:
        fold_notes(prompt, ["make it shorter and brighter please"])
    assert err.value.param == "notes"


def test_next_round_carries_the_brief_one_round_on_with_the_note_appended() -> None:
    params = {"campaign": "mug", "round": 1, "max_rounds": 3, "notes": ["warmer"]}
    conf = next_round_conf(params, "  no   steam ")
    assert conf == {"campaign": "mug", "round": 2, "max_rounds": 3, "notes": ["warmer", "no steam"]}
    assert params["notes"] == ["warmer"]  # the run's own params are left alone
    assert next_round_conf({**params, "round": 2}, "") == {**conf, "round": 3, "notes": ["warmer"]}
    assert next_round_conf({**params, "round": 3}, "anything") is None  # the last round starts nothing


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"round": 0}, "round"),
        ({"round": "two"}, "round"),
        ({"round": True}, "round"),
        ({"round": 4, "max_rounds": 3}, "round"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"notes": "warmer"}, "notes"),
        ({"notes": [1]}, "notes"),
    ],
)
def test_bad_round_params_fail_naming_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(KlingValidationError, match=rf"^{field}: ") as err:
        current_round(params)
    assert err.value.param == field


def test_round_numbers_from_a_text_conf_are_read_as_numbers() -> None:
    now = current_round({"round": "2", "max_rounds": "2", "notes": [" a ", ""]})
    assert (now.number, now.max_rounds, now.notes, now.is_last) == (2, 2, ("a",), True)
    with pytest.raises(KlingValidationError, match=r"^note: 501 characters"):
        next_round_conf({"round": 1, "max_rounds": 2}, "n" * 501)


# -- the form ---------------------------------------------------------------------------------


def _variant(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"task-{number}",
        "video_url": f"https://files.example/results/task-{number}.mp4?sig=x",
        "expires_at": "2026-12-07T05:00:00+00:00",
        "output_uri": f"file:///videos/variant-{number}.mp4",
        "duration": 5,
        "quality": "720p",
        "sound": False,
        "credits_reserved": 27,
        "estimated_credits": 27,
        "estimated_usd": 0.378,
        **extra,
    }


def test_the_body_shows_each_variant_with_its_links_credits_and_poster() -> None:
    served: list[tuple[str, str]] = []

    def media_url(uri: str, token: str) -> str | None:
        served.append((uri, token))
        return f"/m/{token}"

    body = review_body(
        [_variant(1, poster_uri="file:///videos/variant-1.jpg"), _variant(2, sound=True)],
        captions=["slow orbit", "macro *close-up*"],
        contact_sheet={"uri": "file:///videos/sheet.jpg"},
        intro="**Brief**: a mug",
        media_url=media_url,
    )
    assert body.startswith("**Brief**: a mug\n\n[![Contact sheet of all variants](/m/sheet)](/m/sheet)\n")
    assert "### Variant 1: slow orbit\n[![Variant 1: poster frame](/m/v1-poster)](/m/v1-video)\n" in body
    assert r"### Variant 2: macro \*close-up\*" in body  # captions are text, not Markdown
    assert (
        "- **Video**: [saved copy](/m/v2-video) · [EvoLink result](https://files.example/results/task-2.mp4?sig=x)"
        in body
    )
    assert body.count("- **Credits**: 27 credits (estimate 27, about $0.38)") == 2
    assert "- **Settings**: 5 s, 720p, sound · EvoLink task `task-2`" in body
    assert body.rstrip().endswith(f"choose **{REJECT_OPTION}** and write a note for the next round.")
    assert [t for _, t in served] == ["sheet", "v1-video", "v1-poster", "v2-video"]


def test_a_mismatch_found_by_verification_is_shown_and_object_storage_is_text() -> None:
    mismatch = {"field": "duration", "expected": 5, "actual": 3.0, "message": "lasts 3 s, asked for duration=5"}
    checked = {"matches_request": False, "mismatches": [mismatch, "*odd*"]}
    variant = _variant(1, output_uri="s3://bucket/v1.mp4", poster_uri="s3://bucket/v1.jpg", video=checked)
    body = review_body([variant], media_url=lambda uri, token: None)
    assert "saved at `s3://bucket/v1.mp4`" in body and "Poster frame: `s3://bucket/v1.jpg`" in body
    assert r"- **Does not match the request**: lasts 3 s, asked for duration=5; \*odd\*" in body
    assert "](s3://" not in body  # the UI would blank such a link
    assert review_body([_variant(1, credits_reserved=None, estimated_credits=None)]).count("credits not reported") == 1


def test_only_local_files_are_media() -> None:
    assert media_path("file:///videos/a%20b.mp4") == "/videos/a b.mp4"
    assert media_path("/videos/a.mp4") == "/videos/a.mp4"
    assert media_path("s3://bucket/a.mp4") is None
    assert media_path("relative/a.mp4") is None


def test_the_media_urls_record_what_the_app_may_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/")
    media: dict[str, dict[str, str]] = {}
    url = review._media_url_maker("kling_review", "manual__2026-12-06T05:00:00+00:00", "review", -1, media)
    assert url("file:///v/variant-1.mp4", "v1-video") == (
        "https://airflow.example/kling/review-media/kling_review/manual__2026-12-06T05%3A00%3A00%2B00%3A00/review/v1-video"
    )
    assert url("/v/poster.JPG", "v1-poster").endswith("/review/v1-poster")  # type: ignore[union-attr]
    assert url("s3://b/v.mp4", "v2-video") is None  # not on the API server's disk
    assert url("/v/notes.txt", "v2-poster") is None  # not a picture or a video
    assert media == {
        "v1-video": {"uri": "file:///v/variant-1.mp4", "type": "video/mp4"},
        "v1-poster": {"uri": "/v/poster.JPG", "type": "image/jpeg"},
    }


def test_the_app_serves_only_recorded_files_whose_bytes_match_their_type(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(make_mp4(64, 64, 0.5))
    fake = tmp_path / "secret.jpg"
    fake.write_text("not a picture")
    png = tmp_path / "sheet.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    media = {
        "v1-video": {"uri": video.as_uri(), "type": "video/mp4"},
        "v1-poster": {"uri": str(fake), "type": "image/jpeg"},
        "sheet": {"uri": str(png), "type": "image/png"},
        "v2-video": {"uri": str(tmp_path / "missing.mp4"), "type": "video/mp4"},
        "odd": {"uri": str(png), "type": "text/html"},
    }
    assert recorded_media(media, "v1-video") == (video, "video/mp4")
    assert recorded_media(media, "sheet") == (png, "image/png")
    for token in ("v1-poster", "v2-video", "odd", "unknown"):
        assert recorded_media(media, token) is None, token
    assert recorded_media(None, "v1-video") is None


def test_the_review_operator_needs_airflow_3_1() -> None:
    """On Airflow 3.1+ it builds a form with one option per variant; before, it says what it needs."""
    kwargs: dict[str, Any] = {
        "task_id": "review",
        "variants": [_variant(1), _variant(2)],
        "count": 2,
        "publish_task_id": "publish",
        "reject_task_id": "again",
    }
    if review._HITL_MISSING is not None:
        with pytest.raises(RuntimeError, match=r"needs Airflow 3\.1\+ .*this is Airflow 3\.0"):
            review.KlingReviewOperator(**kwargs)
        return
    op = review.KlingReviewOperator(**kwargs)
    assert op.options == variant_options(2) == ["Variant 1", "Variant 2", REJECT_OPTION]
    assert list(op.serialized_params) == ["note"]
    with pytest.raises(KlingValidationError, match=r"^count: "):
        review.KlingReviewOperator(**{**kwargs, "count": 0})


# -- publishing ---------------------------------------------------------------------------------


def test_publish_copies_the_video_atomically_and_replaces_an_earlier_one(tmp_path: Path) -> None:
    source = tmp_path / "saved" / "variant-2.mp4"
    source.parent.mkdir()
    source.write_bytes(make_mp4(64, 64, 1.0, seed=2))
    target = tmp_path / "published" / "mug.mp4"
    first = publish_video(source.as_uri(), str(target))
    assert (first.uri, first.size, first.source_uri) == (target.as_uri(), source.stat().st_size, source.as_uri())
    assert target.read_bytes() == source.read_bytes()

    source.write_bytes(make_mp4(64, 64, 1.0, seed=3))
    publish_video(str(source), target.as_uri())
    assert target.read_bytes() == source.read_bytes()
    assert os.listdir(target.parent) == ["mug.mp4"]  # no part file left


def test_publish_refuses_what_is_not_a_video_and_leaves_the_published_one(tmp_path: Path) -> None:
    target = tmp_path / "mug.mp4"
    target.write_bytes(b"the published video")
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"<html>error page</html>")
    with pytest.raises(KlingServerError, match="not an MP4"):
        publish_video(str(bogus), str(target))
    assert target.read_bytes() == b"the published video"
    assert sorted(os.listdir(tmp_path)) == ["bogus.mp4", "mug.mp4"]
    with pytest.raises(KlingValidationError, match=r"^target_uri: .* is the saved video itself"):
        publish_video(str(target), target.as_uri())
    with pytest.raises(KlingValidationError, match=r"^source_uri: "):
        publish_video("", str(target))


def test_the_plugin_mounts_the_media_app_only_where_review_forms_exist() -> None:
    """Airflow 3.1+: one app at /kling with the media route; 3.0 (no HITL): nothing, and no error
    (a plugin failing there would stop the API server)."""
    from kling_provider.plugins.review_media import KlingReviewMediaPlugin

    apps = KlingReviewMediaPlugin().fastapi_apps
    if review._HITL_MISSING is not None:
        assert apps == []
        return
    assert [(a["url_prefix"], a["name"]) for a in apps] == [("/kling", "Kling review media")]
    paths = [getattr(route, "path", "") for route in apps[0]["app"].routes]
    assert "/review-media/{dag_id}/{run_id}/{task_id}/{token}" in paths


@pytest.mark.parametrize("outlet_kind", ["asset", "alias"])
def test_publish_chosen_records_the_event_downstream_dags_read(tmp_path: Path, outlet_kind: str) -> None:
    from airflow.sdk import Asset, AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from kling_provider.operators.publish import publish_chosen

    saved = tmp_path / "variant-2.mp4"
    saved.write_bytes(make_mp4(64, 64, 0.5, seed=5))
    outlet = Asset(name="kling_review_published") if outlet_kind == "asset" else AssetAlias(name="kling-published")
    events = OutletEventAccessors()
    decision = {
        "decision": "publish",
        "variant": 2,
        "chosen": _variant(2, output_uri=saved.as_uri()),
        "responded_by": {"id": "7", "name": "ana"},
    }
    target = tmp_path / "published" / "mug.mp4"
    extra = publish_chosen({"outlet_events": events}, decision, str(target), outlet=outlet)  # type: ignore[arg-type]
    assert target.read_bytes() == saved.read_bytes()
    assert extra == {
        "uri": target.as_uri(),
        "source_uri": saved.as_uri(),
        "size": saved.stat().st_size,
        "kling_task_id": "task-2",
        "variant": 2,
        "approved_by": "ana",
    }
    if outlet_kind == "asset":
        assert events[outlet].extra == extra
    else:
        [alias_event] = events[outlet].asset_alias_events
        assert alias_event.dest_asset_key.uri == target.as_uri() and alias_event.extra == extra

    with pytest.raises(KlingValidationError, match=r"^review: no chosen variant"):
        publish_chosen({"outlet_events": events}, {"decision": "reject"}, str(target), outlet=outlet)  # type: ignore[arg-type]


def test_a_mapped_poster_may_get_its_output_uri_from_each_row() -> None:
    """poster=True needs output_uri: a row of expand_kwargs() may bring it (the review example's
    form), a literal row without it fails the DAG file naming the item."""
    from datetime import datetime

    from airflow.sdk import DAG, task

    from kling_provider.operators.kling import KlingTextToVideoOperator

    with DAG("review_mapped_poster", start_date=datetime(2026, 1, 1), schedule=None):

        @task
        def rows() -> list[dict[str, str]]:
            return [{"prompt": "a mug", "output_uri": "/tmp/v.mp4"}]

        partial = KlingTextToVideoOperator.partial(task_id="ok", duration=5, poster=True)
        partial.expand_kwargs(rows())
        with pytest.raises(KlingValidationError, match=r"^expand_kwargs item 0: poster: needs output_uri"):
            KlingTextToVideoOperator.partial(task_id="bad", duration=5, poster=True).expand_kwargs([{"prompt": "x"}])
