"""Local images through the operators: checked by content before anything is sent.

Images that lie about their type, empty, truncated, too small, too thin, oversized, a directory,
a missing file, an unknown storage scheme; and decompression bombs, which are judged from their
header (never decoded) and so pass every documented rule. A bad image refuses the task before the
first upload, even when another image of the same task is fine (:func:`.hostile.check`).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator

import pytest

from kling_provider.operators.kling import KlingCreateElementOperator, KlingImageToVideoOperator

from .hostile import attempt, check, make_image_files
from .support import connection_json

I2V, ELEMENT = KlingImageToVideoOperator, KlingCreateElementOperator
ELEMENT_TEXT = {"element_name": "Mascot", "element_description": "An orange fox"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_image_files(tmp_path_factory.mktemp("hostile-images"))


@pytest.fixture(scope="module", autouse=True)
def _connection() -> Iterator[None]:
    """kling_default at a loopback address nothing listens on: the fake transport answers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection_json("http://127.0.0.1:9")))
        yield


IMAGE_CASES = {
    "good.png": True,
    "good.jpg": True,
    "jpeg-named.png": True,
    "png-named.jpeg": True,
    "file-uri": True,
    "bomb.png": True,  # judged from its header: within every documented rule, never decoded
    "bomb-jpeg.jpg": True,
    "gif-named.png": False,
    "html-named.jpg": False,
    "webp-named.png": False,
    "mp4-named.png": False,
    "empty.png": False,
    "truncated.png": False,
    "small.png": False,
    "thin.png": False,
    "oversized.png": False,
    "directory": False,
    "missing.png": False,
    "unknown-protocol": False,
    "relative": False,
}


@pytest.mark.parametrize(("name", "ok"), IMAGE_CASES.items(), ids=list(IMAGE_CASES))
@pytest.mark.parametrize("field", ["image_start", "image_end"])
def test_local_images_are_checked_before_any_request(images: dict[str, str], name: str, ok: bool, field: str) -> None:
    # The other frame is a good local file: a bad one must stop both uploads, not just its own.
    kwargs = {"prompt": "the beam sweeps", "image_start": images["good.png"], field: images[name]}
    if field == "image_end":
        kwargs["image_end"] = images[name]
    else:
        kwargs["image_end"] = images["good.jpg"]
    tracemalloc.start()
    try:
        result = attempt(I2V, kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    check(I2V, kwargs, result)
    assert (result.outcome == "submitted") is ok, (result.outcome, result.error)
    assert peak < 64 * 1024 * 1024, f"checking {name} took {peak / 1e6:.0f} MB: was it decoded?"
    if ok:
        assert result.body is not None
        assert result.body["image_start"] in result.uploads and result.body["image_end"] in result.uploads
    else:
        assert getattr(result.error, "param", None) == field, result.error


@pytest.mark.parametrize(("name", "ok"), [(n, ok) for n, ok in IMAGE_CASES.items() if n != "directory"])
def test_element_reference_images(images: dict[str, str], name: str, ok: bool) -> None:
    kwargs = {**ELEMENT_TEXT, "frontal_image": images["good.png"], "refer_images": [images["good.jpg"], images[name]]}
    result = attempt(ELEMENT, kwargs)
    check(ELEMENT, kwargs, result)
    assert (result.outcome == "submitted") is ok, (result.outcome, result.error)
    if not ok:
        assert getattr(result.error, "param", None) == "refer_images[1]", result.error


@pytest.mark.parametrize(("name", "ok"), [("good.png", True), ("missing.png", False)])
def test_an_image_path_given_as_a_hostile_str_subclass_is_read_as_plain_text(
    images: dict[str, str], name: str, ok: bool
) -> None:
    """Found by the hypothesis run: a str subclass whose __str__ raises reached object storage."""
    from test_models_schema import NastyStr

    kwargs = {"prompt": "the beam sweeps", "image_start": images["good.jpg"], "image_end": NastyStr(images[name])}
    result = attempt(I2V, kwargs)
    check(I2V, kwargs, result)
    assert (result.outcome == "submitted") is ok, (result.outcome, result.error)
