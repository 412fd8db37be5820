"""Running an operator on hostile input without a network: construct it, then execute it up to
the create call, recording every request it would have sent.

:func:`attempt` returns an :class:`Attempt`: rejected (a ``KlingValidationError`` naming a
field, before or at execute, with the requests sent before it), submitted (the create call's
JSON body, after any uploads), or crashed (any other exception: a bug). The hook gets an
``httpx.MockTransport`` that answers uploads like EvoLink's file API and stops at the create
call, so nothing is ever created or paid for, and nothing leaves the process.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from test_models_schema import assert_vendor_valid

from kling_provider.exceptions import KlingValidationError
from kling_provider.models import REQUEST_MODELS
from kling_provider.operators.base import BaseKlingOperator
from kling_provider.testing.media import make_jpeg, make_png

#: Where the fake file API says uploads live (what image_start etc. must then carry).
UPLOADED_URL = "https://files.example.com/uploads/{n}.{ext}"


class Submitted(Exception):
    """Raised by the fake transport at the create call, carrying its body."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("create call reached")
        self.body = body


@dataclass
class Attempt:
    stage: str  # "construct" or "execute"
    outcome: str  # "rejected", "submitted" or "crashed"
    requests: list[httpx.Request] = field(default_factory=list)
    error: BaseException | None = None
    body: dict[str, Any] | None = None
    uploads: list[str] = field(default_factory=list)
    operator: Any = None


@dataclass
class Figures:
    """Counts across every hostile input tried (printed by the terminal summary)."""

    tried: int = 0
    rejected_at_parse: int = 0
    rejected_at_execute: int = 0
    submitted: int = 0
    crashed: int = 0
    #: Of the crashes: Airflow's own error for a well-formed connection id that is not defined.
    undefined_connection: int = 0
    #: Of the crashes: an ``s3://`` output_uri this machine cannot reach (no S3 here).
    storage_unreachable: int = 0


FIGURES = Figures()


class _FakeEvoLink:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.uploads: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path.endswith("/v1/videos/generations"):
            raise Submitted(json.loads(request.content))
        if request.method == "POST" and request.url.path.startswith("/api/v1/files/upload/"):
            ext = "png" if b"image/png" in request.content[:4096] else "jpg"
            url = UPLOADED_URL.format(n=len(self.uploads), ext=ext)
            self.uploads.append(url)
            data = {"file_id": f"file_{len(self.uploads)}", "file_url": url, "download_url": url}
            return httpx.Response(200, json={"success": True, "code": 200, "msg": "ok", "data": data})
        raise AssertionError(f"unexpected request {request.method} {request.url}")


@contextmanager
def _fake_hooks(fake: _FakeEvoLink) -> Iterator[None]:
    """Every hook an operator builds talks to ``fake`` (the operator still builds it, with its policies)."""
    original = BaseKlingOperator.get_hook
    built: list[Any] = []

    def get_hook(self: Any) -> Any:
        hook = original(self)
        hook._transport = httpx.MockTransport(fake)
        built.append(hook)
        return hook

    BaseKlingOperator.get_hook = get_hook  # type: ignore[method-assign]
    # An s3:// output_uri must never reach the internet from a test: a closed local port instead.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3")
    os.environ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"
    try:
        yield
    finally:
        BaseKlingOperator.get_hook = original  # type: ignore[method-assign]
        for hook in built:  # a try that fails leaves its hook to the process's exit; thousands here
            hook.close()
        if endpoint is None:
            os.environ.pop("AWS_ENDPOINT_URL_S3", None)
        else:
            os.environ["AWS_ENDPOINT_URL_S3"] = endpoint


class _StateAccessor:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class _TaskInstance:
    dag_id, task_id, run_id, map_index, try_number = "hostile", "op", "manual__1", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must serialise


def fake_context() -> dict[str, Any]:
    return {"ti": _TaskInstance(), "task_state_store": _StateAccessor(), "run_id": "manual__1"}


def attempt(operator_class: type[Any], kwargs: dict[str, Any]) -> Attempt:
    """Construct, then execute up to the create call; classify what happened."""
    FIGURES.tried += 1
    try:
        operator = operator_class(task_id="hostile", **kwargs)
    except KlingValidationError as err:
        FIGURES.rejected_at_parse += 1
        return Attempt("construct", "rejected", error=err)
    except Exception as err:
        FIGURES.crashed += 1
        return Attempt("construct", "crashed", error=err)
    fake = _FakeEvoLink()
    with _fake_hooks(fake):
        try:
            operator.execute(fake_context())
        except Submitted as sent:
            FIGURES.submitted += 1
            return Attempt(
                "execute", "submitted", fake.requests, body=sent.body, uploads=fake.uploads, operator=operator
            )
        except KlingValidationError as err:
            FIGURES.rejected_at_execute += 1
            return Attempt("execute", "rejected", fake.requests, error=err, operator=operator)
        except Exception as err:
            FIGURES.crashed += 1
            return Attempt("execute", "crashed", fake.requests, error=err, operator=operator)
    FIGURES.crashed += 1
    return Attempt("execute", "crashed", fake.requests, error=AssertionError("execute returned without submitting"))


# -- the rule ----------------------------------------------------------------------------------------


def argument_names(operator_class: type[Any]) -> set[str]:
    """Every keyword argument the operator's own classes declare (BaseOperator's excluded)."""
    found: set[str] = set()
    for klass in operator_class.__mro__:
        if klass.__module__.startswith("kling_provider") and "__init__" in vars(klass):
            found |= set(inspect.signature(klass.__init__).parameters)
    return found - {"self", "kwargs"}


def check(operator_class: type[Any], kwargs: dict[str, Any], result: Attempt) -> None:
    """The rule every input must keep (see the module docstring)."""
    if result.outcome == "crashed" and _undefined_connection(kwargs, result):
        FIGURES.undefined_connection += 1
        return
    if result.outcome == "crashed" and _storage_unreachable(kwargs, result):
        FIGURES.storage_unreachable += 1
        return
    if result.outcome == "crashed":
        raise AssertionError(
            f"{operator_class.__name__}({show_kwargs(kwargs)}) raised {type(result.error).__name__} at "
            f"{result.stage}: {result.error!s:.500}"
        ) from result.error
    if result.outcome == "rejected":
        err = result.error
        param = getattr(err, "param", None)
        assert param, f"KlingValidationError without a param: {err}"
        root = re.split(r"[.\[]", param, maxsplit=1)[0]
        assert root in kwargs or root in argument_names(operator_class), (
            f"refusal names {param!r}, not an argument of {operator_class.__name__}: {err}"
        )
        assert root in str(err), f"the message does not name {root}: {err}"
        assert not result.requests, (
            f"refused at {result.stage} after sending {[f'{r.method} {r.url.path}' for r in result.requests]}: {err}"
        )
        return
    body = result.body
    assert body is not None
    posts = [r for r in result.requests if r.url.path.endswith("/v1/videos/generations")]
    assert len(posts) == 1
    request = REQUEST_MODELS[body["model"]].from_body(body)
    assert request.to_body() == body
    assert_vendor_valid(request)
    for url in result.uploads:
        assert url in json.dumps(body), f"uploaded {url} is not in the body"
    assert len(result.requests) == len(result.uploads) + 1


def _storage_unreachable(kwargs: dict[str, Any], result: Attempt) -> bool:
    """An otherwise valid call with an ``s3://`` output_uri, on a machine with no route to S3: the
    re-run check cannot read the bucket, so the try fails (and retries) before anything is sent,
    as in any storage outage. Not an input the operator mishandled; S3 itself is tested against
    moto (tests/test_operators_storage.py)."""
    from botocore.exceptions import EndpointConnectionError

    uri = kwargs.get("output_uri")
    return (
        result.stage == "execute"
        and isinstance(uri, str)
        and str.__getitem__(uri, slice(None)).startswith("s3://")
        and isinstance(result.error, EndpointConnectionError)
        and not result.requests
    )


def _undefined_connection(kwargs: dict[str, Any], result: Attempt) -> bool:
    """The one other exception allowed: a well-formed connection id that is not defined, raised at
    execute before any request, naming the connection and saying how to create it."""
    from kling_provider.exceptions import KlingConnectionNotFoundError

    conn_id = kwargs.get("kling_conn_id")
    if not isinstance(conn_id, str):
        return False
    conn_id = str.__getitem__(conn_id, slice(None))  # a hostile str subclass compares like a str
    return (
        result.stage == "execute"
        and isinstance(result.error, KlingConnectionNotFoundError)
        and result.error.conn_id == conn_id != "kling_default"
        and f"Connection {conn_id!r} (kling_conn_id) is not defined" in str(result.error)
        and "Admin > Connections" in str(result.error)
        and not result.requests
    )


def show_kwargs(kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
        parts.append(f"{key}={text[:120]}")
    return ", ".join(parts)


# -- local image files -------------------------------------------------------------------------------


def make_image_files(folder: Path) -> dict[str, str]:
    """Local "image" files, good and hostile, by what they are; plus paths that are not files."""
    png, jpeg = make_png(1280, 720), make_jpeg(720, 1280)
    files: dict[str, bytes] = {
        "good.png": png,
        "good.jpg": jpeg,
        "jpeg-named.png": jpeg,  # lies about its type, but is a fine JPEG
        "png-named.jpeg": png,
        "gif-named.png": b"GIF89a" + b"\x00" * 200,
        "html-named.jpg": b"<!doctype html><html><body>not an image</body></html>",
        "webp-named.png": b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 100,
        "mp4-named.png": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100,
        "empty.png": b"",
        "truncated.png": png[:30],
        "small.png": make_png(200, 200),
        "thin.png": make_png(2000, 300),
        # A decompression bomb: 100,000 x 100,000 pixels declared in a tiny file.
        "bomb.png": _png_header(100_000, 100_000),
        "bomb-jpeg.jpg": _jpeg_header(65_000, 65_000),
    }
    paths = {}
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths[name] = str(path)
    oversized = folder / "oversized.png"
    with oversized.open("wb") as handle:  # a real PNG header, then 10 MiB + 1 of padding
        handle.write(png)
        handle.truncate(10 * 1024 * 1024 + 1)
    paths["oversized.png"] = str(oversized)
    paths["directory"] = str(folder)
    paths["missing.png"] = str(folder / "missing.png")
    paths["file-uri"] = (folder / "good.png").as_uri()
    paths["unknown-protocol"] = "foo://bucket/key.png"
    paths["relative"] = "no/such/relative.png"
    return paths


def _png_header(width: int, height: int) -> bytes:

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk
        + struct.pack(">I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    )


def _jpeg_header(width: int, height: int) -> bytes:

    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xd9"
