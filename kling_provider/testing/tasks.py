"""The video API's tasks: creating one (``POST /v1/videos/generations``) and querying it
(``GET /v1/tasks/{task_id}``).

A create call is checked against the vendor's documents (:mod:`.validation`), charged, and
becomes a :class:`~.state.SimTask` whose whole life is planned at once: its length (the estimate,
jittered), any failure or cancellation the task faults ask for, and the failure the vendor
would report for an input image on this simulator that it could not use. A query then reads
the task at the simulated clock's "now" (:meth:`~.state.SimTask.view`).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from kling_provider.testing.errors import api_error, task_error_message
from kling_provider.testing.exchange import Exchange
from kling_provider.testing.files_api import own_file
from kling_provider.testing.state import SimTask, TaskView
from kling_provider.testing.validation import (
    GenerationSpec,
    RequestRejected,
    nearest_aspect_ratio,
    output_size,
    realistic_generation_seconds,
    validate_generation,
)

if TYPE_CHECKING:
    from kling_provider.testing.app import EvoLinkSimulator

__all__ = ["poll", "submit"]


async def submit(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``POST /v1/videos/generations``: check, charge, create; the answer is the new task."""
    try:
        body = json.loads(ex.body)
    except ValueError:
        return api_error(sim.error_shape, 400, message="Request body is not valid JSON")
    try:
        spec = validate_generation(body, reading=sim.reading)
    except RequestRejected as rejected:
        return api_error(
            sim.error_shape, rejected.status, code=rejected.code, message=rejected.message, param=rejected.param
        )
    if spec.model in sim.denied_models:
        return api_error(
            sim.error_shape,
            403,
            code="model_access_denied",
            message=f"Token does not have access to model: {spec.model}",
        )
    if not sim.state.charge(spec.credits):
        return api_error(sim.error_shape, 402, message=f"Insufficient quota: this task needs {spec.credits:g} credits.")
    task = _create_task(sim, spec, body, ex)
    ex.record.task_id = task.id
    return JSONResponse(_task_json(sim, task, TaskView("pending", 0), ex.base_url, task.created))


def _create_task(sim: EvoLinkSimulator, spec: GenerationSpec, body: dict[str, Any], ex: Exchange) -> SimTask:
    """The task ``spec`` asks for, its whole life planned now (length, faults, image problems)."""
    now = sim.clock.now()
    with sim.state.lock:
        estimated = sim.generation_seconds
        if estimated is None:
            estimated = realistic_generation_seconds(spec)
        spread = sim.duration_jitter
        jitter = sim.duration_rng.uniform(1 - spread, 1 + spread) if spread else 1.0
        actual = max(1e-3, estimated * jitter)
        pending = min(actual, 0.1 * actual if sim.pending_seconds is None else sim.pending_seconds)
        width = height = 0
        problem = _image_problem(sim, spec)
        if spec.kind == "video":
            aspect = spec.aspect_ratio or _adapted_aspect(sim, spec) or "16:9"
            width, height = output_size(spec.quality, aspect)
        task = SimTask(
            id=_new_id(sim, now),
            model=spec.model,
            owner=ex.owner,
            created=now,
            body=body,
            spec=spec,
            width=width,
            height=height,
            estimated_seconds=estimated,
            actual_seconds=actual,
            pending_seconds=pending,
            cancel_as=sim.cancel_style,
        )
        if spec.kind == "element":
            task.element_id = "el-" + sim.id_source.token(16)
            sim.state.elements[task.element_id] = spec.element_name or ""
        for fault in sim.faults.take_task_faults():
            if fault.kind == "fail_task":
                task.fail_code = fault.error_code
                task.fail_message = fault.message or task_error_message(fault.error_code)
                task.fail_at = None if fault.at_progress is None else task.time_at_progress(fault.at_progress)
            elif fault.kind == "bad_video":
                task.bad_video = fault.bad_video
            else:
                task.cancel_at = task.time_at_progress(fault.at_progress or 0)
                task.cancel_as = fault.cancel_as or sim.cancel_style
        if problem is not None:
            task.fail_code, task.fail_message = problem
            task.fail_at = task.starts_at
        sim.state.add_task(task)
    return task


def _new_id(sim: EvoLinkSimulator, now: float) -> str:
    """``task-unified-<unix>-<8 random>``, as the vendor's ids look."""
    while True:
        task_id = f"task-unified-{int(now)}-{sim.id_source.token(8)}"
        if task_id not in sim.state.tasks:
            return task_id


def _image_problem(sim: EvoLinkSimulator, spec: GenerationSpec) -> tuple[str, str] | None:
    """Why the vendor will fail to use an input image that lives on this simulator, if it will."""
    for url in spec.image_urls:
        ours, stored = own_file(sim, url)
        if not ours:
            continue  # somewhere on the internet: cannot check, assume fine
        if stored is None:
            return "image_processing_error", f"Failed to download the image (expired or unknown): {url}"
        if stored.mime_type not in ("image/jpeg", "image/png"):
            return "image_processing_error", f"Unsupported image format {stored.mime_type}: use JPG or PNG"
        if stored.width is not None and stored.height is not None:
            small = min(stored.width, stored.height) < 300
            ratio = stored.width / max(1, stored.height)
            if small or not 1 / 2.5 <= ratio <= 2.5:
                return (
                    "image_dimension_mismatch",
                    f"Image is {stored.width}x{stored.height}: width and height must be >= 300 px "
                    "and the aspect ratio between 1:2.5 and 2.5:1",
                )
    return None


def _adapted_aspect(sim: EvoLinkSimulator, spec: GenerationSpec) -> str | None:
    """The aspect ratio an image-to-video task without one adapts to: its first frame's."""
    if not spec.image_urls:
        return None
    _, stored = own_file(sim, spec.image_urls[0])
    if stored is None or not stored.width or not stored.height:
        return None
    return nearest_aspect_ratio(stored.width, stored.height)


def _task_json(sim: EvoLinkSimulator, task: SimTask, view: TaskView, base_url: str, now: float) -> dict[str, Any]:
    """The task object a create or a query answers, as ``view`` (the task at ``now``) shows it."""
    if sim.estimated_time_mode == "remaining":
        estimate = 0 if view.terminal else max(0, math.ceil(task.created + task.estimated_seconds - now))
    else:
        estimate = math.ceil(task.estimated_seconds)
    info: dict[str, Any] = {"can_cancel": not view.terminal, "estimated_time": estimate}
    if task.spec.kind == "video":
        info["video_duration"] = task.spec.duration
    data: dict[str, Any] = {
        "created": int(task.created),
        "id": task.id,
        "model": task.model,
        "object": "video.generation.task",
        "progress": view.progress,
        "status": view.status,
        "task_info": info,
        "type": "video",
        "usage": {
            "billing_rule": task.spec.billing_rule,
            "credits_reserved": task.spec.credits,
            "user_group": "default",
        },
    }
    if view.status == "completed":
        if task.spec.kind == "video":
            url = sim.links.url(task, base_url)
            data["results"] = [url]
            data["result_data"] = [
                {"video_url": url, "width": task.width, "height": task.height, "duration": task.spec.duration}
            ]
        else:
            data["results"] = []
            data["result_data"] = [{"element_id": task.element_id, "element_name": task.spec.element_name}]
    if view.error is not None:
        data["error"] = dict(view.error)
    return data


async def poll(sim: EvoLinkSimulator, ex: Exchange) -> Response:
    """``GET /v1/tasks/{task_id}``: the caller's own task, as it stands on the simulated clock."""
    task_id = ex.params["task_id"]
    if not task_id.startswith("task-unified-"):
        return api_error(
            sim.error_shape,
            400,
            code="invalid_task_id",
            message="Invalid task ID format, must start with 'task-unified-'",
            param="task_id",
        )
    task = sim.state.task(task_id)
    now = sim.clock.now()
    if task is None or (sim.task_ttl is not None and now > task.created + sim.task_ttl):
        return api_error(sim.error_shape, 404)
    if task.owner != ex.owner:
        return api_error(sim.error_shape, 403, message="You don't have permission to access this task")
    return JSONResponse(_task_json(sim, task, task.view(now), ex.base_url, now))
