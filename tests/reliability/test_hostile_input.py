"""Hostile input to the operators: accepted with a body EvoLink's schema accepts, or refused by field.

Every operator is built with hypothesis-generated keyword arguments (valid ones from the model
tests' strategies, with up to four arguments replaced by hostile values, local image files among
them) and, when it is built, executed against a fake EvoLink up to the create call; the outcome
must keep :func:`.hostile.check` (a valid body, or a refusal naming the field before any request).

Targeted cases (internal callback notations, non-integer durations, element placeholders out of
range, unicode and huge prompts, operator settings of the wrong kind) run as explicit parameters
as well, so they are tried on every run, not by chance. Images: test_hostile_images.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_models_schema import INTERNAL_CALLBACKS, Nasty, NastyStr, values, video_kwargs
from test_models_schema import custom_element_kwargs as element_kwargs

from kling_provider.models import IMAGE_TO_VIDEO_MODEL_NAMES, TEXT_TO_VIDEO_MODEL_NAMES
from kling_provider.operators.kling import (
    KlingCreateElementOperator,
    KlingImageToVideoOperator,
    KlingTextToVideoOperator,
)

from .hostile import Attempt, argument_names, attempt, check, make_image_files, show_kwargs
from .support import connection_json

T2V, I2V, ELEMENT = KlingTextToVideoOperator, KlingImageToVideoOperator, KlingCreateElementOperator
OPERATORS = (T2V, I2V, ELEMENT)
IMAGE_FIELDS = {T2V: (), I2V: ("image_start", "image_end", "image_urls"), ELEMENT: ("frontal_image", "refer_images")}
LIST_IMAGE_FIELDS = ("refer_images", "image_urls")
#: More spellings of internal callback hosts than the model tests list.
MORE_INTERNAL_CALLBACKS = [
    "https://0x7f000001/cb",
    "https://017700000001/cb",
    "https://0/cb",
    "https://0.0.0.0/cb",
    "https://[::]/cb",
    "https://[0:0:0:0:0:ffff:7f00:1]/cb",
    "https://[::ffff:10.0.0.1]/cb",
    "https://[fe80::1%25eth0]/cb",
    "https://[fd00::1]/cb",
    "https://LOCALHOST/cb",
    "https://localhost:8443/cb",
    "https://foo.localhost/cb",
    "https://192.168.1.1/cb",
    "https://172.16.0.1/cb",
    "https://10.0.0.1/cb",
    "https://100.64.0.1/cb",
    "https://127.0.0.1.:443/cb",
    "https://1.1.1.1@127.0.0.1/cb",
]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_image_files(tmp_path_factory.mktemp("hostile-images"))


@pytest.fixture(scope="module", autouse=True)
def _connection() -> Iterator[None]:
    """kling_default at a loopback address nothing listens on: the fake transport answers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection_json("http://127.0.0.1:9")))
        yield


# -- hypothesis ------------------------------------------------------------------------------------

finite_or_not = st.sampled_from([float("nan"), float("inf"), -float("inf"), 0, -1, 0.0, 1e308, 10**400, True, False])
operator_values = st.one_of(
    values,
    finite_or_not,
    st.sampled_from(["", " ", "kling_default", "aws_default", "x" * 2000, "a/b", "é"]),
    st.sampled_from([timedelta(0), timedelta(seconds=-5), timedelta(days=10**5), timedelta(minutes=5)]),
    st.dictionaries(
        st.sampled_from(["min_interval", "max_interval", "margin", "max_attempts", "backoff_base", "bogus"]),
        finite_or_not | st.integers(-3, 5) | st.floats() | st.text(max_size=3),
        max_size=3,
    ),
    st.builds(Nasty),
    st.sampled_from(["https://example.com/cb", "/tmp/out.mp4", "s3://bucket/key.mp4", "file:///tmp/x.mp4"]).map(
        NastyStr
    ),
    st.sampled_from(INTERNAL_CALLBACKS + MORE_INTERNAL_CALLBACKS),
)


def _valid(operator_class: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    if operator_class is ELEMENT:
        return element_kwargs()
    models = IMAGE_TO_VIDEO_MODEL_NAMES if operator_class is I2V else TEXT_TO_VIDEO_MODEL_NAMES
    return st.sampled_from(models).flatmap(video_kwargs)


@st.composite
def hostile_kwargs(draw: st.DrawFn, operator_class: type[Any], images: dict[str, str]) -> dict[str, Any]:
    kwargs = dict(draw(_valid(operator_class)))
    local = st.sampled_from(sorted(images.values()))
    for name in IMAGE_FIELDS[operator_class]:
        if name in kwargs and draw(st.booleans()):
            kwargs[name] = [draw(local)] if name in LIST_IMAGE_FIELDS else draw(local)
    names = sorted(argument_names(operator_class))
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        pool = st.one_of(operator_values, local) if name in IMAGE_FIELDS[operator_class] else operator_values
        kwargs[name] = draw(pool)
    if operator_class is I2V:
        kwargs.setdefault("image_start", None)  # a required argument: leave it out and Python refuses
    if operator_class is ELEMENT:
        kwargs.setdefault("element_name", None)
        kwargs.setdefault("element_description", None)
    return kwargs


@pytest.mark.parametrize("operator_class", OPERATORS, ids=lambda c: c.__name__)
@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_hostile_operator_arguments(operator_class: type[Any], images: dict[str, str], data: st.DataObject) -> None:
    kwargs = data.draw(hostile_kwargs(operator_class, images))
    check(operator_class, kwargs, attempt(operator_class, kwargs))


# -- targeted cases --------------------------------------------------------------------------------

VALID = {
    T2V: {"prompt": "a kite over green hills"},
    I2V: {"prompt": "the beam sweeps", "image_start": "https://cdn.example.com/a.png"},
    ELEMENT: {
        "element_name": "Mascot",
        "element_description": "An orange fox",
        "frontal_image": "https://cdn.example.com/f.png",
        "refer_images": ["https://cdn.example.com/s.png"],
    },
}


def _refused(operator_class: type[Any], field: str, **changes: Any) -> Attempt:
    kwargs = {**VALID[operator_class], **changes}
    result = attempt(operator_class, kwargs)
    check(operator_class, kwargs, result)
    assert result.outcome == "rejected", f"accepted: {show_kwargs(changes)}"
    assert getattr(result.error, "param", "").split(".")[0].split("[")[0] == field, result.error
    return result


@pytest.mark.parametrize("operator_class", OPERATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("url", INTERNAL_CALLBACKS + MORE_INTERNAL_CALLBACKS)
def test_internal_callback_urls_are_refused_at_parse_time(operator_class: type[Any], url: str) -> None:
    result = _refused(operator_class, "callback_url", callback_url=url)
    assert result.stage == "construct"


@pytest.mark.parametrize("operator_class", (T2V, I2V), ids=lambda c: c.__name__)
@pytest.mark.parametrize("duration", [float("nan"), float("inf"), -float("inf"), True, False, 5.0, "5", 10**400, 2, 16])
def test_durations_that_are_not_whole_seconds_in_range(operator_class: type[Any], duration: Any) -> None:
    _refused(operator_class, "duration", duration=duration)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": "<<<element_4>>> waves", "elements": ["a", "b", "c"]}, "prompt"),
        ({"prompt": "<<<element_0>>> waves", "elements": ["a"]}, "prompt"),
        ({"prompt": "<<<element_1>>> waves"}, "prompt"),
        ({"prompt": "<<<element_" + "9" * 5000 + ">>>", "elements": ["a"]}, "prompt"),
        ({"negative_prompt": "no <<<element_2>>>", "elements": ["a"]}, "negative_prompt"),
        ({"prompt": None, "shots": [("<<<element_2>>> jumps", 5)], "elements": ["a"]}, "shots"),
        ({"elements": ["a", "b", "c", "d"]}, "elements"),
    ],
)
def test_element_placeholders_out_of_range(changes: dict[str, Any], field: str) -> None:
    _refused(I2V, field, **changes)


@pytest.mark.parametrize("operator_class", (T2V, I2V), ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("prompt", "ok"),
    [
        ("🎬" * 2500, True),  # 2,500 code points: at the limit
        ("🎬" * 2501, False),
        ("e\u0301" * 1250, True),  # combining accents count as code points
        ("x" * 100_000, False),
        ("x" * 10_000_000, False),
        ("שלום עולם \u202e reversed", True),
        ("nul\x00byte", True),
        ("\ud800 lone surrogate", False),
        ("   \n\t ", None),  # blank: "no prompt" (refused for text-to-video)
    ],
    ids=["2500-emoji", "2501-emoji", "combining", "100k", "10M", "rtl", "nul", "surrogate", "blank"],
)
def test_unicode_and_huge_prompts(operator_class: type[Any], prompt: str, ok: bool | None) -> None:
    kwargs = {**VALID[operator_class], "prompt": prompt}
    result = attempt(operator_class, kwargs)
    check(operator_class, kwargs, result)
    expected_ok = ok if ok is not None else operator_class is I2V
    assert (result.outcome == "submitted") is expected_ok, (result.outcome, result.error)
    if result.outcome == "rejected":
        assert result.error is not None and len(str(result.error)) < 2000, "the refusal echoes the whole prompt"


@pytest.mark.parametrize("operator_class", OPERATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", "abc"),
        ("timeout", True),
        ("timeout", float("inf")),
        ("timeout", 10**400),
        ("timeout", timedelta(days=10**6)),
        ("max_credits", True),
        ("max_credits", "50"),
        ("deferrable", "yes"),
        ("deferrable", 1),
        ("poll_policy", "fast"),
        ("poll_policy", {"bogus": 1}),
        ("poll_policy", {"min_interval": -1}),
        ("poll_policy", {"min_interval": 0}),
        ("poll_policy", {"min_interval": "1"}),
        ("poll_policy", {"max_interval": float("nan")}),
        ("kling_conn_id", 5),
        ("kling_conn_id", None),
        ("kling_conn_id", ""),
        ("image_conn_id", 5),
    ],
)
def test_operator_settings_of_the_wrong_kind(operator_class: type[Any], field: str, value: Any) -> None:
    _refused(operator_class, field, **{field: value})


@pytest.mark.parametrize("operator_class", (T2V, I2V), ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output_uri", 5),
        ("output_uri", ["/tmp/a.mp4"]),
        ("output_uri", "x" * 2000),  # a file name longer than any filesystem allows
        ("output_uri", "/dev/null/a.mp4"),  # a file where a folder must be
        ("output_conn_id", 5),
        ("asset_alias", 5),
        ("asset_alias", "x" * 2000),
    ],
)
def test_output_settings_of_the_wrong_kind(operator_class: type[Any], field: str, value: Any) -> None:
    _refused(operator_class, field, **{"output_uri": "/tmp/kling-hostile.mp4", field: value})


@pytest.mark.parametrize("operator_class", (I2V, ELEMENT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", [5, 1.5, True, {"url": "https://a.b/c.png"}, Nasty()], ids=lambda v: type(v).__name__)
def test_images_of_the_wrong_kind_are_refused_at_parse_time(operator_class: type[Any], value: Any) -> None:
    field = "image_start" if operator_class is I2V else "frontal_image"
    result = _refused(operator_class, field, **{field: value})
    assert result.stage == "construct"
