"""What happens when a DAG file is parsed: literal arguments validated, nothing sent, no lookups."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from kling_provider.exceptions import KlingValidationError
from kling_provider.operators.base import default_deferrable
from kling_provider.operators.kling import (
    KlingCreateElementOperator,
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
)


@pytest.fixture
def no_network_no_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail loudly on any socket connect or connection lookup during the test."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise AssertionError(f"network or connection lookup at parse time: {args[:2]!r}")

    from airflow_compat import BaseHook

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))
    return attempts


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"prompt": "x", "duration": 20}, "duration", "from 3 to 15"),
        ({"prompt": "x", "duration": 2.5}, "duration", "integer"),
        ({"prompt": "x", "quality": "8k"}, "quality", "one of"),
        ({"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio", "one of"),
        ({"prompt": "x" * 2501}, "prompt", "2500"),
        ({"prompt": "x", "negative_prompt": "n" * 2501}, "negative_prompt", "2500"),
        ({"prompt": "x", "callback_url": "http://example.com/hook"}, "callback_url", "https"),
        ({"prompt": "x", "callback_url": "https://127.0.0.1/hook"}, "callback_url", ""),
        ({"shots": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 2}], "duration": 5}, "shots", "add up"),
        ({"shots": [{"prompt": "a", "duration": 1}] * 7, "duration": 7}, "shots", "6"),
        ({"prompt": "<<<element_1>>> runs"}, "prompt", "element"),
        ({"prompt": "x", "duration": 15, "quality": "1080p", "sound": True, "max_credits": 100}, "max_credits", "162"),
        ({"prompt": "x", "quality": "4k", "max_credits": 1000}, "max_credits", "unknown"),
        ({"prompt": "x", "timeout": 0}, "timeout", "positive"),
    ],
)
def test_literal_mistakes_fail_at_parse_time_naming_the_field(
    kwargs: dict[str, Any], field: str, rule: str, no_network_no_connections: list[str]
) -> None:
    with pytest.raises(KlingValidationError) as caught:
        KlingTextToVideoOperator(task_id="t", **kwargs)
    assert field in str(caught.value)
    assert rule in str(caught.value)
    assert no_network_no_connections == []


def test_templated_arguments_wait_for_rendering(no_network_no_connections: list[str]) -> None:
    KlingTextToVideoOperator(task_id="t", prompt="{{ params.p }}", callback_url="{{ var.value.cb }}")
    KlingImageToVideoOperator(
        task_id="i",
        image_start="{{ params.image }}",
        image_end="s3://bucket/end.png",
        prompt="<<<element_1>>> and <<<element_2>>>",
        elements=["{{ a }}", "{{ b }}"],
    )
    KlingCreateElementOperator(
        task_id="e",
        element_name="Fox",
        element_description="An orange fox",
        frontal_image="/data/fox.png",
        refer_images=["{{ params.side }}", "{{ params.back }}"],
    )
    assert no_network_no_connections == []


def test_templated_list_keeps_its_length_for_placeholder_rules() -> None:
    with pytest.raises(KlingValidationError, match="element"):
        KlingImageToVideoOperator(
            task_id="i", image_start="https://example.com/a.png", prompt="<<<element_2>>>", elements=["{{ a }}"]
        )


def test_image_to_video_aspect_ratio_and_unknown_arguments() -> None:
    # The product page lists aspect_ratio for kling-v3-image-to-video (its OpenAPI document does
    # not): sent, not refused. turbo's only document has none: refused.
    KlingImageToVideoOperator(task_id="v3", image_start="https://example.com/a.png", aspect_ratio="16:9")
    KlingImageToVideoOperator(task_id="end", image_end="https://example.com/a.png", aspect_ratio="9:16")
    with pytest.raises(KlingValidationError, match="aspect_ratio: not accepted by kling-v3-turbo-image-to-video"):
        KlingImageToVideoOperator(
            task_id="i",
            model="kling-v3-turbo-image-to-video",
            image_start="https://example.com/a.png",
            aspect_ratio="16:9",
        )
    with pytest.raises(TypeError):
        KlingImageToVideoOperator(task_id="i", image_start="https://example.com/a.png", aspect="16:9")


IMG = "https://example.com/a.png"


@pytest.mark.parametrize(
    ("operator", "kwargs", "rule"),
    [
        # a model of the other family: named, with where it belongs
        (KlingTextToVideoOperator, {"model": "kling-o3-image-to-video", "prompt": "x"}, "an image-to-video model"),
        (KlingImageToVideoOperator, {"model": "kling-v3-turbo-text-to-video", "image_start": IMG}, "text-to-video"),
        (KlingTextToVideoOperator, {"model": "kling-v4", "prompt": "x"}, "model: must be one of"),
        # each model's own rules
        (
            KlingTextToVideoOperator,
            {"model": "kling-v3-turbo-text-to-video", "prompt": "x", "quality": "4k"},
            "quality: must be one of '720p', '1080p' for kling-v3-turbo-text-to-video (got '4k')",
        ),
        (
            KlingTextToVideoOperator,
            {"model": "kling-v3-turbo-text-to-video", "prompt": "x", "sound": True},
            "sound: kling-v3-turbo-text-to-video makes silent videos",
        ),
        (
            KlingTextToVideoOperator,
            {"model": "kling-o3-text-to-video", "prompt": "x", "negative_prompt": "{{ params.n }}"},
            "negative_prompt: not accepted by kling-o3-text-to-video",
        ),
        (KlingTextToVideoOperator, {"prompt": "x", "elements": ["1"]}, "elements: kling-v3-text-to-video takes no"),
        (
            KlingImageToVideoOperator,
            {"model": "kling-v3-turbo-image-to-video", "image_start": IMG, "image_end": "s3://b/end.png"},
            "image_end: not accepted by kling-v3-turbo-image-to-video",
        ),
        (
            KlingImageToVideoOperator,
            {
                "model": "kling-o3-image-to-video",
                "prompt": "x",
                "image_start": IMG,
                "image_end": IMG,
                "image_urls": ["{{ params.ref }}"],
            },
            "image_end: kling-o3-image-to-video takes no last frame when there are more than 2 images",
        ),
        (
            KlingImageToVideoOperator,
            {"model": "kling-o3-image-to-video", "prompt": "<<<image_3>>>", "image_urls": ["{{ a }}", "/data/b.png"]},
            "refers to an image that does not exist (2 images are given",
        ),
        (
            KlingImageToVideoOperator,
            {"model": "kling-o3-image-to-video", "image_start": IMG},
            "prompt: required",
        ),
        (KlingImageToVideoOperator, {"prompt": "x"}, "image_start: is required"),
        (
            KlingTextToVideoOperator,
            {"model": "kling-o3-text-to-video", "prompt": "x", "max_credits": 100},
            "unknown",
        ),
    ],
)
def test_each_model_rules_fail_at_parse_time(
    operator: type[Any], kwargs: dict[str, Any], rule: str, no_network_no_connections: list[str]
) -> None:
    with pytest.raises(KlingValidationError) as caught:
        operator(task_id="t", **kwargs)
    assert rule in str(caught.value)
    assert no_network_no_connections == []


def test_other_models_parse_with_templates(no_network_no_connections: list[str]) -> None:
    turbo = KlingTextToVideoOperator(
        task_id="turbo", model="kling-v3-turbo-text-to-video", prompt="{{ params.p }}", quality="1080p"
    )
    assert turbo.model == "kling-v3-turbo-text-to-video"
    KlingTextToVideoOperator(
        task_id="o3",
        model="kling-o3-text-to-video",
        prompt="<<<element_1>>> runs",
        elements="{{ ti.xcom_pull(task_ids='e') }}",
    )
    KlingImageToVideoOperator(
        task_id="o3i",
        model="kling-o3-image-to-video",
        prompt="<<<image_2>>> behind <<<image_1>>>",
        image_start="s3://bucket/a.png",
        image_urls=["{{ params.ref }}"],
        aspect_ratio="9:16",
    )
    KlingImageToVideoOperator(task_id="ti", model="kling-v3-turbo-image-to-video", image_start="{{ params.img }}")
    assert no_network_no_connections == []


def test_whole_templated_lists_are_judged_by_the_fewest_items_the_prompt_needs(
    no_network_no_connections: list[str],
) -> None:
    """An XComArg's length is unknown until run time: a DAG fails to parse only if no list could pass."""
    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import BaseOperator

    with DAG("xcom_lists", schedule=None):
        ids = BaseOperator(task_id="ids").output
        KlingTextToVideoOperator(
            task_id="o3", model="kling-o3-text-to-video", prompt="<<<element_5>>> waves", elements=ids
        )
        KlingImageToVideoOperator(
            task_id="o3i",
            model="kling-o3-image-to-video",
            image_start="https://example.com/a.png",
            image_urls=ids,
            prompt="<<<image_3>>> beside <<<image_1>>>",
            elements="{{ ti.xcom_pull(task_ids='ids') }}",
        )
        with pytest.raises(KlingValidationError, match="element"):  # v3 takes 3 at most: no list of 4 can pass
            KlingImageToVideoOperator(
                task_id="v3", image_start="https://example.com/a.png", prompt="<<<element_4>>>", elements=ids
            )
    assert no_network_no_connections == []


def test_two_hundred_operators_parse_without_network(no_network_no_connections: list[str]) -> None:
    from datetime import datetime

    from airflow.sdk import DAG

    with DAG("many", start_date=datetime(2026, 1, 1), schedule=None):
        for n in range(200):
            KlingTextToVideoOperator(task_id=f"v{n}", prompt=f"clip {n}", output_uri=f"/tmp/v{n}.mp4")
    assert no_network_no_connections == []


def test_deferrable_by_default_with_a_provider_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_deferrable() is True
    assert KlingTextToVideoOperator(task_id="t", prompt="x").deferrable is True
    monkeypatch.setenv("AIRFLOW__KLING__DEFAULT_DEFERRABLE", "False")
    assert KlingTextToVideoOperator(task_id="t", prompt="x").deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert KlingTextToVideoOperator(task_id="t", prompt="x").deferrable is True
    assert KlingTextToVideoOperator(task_id="t", prompt="x", deferrable=False).deferrable is False
    # Read when asked for (not stored at construction): the setting the worker has when it runs.
    operator = KlingTextToVideoOperator(task_id="t", prompt="x")
    monkeypatch.setenv("AIRFLOW__KLING__DEFAULT_DEFERRABLE", "True")
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert operator.deferrable is True
    operator.deferrable = False
    assert operator.deferrable is False


def test_stored_arguments_have_no_airflow_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operators set their own attributes past ``BaseOperator.__setattr__`` (``_store``, for
    parse speed), which is the same only while Airflow has no ``_convert_<name>`` hook for them
    (it has some: ``_convert_retries``, ``_convert__dag``...)."""
    from airflow.sdk import BaseOperator

    from kling_provider.operators.base import BaseKlingOperator

    stored: set[str] = set()
    store = BaseKlingOperator._store

    def recording(self: BaseKlingOperator, **values: Any) -> None:
        stored.update(values)
        store(self, **values)

    monkeypatch.setattr(BaseKlingOperator, "_store", recording)
    text = KlingTextToVideoOperator(task_id="t", prompt="x", duration=7, output_uri="s3://b/k.mp4")
    KlingImageToVideoOperator(task_id="i", image_start="https://example.com/a.png")
    KlingCreateElementOperator(
        task_id="e", element_name="n", element_description="d", refer_video="https://example.com/v.mp4"
    )
    assert {"kling_conn_id", "timeout", "prompt", "duration", "image_start", "element_name"} <= stored
    assert sorted(name for name in stored if hasattr(BaseOperator, f"_convert_{name}")) == []
    assert (text.duration, text.output_uri, text.timeout) == (7, "s3://b/k.mp4", 3600.0)


def test_output_argument_name_does_not_clash_with_base_operator() -> None:
    op = KlingTextToVideoOperator(task_id="t", prompt="x", output_uri="s3://b/k.mp4")
    assert op.output_uri == "s3://b/k.mp4"
    assert "output_uri" in op.template_fields
    assert op.output is not None  # BaseOperator's XComArg property still works
