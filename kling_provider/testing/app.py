"""The simulated EvoLink service: one ASGI app for the API host and the files host.

:class:`EvoLinkSimulator` is the app (serve it with uvicorn, or call it through
:meth:`~EvoLinkSimulator.async_transport` / :meth:`~EvoLinkSimulator.sync_transport`) and the
handle tests steer it with: the clock, the faults, the request log, task outcomes.

This module only assembles: the settings, the route table (:data:`ROUTES`, each path to a
handler function ``handler(sim, exchange)``), and the dispatch every request goes through (log
it, check the key and the rate limit, let a fault spoil the answer). The jobs live beside it:
:mod:`.tasks` (create and query tasks), :mod:`.files_api` (uploads, quota, uploaded files),
:mod:`.links` (signed result links and the video behind them), :mod:`.errors` (the vendor's error
bodies), :mod:`.delivery` (an answer sent whole, late or cut off), :mod:`.control` (what tests
call: request log, tasks, cancel/fail/fast_forward), on top of :mod:`.state`, :mod:`.validation`,
:mod:`.faults` and :mod:`.clock`.

Paths served (any host name: the files host and the API host may both point here):

==========================================  =========  ==========================================
``POST /v1/videos/generations``             submit     create a task (bearer key)
``GET  /v1/tasks/{task_id}``                poll       query a task (bearer key)
``POST /api/v1/files/upload/{base64,stream,url}``  upload  upload an image (bearer key)
``GET  /api/v1/files/quota``                quota      file quota (bearer key)
``GET  /files/results/{task_id}.mp4``       download   result video, pre-signed, expiring
``GET  /files/uploads/{file_id}/{name}``    file       an uploaded file (its ``file_url``)
``GET  /api/v1/files/download/{file_id}``   file       the same (its ``download_url``)
==========================================  =========  ==========================================
"""

from __future__ import annotations

import hmac
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kling_provider.testing import files_api, tasks
from kling_provider.testing.clock import SimClock
from kling_provider.testing.control import SimulatorControl
from kling_provider.testing.delivery import deliver_fault, send_answer
from kling_provider.testing.errors import FILE_API_PHASES, api_error, files_error
from kling_provider.testing.exchange import Exchange, bearer, fingerprint, loggable_json
from kling_provider.testing.faults import ErrorShape, FaultSet
from kling_provider.testing.ids import IdSource
from kling_provider.testing.links import ResultLinks, download
from kling_provider.testing.state import Phase, RequestRecord, SimState, SlidingWindowLimiter
from kling_provider.testing.transports import SimAsyncTransport, SimSyncTransport
from kling_provider.testing.validation import READINGS, Reading
from kling_provider.testing.videos import VideoCache

__all__ = ["DEFAULT_API_KEY", "EvoLinkSimulator"]

DEFAULT_API_KEY = "sk-sim-local"
_API_PHASES = frozenset({"submit", "poll", "upload", "quota"})
#: Pre-signed / public links (results, uploaded files): no key, GET and HEAD.
_LINK_PHASES = frozenset({"download", "file"})

#: A route's handler: called with the simulator and the request, returns the answer.
Handler = Callable[["EvoLinkSimulator", Exchange], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """``method`` requests whose path matches ``pattern`` (named groups: path parameters) go to ``handler``."""

    method: str
    pattern: re.Pattern[str]
    phase: Phase
    handler: Handler


#: Every path the simulator serves, first match wins (see the module docstring).
ROUTES: tuple[Route, ...] = (
    Route("POST", re.compile(r"/v1/videos/generations/?"), "submit", tasks.submit),
    Route("GET", re.compile(r"/v1/tasks/(?P<task_id>[^/]+)"), "poll", tasks.poll),
    Route("POST", re.compile(r"/api/v1/files/upload/base64"), "upload", files_api.upload_base64),
    Route("POST", re.compile(r"/api/v1/files/upload/stream"), "upload", files_api.upload_stream),
    Route("POST", re.compile(r"/api/v1/files/upload/url"), "upload", files_api.upload_url),
    Route("GET", re.compile(r"/api/v1/files/quota"), "quota", files_api.quota),
    Route("GET", re.compile(r"/files/results/(?P<task_id>[^/]+)\.mp4"), "download", download),
    Route("GET", re.compile(r"/files/uploads/(?P<file_id>[^/]+)/(?P<name>[^/]+)"), "file", files_api.serve_file),
    Route("GET", re.compile(r"/api/v1/files/download/(?P<file_id>[^/]+)"), "file", files_api.serve_file),
)


def _resolve(method: str, path: str) -> tuple[Route | None, Phase, dict[str, str], list[str]]:
    """(the route or None, phase, path parameters, methods the path allows)."""
    allowed: list[str] = []
    phase: Phase = "other"
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        if route.method == method or (method == "HEAD" and route.method == "GET" and route.phase in _LINK_PHASES):
            return route, route.phase, {k: unquote(v) for k, v in match.groupdict().items()}, [route.method]
        allowed.append(route.method)
        phase = route.phase
    return None, phase, {}, allowed


class EvoLinkSimulator(SimulatorControl):
    """A local stand-in for EvoLink's unified video API and file API (an ASGI app).

    :param api_keys: accepted bearer key(s) (default ``"sk-sim-local"``).
    :param accept_any_key: accept any non-empty key instead.
    :param clock: the :class:`SimClock` every answer reads (default: real time, speed 1).
    :param generation_seconds: ``task_info.estimated_time`` of every task; None = realistic
        60-180 s by duration and quality (30 s for custom elements).
    :param duration_jitter: the real duration is the estimate times uniform(1-j, 1+j) (seeded).
    :param pending_seconds: time in ``pending`` before ``processing`` (default 10 % of the run).
    :param estimated_time_mode: ``"total"`` (default): ``estimated_time`` is the whole task's
        expected length on every answer, as given at creation; ``"remaining"``: seconds left.
    :param link_lifetime: seconds a result link stays valid after completion (vendor: 24 h).
    :param error_shape: ``"string"`` codes (current docs) or ``"integer"`` codes equal to the HTTP
        status with ``param`` and ``fallback_suggestion`` (older docs, live traffic).
    :param credits: account balance; a submit costing more answers 402. None = unlimited.
    :param rate_limit_rpm: admitted API requests per key per sliding 60 s; more answer 429.
    :param rate_limit_retry_after: send ``Retry-After`` on those 429s.
    :param cancel_style: how a cancelled task shows: ``"cancelled"`` or ``"failed"`` with
        error code ``request_cancelled``.
    :param task_ttl: seconds after creation a task stays queryable (None = forever), then 404.
    :param file_lifetime: seconds an uploaded file lives (vendor: 72 h).
    :param max_files: live uploaded files allowed per key (vendor default group: 2000).
    :param denied_models: models the key may not use (403 ``model_access_denied``).
    :param seed: seeds jitter, ids and probabilistic faults, for reproducible runs.
    :param reading: where EvoLink's product page and its newer OpenAPI document disagree
        (kling-v3-image-to-video's end frame alone, ``aspect_ratio``, numeric element ids):
        ``"product-page"`` (default) accepts either document's form, ``"openapi"`` only the
        OpenAPI document's (see :data:`~kling_provider.testing.validation.Reading`).
    """

    def __init__(
        self,
        *,
        api_keys: str | Iterable[str] = (DEFAULT_API_KEY,),
        accept_any_key: bool = False,
        clock: SimClock | None = None,
        generation_seconds: float | None = 3.0,
        duration_jitter: float = 0.0,
        pending_seconds: float | None = None,
        estimated_time_mode: Literal["total", "remaining"] = "total",
        link_lifetime: float = 86400.0,
        error_shape: ErrorShape = "string",
        credits: float | None = None,
        rate_limit_rpm: int | None = None,
        rate_limit_retry_after: bool = True,
        cancel_style: Literal["cancelled", "failed"] = "cancelled",
        task_ttl: float | None = None,
        file_lifetime: float = 72 * 3600.0,
        max_files: int = 2000,
        denied_models: Iterable[str] = (),
        seed: int = 0,
        reading: Reading = "product-page",
    ) -> None:
        if not 0 <= duration_jitter < 1:
            raise ValueError("duration_jitter must be in [0, 1)")
        if error_shape not in ("string", "integer"):
            raise ValueError("error_shape must be 'string' or 'integer'")
        if reading not in READINGS:
            raise ValueError(f"reading must be one of {', '.join(READINGS)} (got {reading!r})")
        self.reading: Reading = reading
        self.api_keys = frozenset([api_keys] if isinstance(api_keys, str) else api_keys)
        self.accept_any_key = accept_any_key
        self.clock = clock or SimClock()
        self.generation_seconds = generation_seconds
        self.duration_jitter = duration_jitter
        self.pending_seconds = pending_seconds
        self.estimated_time_mode = estimated_time_mode
        self.error_shape: ErrorShape = error_shape
        self.rate_limit_retry_after = rate_limit_retry_after
        self.cancel_style: Literal["cancelled", "failed"] = cancel_style
        self.task_ttl = task_ttl
        self.file_lifetime = file_lifetime
        self.max_files = max_files
        self.denied_models = frozenset(denied_models)
        self.state = SimState(credits=credits)
        self.faults = FaultSet(seed=seed)
        #: Draws each task's real length from its estimate (``duration_jitter``).
        self.duration_rng = random.Random(seed)
        #: The random parts of task, element and file ids.
        self.id_source = IdSource(seed + 1)
        self._videos = VideoCache()
        #: Signs and judges result links; a subclass put here changes the link policy.
        self.links = ResultLinks(link_lifetime)
        self._limiter: SlidingWindowLimiter | None = None
        self.rate_limit_rpm = rate_limit_rpm

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tasks={len(self.state.tasks)}, clock={self.clock!r})"

    # -- configuration that rebuilds state --------------------------------------------------

    @property
    def link_lifetime(self) -> float:
        """Seconds a result link stays valid after completion (``links.lifetime``)."""
        return self.links.lifetime

    @link_lifetime.setter
    def link_lifetime(self, value: float) -> None:
        self.links.lifetime = value

    @property
    def rate_limit_rpm(self) -> int | None:
        return self._rate_limit_rpm

    @rate_limit_rpm.setter
    def rate_limit_rpm(self, value: int | None) -> None:
        self._rate_limit_rpm = value
        self._limiter = None if value is None else SlidingWindowLimiter(int(value), 60.0)

    # -- serving in-process ------------------------------------------------------------------

    def async_transport(self) -> SimAsyncTransport:
        """An httpx async transport that serves requests from this app in-process."""
        return SimAsyncTransport(self)

    def sync_transport(self) -> SimSyncTransport:
        """An httpx sync transport that serves requests from this app (on a private loop thread)."""
        return SimSyncTransport(self)

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        route, phase, params, allowed = _resolve(request.method, request.url.path)
        key = bearer(request.headers.get("authorization"))
        record = RequestRecord(
            time=self.clock.now(),
            method=request.method,
            path=request.url.path,
            phase=phase,
            query=request.url.query,
            task_id=params.get("task_id"),
            key_present=key is not None,
            authorized=key is not None and self._key_ok(key),
        )
        self.state.log(record)
        body = await request.body()
        record.json = loggable_json(request, body)
        exchange = Exchange(
            request=request,
            record=record,
            params=params,
            body=body,
            key=key,
            owner=fingerprint(key or ""),
            base_url=str(request.base_url).rstrip("/"),
        )
        fault = self.faults.take(phase, record.task_id)
        if fault is None:
            await send_answer(await self._handle(exchange, route, allowed), record, scope, receive, send)
            return
        record.fault = fault.kind
        response = await self._handle(exchange, route, allowed) if fault.processes(request.method) else None
        await deliver_fault(fault, record, response, self.error_shape, scope, receive, send)

    async def _handle(self, ex: Exchange, route: Route | None, allowed: list[str]) -> Response:
        """The real answer: 404/405 off the route table, 401/429 at the gate, else the handler's."""
        if route is None:
            if allowed:
                return api_error(self.error_shape, 405, headers={"Allow": ", ".join(allowed)})
            return api_error(self.error_shape, 404, code="not_found", message=f"No such path: {ex.record.path}")
        phase = ex.record.phase
        if phase in _API_PHASES:
            if not ex.record.authorized:
                if phase in FILE_API_PHASES:
                    return files_error(401, "Invalid or expired token")
                return api_error(
                    self.error_shape, 401, message="Invalid or expired token" if ex.key else "Authentication required"
                )
            refused = self._rate_limited(ex)
            if refused is not None:
                return refused
        return await route.handler(self, ex)

    def _key_ok(self, key: str) -> bool:
        return bool(key) if self.accept_any_key else any(hmac.compare_digest(key, k) for k in self.api_keys)

    def _rate_limited(self, ex: Exchange) -> Response | None:
        if self._limiter is None:
            return None
        wait = self._limiter.acquire(ex.owner, self.clock.now())
        if wait is None:
            return None
        seconds = max(1, math.ceil(wait))
        headers = {"Retry-After": str(seconds)} if self.rate_limit_retry_after else None
        if ex.record.phase in FILE_API_PHASES:
            return files_error(429, f"Too many requests, retry after {seconds} seconds", headers=headers)
        return api_error(self.error_shape, 429, hint=seconds, headers=headers)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
