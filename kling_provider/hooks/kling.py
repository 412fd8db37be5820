"""KlingHook: the one place that talks HTTP to EvoLink, sync and async.

Each hook keeps one ``httpx.Client`` and one ``httpx.AsyncClient`` for its lifetime, so a wait of
many polls reuses one connection pool. What to do (retry rules, the polling loop, the download's
retries) lives in the plans of :mod:`kling_provider.hooks.plans`; the sync and async drivers here
only perform the sends, sleeps and fetches a plan asks for.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sys
import time
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx
from airflow.sdk.log import mask_secret
from pydantic import ValidationError

from kling_provider._compat import NOT_FOUND_ERRORS, BaseHook
from kling_provider._provider_info import PROVIDER_INFO
from kling_provider.exceptions import (
    KlingError,
    KlingNotFoundError,
    KlingServerError,
    KlingSubmissionUnknownError,
    KlingValidationError,
)
from kling_provider.hooks import clients
from kling_provider.hooks.connection import KlingConnectionSettings, connection_not_found
from kling_provider.hooks.plans import (
    Fetch,
    SavedVideo,
    Send,
    Sleep,
    Step,
    Unreadable,
    call_plan,
    download_plan,
    short,
    wait_plan,
)
from kling_provider.hooks.polling import PollPolicy
from kling_provider.hooks.ratelimit import RateLimiter, limiter_for
from kling_provider.hooks.retry import CallKind, RetryPolicy
from kling_provider.images import validate_image
from kling_provider.models.responses import FileUploadResponse, Task
from kling_provider.storage import VerifiedWriter, destination_uri, resolve_destination

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

T = TypeVar("T")

__all__ = ["KlingHook", "SavedVideo", "SupportsBody"]

GENERATIONS_PATH = "/v1/videos/generations"
TASKS_PATH = "/v1/tasks/"
UPLOAD_STREAM_PATH = "/api/v1/files/upload/stream"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
_USER_AGENT = "airflow-provider-kling"


class SupportsBody(Protocol):
    """Any validated request model: it knows its model name and its exact JSON body."""

    @property
    def model(self) -> str: ...

    def to_body(self) -> dict[str, Any]: ...


class KlingHook(BaseHook):
    """Talks to EvoLink's unified video API with the key and hosts of a ``kling`` connection.

    :param kling_conn_id: connection whose password is the API key, host the API base URL
        (default ``https://api.evolink.ai``) and extra ``files_host`` the file API base URL.
    :param retry_policy: how each HTTP call is retried (default :class:`.RetryPolicy`'s settings).
    :param poll_policy: how waits pace their status queries (default :class:`.PollPolicy`'s settings).
    :param transport: an httpx transport for synchronous calls, instead of the network (the
        bundled simulator's in-process transport, a corporate proxy transport...).
    :param async_transport: the same for asynchronous calls (the trigger's).
    """

    conn_name_attr = "kling_conn_id"
    default_conn_name = "kling_default"
    conn_type = "kling"
    hook_name = "Kling video (EvoLink)"

    # Airflow 3.0 and 3.1 build the connection form from these two methods (with Flask-AppBuilder
    # installed); 3.2+ read the same settings from the provider info and skip them.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form, as in the provider info's ``conn-fields``."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField
        from wtforms.validators import Optional

        fields = PROVIDER_INFO["connection-types"][0]["conn-fields"]
        return {
            name: StringField(
                lazy_gettext(spec["label"]),
                widget=BS3TextFieldWidget(),
                description=spec["description"],
                validators=[Optional()],
            )
            for name, spec in fields.items()
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled standard fields, as in the provider info's ``ui-field-behaviour``."""
        behaviour = PROVIDER_INFO["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    def __init__(
        self,
        kling_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        poll_policy: PollPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.kling_conn_id = kling_conn_id
        self.retry_policy = retry_policy or RetryPolicy()
        self.poll_policy = poll_policy or PollPolicy()
        self._transport = transport
        self._async_transport = async_transport
        self._settings: KlingConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._aclient_key: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kling_conn_id={self.kling_conn_id!r})"

    # -- connection -------------------------------------------------------------------------

    @property
    def settings(self) -> KlingConnectionSettings:
        """Connection settings, looked up once (synchronously: not for use inside a trigger)."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.kling_conn_id)
            except NOT_FOUND_ERRORS:
                raise connection_not_found(self.kling_conn_id) from None
            self._settings = self._remember(conn)
        return self._settings

    async def asettings(self) -> KlingConnectionSettings:
        """Connection settings, looked up once without blocking the event loop.

        Hooks on one event loop share a lookup for a few seconds (:func:`.clients.shared_lookup`):
        a triggerer starting a thousand triggers asks the secrets backend once, not a thousand times.
        """
        if self._settings is None:
            self._settings = await clients.shared_lookup(self.kling_conn_id, self._alookup)
        return self._settings

    async def _alookup(self) -> KlingConnectionSettings:
        aget = getattr(BaseHook, "aget_connection", None)
        try:
            if aget is not None:
                conn = await aget(self.kling_conn_id)
            else:  # Airflow < 3.1 has no async lookup: keep the blocking call off the loop.
                conn = await asyncio.to_thread(self.get_connection, self.kling_conn_id)
        except NOT_FOUND_ERRORS:
            raise connection_not_found(self.kling_conn_id) from None
        return self._remember(conn)

    @staticmethod
    def _remember(conn: Any) -> KlingConnectionSettings:
        settings = KlingConnectionSettings.from_connection(conn)
        mask_secret(settings.api_key)  # so no log line can show it
        return settings

    def get_conn(self) -> httpx.Client:
        return self._sync_client()

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=self._transport,
                timeout=httpx.Timeout(self.settings.timeout, connect=10.0),
                headers={"User-Agent": _USER_AGENT},
            )
        return self._client

    async def _async_client(self) -> httpx.AsyncClient:
        """This hook's reference to the loop's shared client (see :mod:`.clients`)."""
        settings = await self.asettings()
        if self._aclient_key is None:

            def factory() -> httpx.AsyncClient:
                return httpx.AsyncClient(
                    transport=self._async_transport,
                    timeout=httpx.Timeout(settings.timeout, connect=10.0),
                    headers={"User-Agent": _USER_AGENT},
                    limits=clients.limits(),
                )

            self._aclient_key = clients.acquire(settings.api_base_url, settings.timeout, self._async_transport, factory)
        return clients.get(self._aclient_key)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient_key is not None:
            key, self._aclient_key = self._aclient_key, None
            await clients.release(key)

    def __enter__(self) -> KlingHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> KlingHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public API: sync -------------------------------------------------------------------

    def submit(self, request: SupportsBody) -> Task:
        """Create a generation task. Bill-once rules: see :mod:`kling_provider.hooks.retry`."""
        return self._run(self._submit_plan(request, self.settings))

    def get_task(self, task_id: str) -> Task:
        """Current state of a task (retried on transient faults; 404 raises KlingNotFoundError)."""
        return self._run(self._get_task_plan(task_id, self.settings))

    def wait_for_task(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        started_at: float | None = None,
        on_poll: Callable[[Task], None] | None = None,
        max_failed_polls: int = 3,
        log: Any = None,
    ) -> Task:
        """Block until the task is completed, failed or cancelled, and return it.

        Polls as :class:`PollPolicy` says, from the server's estimate and progress. A poll whose
        own retries are spent is tolerated ``max_failed_polls - 1`` times in a row. ``timeout``
        raises :class:`KlingTimeoutError`; the task itself keeps running (and stays paid for):
        re-attach to it rather than submit again. At most once a minute, ``log`` (default: this
        hook's) says how the task is going, from the polls already made. See
        :func:`.plans.wait_plan`.
        """
        settings = self.settings
        return self._run(
            wait_plan(
                lambda: self._get_task_plan(task_id, settings),
                task_id,
                policy=self.poll_policy,
                clock=_now,
                log=self.log if log is None else log,
                deadline=None if timeout is None else _now() + timeout,
                started_at=started_at,
                max_failed_polls=max_failed_polls,
                on_poll=on_poll,
            )
        )

    def upload_image(
        self,
        source: bytes | str | os.PathLike[str] | ObjectStoragePath,
        *,
        field: str = "image",
        conn_id: str | None = None,
    ) -> str:
        """Check an image against EvoLink's rules, upload it, and return its ``file_url``.

        ``source`` is raw bytes, a local path, or an ``ObjectStoragePath``/URI (``s3://...``,
        read with ``conn_id``). The check (JPG/PNG by content, <= 10 MB, >= 300 px, aspect
        1:2.5..2.5:1) runs before anything is sent, and uploads are free, so a retried upload
        costs nothing.
        """
        data, name, size = _read_image(source, conn_id, field)
        info = validate_image(io.BytesIO(data), size, field)
        files = {"file": (f"{name}.{'png' if info.format == 'png' else 'jpg'}", data, info.mime_type)}
        try:
            return self._run(
                call_plan(
                    Send("POST", self.settings.files_base_url + UPLOAD_STREAM_PATH, files=files),
                    self.retry_policy,
                    CallKind.IDEMPOTENT,
                    what=f"upload of {field}",
                    parse=_parse_upload,
                    log=self.log,
                    conn_id=self.kling_conn_id,
                )
            )
        except KlingValidationError as err:
            # EvoLink refused this image (a 400, or success: false): say which one, like the
            # client-side checks do.
            raise KlingValidationError(
                f"{field}: {err.message}", status_code=err.status_code, code=err.code, param=field
            ) from None

    def check_image(
        self,
        source: bytes | str | os.PathLike[str] | ObjectStoragePath,
        *,
        field: str = "image",
        conn_id: str | None = None,
    ) -> None:
        """The checks :meth:`upload_image` makes, without uploading: so that a caller with several
        images can refuse a bad one before it has sent any (``KlingValidationError``, ``param=field``)."""
        data, _, size = _read_image(source, conn_id, field)
        validate_image(io.BytesIO(data), size, field)

    def image_digest(
        self,
        source: bytes | str | os.PathLike[str] | ObjectStoragePath,
        *,
        field: str = "image",
        conn_id: str | None = None,
    ) -> str:
        """``sha256:<hex>:<size>`` of an image's content: what a re-run compares, since the URL an
        upload returns is new every time. Reads what :meth:`upload_image` would read."""
        data, _, size = _read_image(source, conn_id, field)
        return f"sha256:{hashlib.sha256(data).hexdigest()}:{size}"

    def download(
        self,
        url: str,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        *,
        conn_id: str | None = None,
        expires_at: str | None = None,
    ) -> SavedVideo:
        """Stream a result video to ``destination`` (local path or object storage), atomically.

        Never holds the file in memory; the length is checked against Content-Length and the
        header against MP4's, before the file appears under its final name. Transient faults
        restart the download (never the generation). The API key is not sent: result links are
        pre-signed and may point at another host.
        """
        target = resolve_destination(destination, conn_id)
        return self._run(download_plan(Fetch(url, target), self.retry_policy, log=self.log, expires_at=expires_at))

    def test_connection(self) -> tuple[bool, str]:
        """Check the key against the API without creating (or paying for) anything."""
        try:
            self.get_task("task-unified-0-connection-check")
        except KlingNotFoundError:
            return True, f"Connected to {self.settings.api_base_url}: the API key was accepted."
        except KlingError as err:
            return False, err.message
        except httpx.HTTPError as err:
            return False, f"Could not reach {self.settings.api_base_url}: {type(err).__name__}"
        return True, f"Connected to {self.settings.api_base_url}."

    # -- public API: async ------------------------------------------------------------------

    async def asubmit(self, request: SupportsBody) -> Task:
        """Async :meth:`submit`, with the same bill-once rules."""
        return await self._arun(self._submit_plan(request, await self.asettings()))

    async def aget_task(self, task_id: str) -> Task:
        """Async :meth:`get_task`; reuses one ``AsyncClient`` for the life of the hook."""
        return await self._arun(self._get_task_plan(task_id, await self.asettings()))

    async def await_task(
        self,
        task_id: str,
        *,
        deadline: float | None = None,
        started_at: float | None = None,
        estimated_time: float | None = None,
        max_failed_polls: int = 5,
        log: Any = None,
    ) -> Task:
        """Async :meth:`wait_for_task`, for a trigger: the same plan, with an absolute ``deadline``
        (unix time), this hook's :attr:`PollPolicy.settle` before the first query, and the
        server's ``estimated_time`` at submission (with ``started_at``) to time that query."""
        settings = await self.asettings()
        return await self._arun(
            wait_plan(
                lambda: self._get_task_plan(task_id, settings),
                task_id,
                policy=self.poll_policy,
                clock=_now,
                log=self.log if log is None else log,
                deadline=deadline,
                started_at=started_at,
                estimate=estimated_time,
                settle=self.poll_policy.settle,
                max_failed_polls=max_failed_polls,
            )
        )

    # -- plans ------------------------------------------------------------------------------

    def _submit_plan(self, request: SupportsBody, settings: KlingConnectionSettings) -> Generator[Step, Any, Task]:
        body = request.to_body()
        sent_at = time.time()

        def unknown(reason: str) -> KlingError:
            return _submission_unknown(request.model, body, sent_at, reason)

        return call_plan(
            Send("POST", settings.api_base_url + GENERATIONS_PATH, json=body),
            self.retry_policy,
            CallKind.SUBMIT,
            what=f"creating a {request.model} task",
            parse=_parse_task,
            log=self.log,
            on_unknown=unknown,
            conn_id=settings.conn_id,
        )

    def _get_task_plan(self, task_id: str, settings: KlingConnectionSettings) -> Generator[Step, Any, Task]:
        if not task_id or "/" in task_id or task_id.strip() != task_id:
            raise KlingValidationError(f"task_id: not a valid EvoLink task id ({task_id!r})", param="task_id")
        return call_plan(
            Send("GET", settings.api_base_url + TASKS_PATH + task_id),
            self.retry_policy,
            CallKind.IDEMPOTENT,
            what=f"querying task {task_id}",
            parse=_parse_task,
            log=self.log,
            conn_id=settings.conn_id,
        )

    # -- drivers ----------------------------------------------------------------------------

    def _limiter(self, settings: KlingConnectionSettings) -> RateLimiter:
        return limiter_for(settings.limiter_key, settings.rate_limit_rpm)

    def _run(self, plan: Generator[Step, Any, T]) -> T:
        client = self._sync_client()
        key = self.settings.api_key
        limiter = self._limiter(self.settings)
        outcome: Any = None
        try:
            step = next(plan)
            while True:
                match step:
                    case Sleep(seconds=seconds):
                        time.sleep(seconds)
                        outcome = None
                    case Send():
                        limiter.acquire()
                        try:
                            outcome = client.send(_build(client, step, key))
                        except httpx.TransportError as err:
                            outcome = err
                    case Fetch():
                        outcome = _fetch(client, step)
                    case _:
                        assert_never(step)
                step = plan.send(outcome)
        except StopIteration as stop:
            return stop.value

    async def _arun(self, plan: Generator[Step, Any, T]) -> T:
        client = await self._async_client()
        settings = await self.asettings()
        key = settings.api_key
        limiter = self._limiter(settings)
        outcome: Any = None
        try:
            step = next(plan)
            while True:
                match step:
                    case Sleep(seconds=seconds):
                        await asyncio.sleep(seconds)
                        outcome = None
                    case Send():
                        await limiter.aacquire()
                        async with clients.gate(self._aclient_key):
                            try:
                                outcome = await client.send(_build(client, step, key))
                            except httpx.TransportError as err:
                                outcome = err
                    case Fetch():  # files are written by the worker, with the sync client
                        raise TypeError("downloads are made with the sync client (KlingHook.download)")
                    case _:
                        assert_never(step)
                step = plan.send(outcome)
        except StopIteration as stop:
            return stop.value


def _now() -> float:
    """The clock plans read (looked up at each call, so tests can move it)."""
    return time.time()


def _build(client: httpx.Client | httpx.AsyncClient, step: Send, api_key: str) -> httpx.Request:
    headers = {"Authorization": f"Bearer {api_key}"} if step.authenticated else {}
    return client.build_request(step.method, step.url, json=step.json, files=step.files, headers=headers)


def _fetch(client: httpx.Client, step: Fetch) -> SavedVideo | httpx.Response | httpx.TransportError | KlingServerError:
    """Perform a :class:`Fetch`: what happened, for :func:`.plans.download_plan` to judge."""
    try:
        # The connection's timeout (extra "timeout") bounds each read, as for API calls: a
        # stalled CDN must not hold a worker for longer than the user configured.
        with client.stream("GET", step.url, follow_redirects=True) as response:
            if response.status_code != 200:
                response.read()
                return response
            writer = VerifiedWriter(step.target, _content_length(response))
            # Chunks as they arrive: re-chunking copies every byte once more (bench/README.md).
            writer.write_all(response.iter_bytes())
            writer.commit()
            return SavedVideo(uri=destination_uri(step.target), size=writer.written)
    except httpx.TransportError as err:
        return err
    except KlingServerError as err:  # incomplete or not an MP4: the part file is gone
        return err


def _parse_task(response: httpx.Response) -> Task:
    try:
        return Task.model_validate_json(response.content)
    except ValidationError as err:
        raise Unreadable(short(err)) from None


def _parse_upload(response: httpx.Response) -> str:
    """The ``file_url`` of an accepted upload (a ``success: false`` answer never gets here: the
    retry rules judge it by its code, see :func:`.errors.refusal_status`)."""
    try:
        parsed = FileUploadResponse.model_validate_json(response.content)
    except ValidationError as err:
        raise Unreadable(short(err)) from None
    if not parsed.success or parsed.data is None:
        raise Unreadable(f"success={parsed.success} without data (code {parsed.code}: {parsed.msg})")
    return parsed.data.file_url


def _submission_unknown(model: str, body: dict[str, Any], sent_at: float, reason: str) -> KlingSubmissionUnknownError:
    when = datetime.fromtimestamp(sent_at, tz=timezone.utc).isoformat(timespec="seconds")
    summary = summarise_request(body)
    return KlingSubmissionUnknownError(
        f"The request to create a {model} task (sent {when}; {summary}) may or may not have created a "
        f"task: {reason}. It was not retried, because EvoLink has no idempotency key and a second "
        "request could be billed twice. Look for a task created around that time in the EvoLink "
        "console: if there is one, use its id instead of submitting again; if not, clear this task to "
        "submit again.",
        model=model,
        sent_at=sent_at,
        request_summary=summary,
    )


def summarise_request(body: dict[str, Any]) -> str:
    """What to look for in the EvoLink console's task history: the prompt's start and the options."""
    parts = []
    prompt = body.get("prompt")
    if prompt:
        parts.append(f"prompt {prompt[:60]!r}{'...' if len(prompt) > 60 else ''}")
    for key in ("duration", "quality", "aspect_ratio", "sound"):
        if key in body:
            parts.append(f"{key}={body[key]}")
    return ", ".join(parts) or "no prompt"


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length")
    if raw is None or "content-encoding" in response.headers:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _read_image(source: Any, conn_id: str | None, field: str) -> tuple[bytes, str, int]:
    """Read at most 10 MB + 1 byte (enough to reject larger files), plus the true size."""
    limit = MAX_IMAGE_BYTES + 1
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return data[:limit], "image", len(data)
    try:
        path = resolve_destination(source, conn_id)
        with path.open("rb") as handle:
            data = handle.read(limit)
        size = path.stat().st_size
    except FileNotFoundError as err:
        raise KlingValidationError(f"{field}: file not found: {source}", param=field) from err
    except IsADirectoryError as err:
        raise KlingValidationError(f"{field}: is a directory, not an image file: {source}", param=field) from err
    except Exception as err:  # every storage backend has its own exception tree
        # An unknown URI scheme, a filesystem package that is not installed, a malformed URI, an
        # unreachable bucket: whatever the backend raises, the image named by this field could
        # not be read, and nothing has been sent or spent. (Airflow's retries still apply.)
        raise KlingValidationError(
            f"{field}: cannot read {source!s:.200}: {type(err).__name__}: {short(err)}", param=field
        ) from err
    name = os.path.splitext(path.name)[0] or "image"
    return data, name, int(size) if size is not None else len(data)
