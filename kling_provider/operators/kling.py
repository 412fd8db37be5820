"""Kling operators for DAGs: text-to-video, image-to-video, and reusable elements.

::

    KlingTextToVideoOperator(
        task_id="teaser",
        prompt="A {{ params.product }} spinning on a marble table, studio light",
        duration=5,
        output_uri="s3://videos/{{ ds }}/teaser.mp4",
        output_conn_id="aws_default",
    )

Each returns a small dict (XCom) for downstream tasks; each class docstring lists its keys and
documents every argument, the shared ones too (:data:`VIDEO_PARAMS`, :data:`.BASE_PARAMS`).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Asset, AssetAlias, BaseOperatorLink

from kling_provider._compat import AirflowFailException
from kling_provider.exceptions import KlingLinkExpiredError, KlingServerError, KlingValidationError
from kling_provider.models.untrusted import exact_str, show
from kling_provider.operators import reuse
from kling_provider.operators.base import (
    _PLACEHOLDER_URL,
    BASE_PARAMS,
    LINK_LIFETIME,
    BaseKlingOperator,
    _finite,
    _is_template,
    _is_url,
    lazy_request_model,
    with_base_params,
)
from kling_provider.operators.links import browser_url, decided_link
from kling_provider.operators.mapping import UNKNOWN

# Storage, the video checks, the poster and the lineage facts (two frozen dataclasses, ~1 ms each
# to define) are imported by the methods that use them: a DAG file builds operators without
# loading them (bench #4).

if TYPE_CHECKING:
    from airflow.sdk import Context

    from kling_provider.hooks.kling import KlingHook, SavedVideo
    from kling_provider.models import KlingRequest, Task
    from kling_provider.operators.lineage_facts import LineageSubject
    from kling_provider.operators.state import RemoteTask
    from kling_provider.pricing import CostEstimate

#: The asset alias name the docs use: ``asset_alias=DEFAULT_ASSET_ALIAS`` on the operators and
#: ``schedule=[AssetAlias("kling-videos")]`` runs a DAG on every new video. Not on by default:
#: Airflow logs two warnings for every asset first reached through an alias ("AssetModel ... not
#: found; cannot create asset event", then "Emitting event for inactive AssetModel"), and every
#: saved video is a new asset (docs/logs.md).
DEFAULT_ASSET_ALIAS = "kling-videos"
#: What the path itself rules out (a name too long, a file where a folder must be): the input's fault.
_UNWRITABLE_PATH = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR})


#: The arguments text- and image-to-video share (:class:`_VideoOperator`), and what they return;
#: added to their docstrings by :func:`.with_base_params`.
VIDEO_PARAMS = """
:param negative_prompt: what to avoid, <= 2,500 characters (templated); v3 (not turbo, not o3) only.
:param duration: seconds, an integer from 3 to 15 (default 5); billed per second (3 s minimum).
:param quality: ``"720p"`` (default), ``"1080p"`` or ``"4k"`` (4k has no published price; turbo has none).
:param sound: generate audio too (default False); costs more per second; not on turbo.
:param multi_shot: several shots in one video; None: on when ``shots`` or ``shot_type`` is given.
:param shot_type: ``"customize"`` (your ``shots``) or ``"intelligence"`` (Kling plans them; v3
    only); needs ``multi_shot``. None with ``shots`` means ``"customize"``.
:param shots: customised shots, 1 to 6 ``{"prompt": str <= 512 chars, "duration": int}``,
    durations adding up to ``duration`` (templated); implies ``multi_shot=True``. turbo gets them
    written into its prompt (``镜头 n, m, words;``).
:param watermark: True/False asks EvoLink for / against a watermark; None leaves EvoLink's
    default. Not on turbo.
:param output_uri: where to save the MP4: a local path, ``file://``, or an object-storage URI
    (``s3://bucket/key.mp4``) (templated); written atomically, then checked against the request
    (duration, quality, orientation, sound; docs/review.md). Without it the video is only at
    EvoLink's link, which expires after 24 hours.
:param output_conn_id: connection for ``output_uri`` on object storage (e.g. ``aws_default``; templated).
:param asset_alias: with ``output_uri``, report the saved file as an Asset event under this
    ``AssetAlias``, e.g. ``DEFAULT_ASSET_ALIAS`` (``"kling-videos"``). None (default): no event,
    since Airflow warns twice for every new asset reached through an alias (docs/logs.md).
:param if_exists: when ``output_uri`` already holds a file: ``"skip"`` (default) returns the
    result saved with a video made from the same request, sending nothing (the ``.kling.json``
    sidecar beside the video records it), and generates anew otherwise; ``"overwrite"`` always
    generates; ``"fail"`` fails before any request (docs/reliability.md).
:param on_mismatch: when the saved video differs from the request: ``"warn"`` (default) logs
    what differs and the EvoLink task id; ``"fail"`` fails the task without retrying (the video
    was paid for: a retry would only fetch it again).
:param poster: also save a poster frame (JPEG) beside the video (``teaser.mp4`` ->
    ``teaser.poster.jpg``); needs ``output_uri`` and the ``review`` extra (PyAV, Pillow).
:param poster_at: with ``poster=True``, the frame's time in seconds; None takes the middle.
:returns: (the XCom) a dict: ``id`` (the EvoLink task id), ``model``, ``status``
    (``"completed"``), ``video_url`` (EvoLink's link) and ``expires_at`` (ISO time it stops
    working), ``output_uri`` (where the video was saved, or None), ``duration``, ``quality``,
    ``sound``, ``credits_reserved`` (what EvoLink reserved), ``estimated_credits`` and
    ``estimated_usd`` (this provider's estimate; None when unknown), ``video`` (with ``output_uri``:
    the saved file's own metadata, ``matches_request`` and ``mismatches``), ``poster_uri`` (with
    ``poster``) and ``reused`` (True when a video saved earlier from the same request was returned
    and nothing was sent: its credits were paid then, not now).
"""


class KlingVideoLink(BaseOperatorLink):
    """The "Kling video" button on a task: the saved video where a browser can open it, else
    EvoLink's link while it lives (24 h); empty before there is a video.

    Airflow 3 calls this on the worker as each try ends and stores the answer (XCom
    ``_link_KlingVideoLink``); the UI shows that stored value. So it answers from what the
    operator decided in this try (:func:`.links.remember_link`) and never looks anything up: a
    lookup of a value that a try failing early never wrote is logged by Airflow as an error.
    """

    name = "Kling video"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return decided_link(operator)


class _VideoOperator(BaseKlingOperator):
    """Text- and image-to-video: prompts, duration, quality, sound, shots, and saving the result."""

    template_fields: Sequence[str] = (
        "prompt",
        "negative_prompt",
        "shots",
        "elements",
        "callback_url",
        "output_uri",
        "output_conn_id",
    )
    operator_extra_links = (KlingVideoLink(),)
    placeholders: ClassVar[dict[str, Any]] = {"elements[]": "element-placeholder-{i}"}

    # Arguments as stored by __init__ (BaseKlingOperator._store).
    if_exists: str
    prompt: str | None
    negative_prompt: str | None
    duration: int
    quality: str
    sound: bool
    multi_shot: bool | None
    shot_type: str | None
    shots: Sequence[Any] | None
    watermark: bool | None
    elements: Sequence[str] | None
    aspect_ratio: str | None
    output_uri: str | None
    output_conn_id: str | None
    asset_alias: str | None
    on_mismatch: str
    poster: bool
    poster_at: float | None

    def __init__(
        self,
        *,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        duration: int = 5,
        quality: str = "720p",
        sound: bool = False,
        multi_shot: bool | None = None,
        shot_type: str | None = None,
        shots: Sequence[Any] | None = None,
        watermark: bool | None = None,
        elements: Sequence[str] | None = None,
        output_uri: str | None = None,
        output_conn_id: str | None = None,
        asset_alias: str | None = None,
        on_mismatch: str = "warn",
        poster: bool = False,
        poster_at: float | None = None,
        if_exists: str = "skip",
        aspect_ratio: str | None = None,
        **kwargs: Any,
    ) -> None:
        if_exists = reuse.check_if_exists(if_exists)
        asset_alias = _check_output_settings(output_uri, output_conn_id, asset_alias)
        _check_review_settings(output_uri, on_mismatch, poster, poster_at)
        if output_uri is not None and asset_alias:
            outlets = list(kwargs.pop("outlets", None) or [])
            outlets.append(AssetAlias(name=asset_alias))
            kwargs["outlets"] = outlets
        super().__init__(**kwargs)
        self._store(
            if_exists=if_exists,
            prompt=prompt,
            negative_prompt=negative_prompt,
            duration=duration,
            quality=quality,
            sound=sound,
            multi_shot=multi_shot,
            shot_type=shot_type,
            shots=list(shots) if isinstance(shots, list | tuple) else shots,
            watermark=watermark,
            elements=elements,
            aspect_ratio=aspect_ratio,
            # An exact str: storage and re-run code call its methods (a str subclass's own may differ).
            output_uri=exact_str(output_uri),
            output_conn_id=exact_str(output_conn_id),
            asset_alias=asset_alias if output_uri is not None else None,
            on_mismatch=on_mismatch,
            poster=poster,
            poster_at=poster_at,
        )
        self._validate_literals()

    def request_arguments(self) -> dict[str, Any]:
        multi_shot = self.multi_shot
        if multi_shot is None:
            multi_shot = _empty_as_none(self.shots) is not None or self.shot_type is not None
        shot_type = self.shot_type
        # "is True": the model checks multi_shot is a bool; its truth must not be asked first.
        if multi_shot is True and shot_type is None and _empty_as_none(self.shots) is not None:
            shot_type = "customize"
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "duration": self.duration,
            "quality": self.quality,
            "sound": self.sound,
            "multi_shot": multi_shot,
            "shot_type": shot_type,
            "shots": _empty_as_none(self.shots),
            "watermark": self.watermark,
            "elements": _empty_as_none(self.elements),
            "callback_url": self.callback_url,
            "aspect_ratio": self.aspect_ratio,
        }

    def lineage_subject(self) -> LineageSubject:
        from kling_provider.operators.lineage_facts import flatten

        return replace(super().lineage_subject(), elements=flatten(self.elements), output_uri=self.output_uri)

    def save_output(self, context: Context, task: Task, observed_at: float) -> str | None:
        expires = _expires_at(task, observed_at)
        if not task.video_url:
            raise KlingServerError(f"EvoLink task {task.id} completed without a result URL")
        if not self.output_uri:
            self.log.warning(
                "No output_uri: the video is only at %s, and that link expires at %s. Set output_uri to keep it.",
                task.video_url,
                expires,
            )
            return None
        from kling_provider.storage import resolve_destination

        # No sidecar may describe the old video while (or after) the new one replaces it.
        reuse.forget(resolve_destination(str(self.output_uri), self.output_conn_id))
        hook = self.get_hook()
        try:
            saved = self._download(hook, task, expires)
        finally:
            hook.close()
        self.log.info("Saved %s (%d bytes) from EvoLink task %s", saved.uri, saved.size, task.id)
        self._video_report = self._verify(saved.uri, task)
        if self.poster:
            from kling_provider.video.poster import save_poster

            frame = save_poster(saved.uri, at=self.poster_at, conn_id=self.output_conn_id)
            self.log.info("Poster frame at %.2f s: %s", frame.time_s, frame.uri)
            self._poster_uri = frame.uri
        self._emit_asset_event(context, saved.uri, task)
        return saved.uri

    def _verify(self, uri: str, task: Task) -> dict[str, Any]:
        """Compare the saved video's own metadata with the request (docs/review.md): a mismatch
        is logged, or fails the task without retries with ``on_mismatch="fail"`` (it was paid for:
        a retry would download the same video, or pay for a new one)."""
        from kling_provider.video import NotAnMp4Error, check_video, read_video_info_at
        from kling_provider.video.checks import video_report

        try:
            info = read_video_info_at(uri, self.output_conn_id)
        except NotAnMp4Error as err:
            raise KlingServerError(
                f"The video of EvoLink task {task.id} saved at {uri} is not a readable MP4 ({err}); a retry "
                "downloads it again (the generation is not paid again)"
            ) from None
        mismatches = check_video(
            info,
            duration=self.duration,
            quality=self.quality,
            sound=self.sound,
            aspect_ratio=self.aspect_ratio,
        )
        if mismatches:
            message = (
                f"The video of EvoLink task {task.id} does not match the request: it "
                + "; it ".join(m.message for m in mismatches)
                + f". It was paid for: raise it with EvoLink, quoting task id {task.id}."
            )
            if self.on_mismatch == "fail":
                raise AirflowFailException(message + " (on_mismatch='fail': not retried, a retry would pay again)")
            self.log.warning(message)
        else:
            self.log.info(
                "The video of EvoLink task %s matches the request: %gs, %dx%d, %s, %s",
                task.id,
                info.duration_s,
                info.width,
                info.height,
                info.codec,
                "with sound" if info.has_audio else "silent",
            )
        return video_report(info, mismatches)

    def _download(self, hook: KlingHook, task: Task, expires: str) -> SavedVideo:
        """Download; on an expired link ask EvoLink once more, in case it hands out a fresh one.

        Whether a completed task's link is renewed on query is undocumented (open question), so
        this only tries: an unchanged link fails the task for good, since retries cannot help.
        """
        assert task.video_url is not None
        try:
            return hook.download(task.video_url, str(self.output_uri), conn_id=self.output_conn_id, expires_at=expires)
        except KlingLinkExpiredError as expired:
            fresh = hook.get_task(task.id).video_url
            if not fresh or fresh == task.video_url:
                raise AirflowFailException(expired.message) from None
            self.log.info("EvoLink issued a fresh link for task %s; downloading from it", task.id)
            return hook.download(fresh, str(self.output_uri), conn_id=self.output_conn_id)

    def _emit_asset_event(self, context: Context, uri: str, task: Task) -> None:
        if not self.asset_alias:
            return

        context["outlet_events"][AssetAlias(name=self.asset_alias)].add(
            Asset(uri=uri), extra={"kling_task_id": task.id, "model": task.model}
        )

    # -- re-runs: the sidecar beside the saved video (kling_provider.operators.reuse) -----------

    def reuse_saved(
        self, context: Context, hook: KlingHook, kwargs: dict[str, Any], request: KlingRequest, prior: RemoteTask | None
    ) -> dict[str, Any] | None:
        if not self.output_uri:
            return None
        from kling_provider.storage import destination_uri, file_size, resolve_destination, unwritable_reason

        self._fingerprint = self._request_fingerprint(hook, kwargs, request)

        try:
            target = resolve_destination(str(self.output_uri), self.output_conn_id)
            sidecar = reuse.read_sidecar(target)
        except KlingValidationError:
            raise
        except ValueError as err:  # a scheme no filesystem is registered for (https://...): before any POST
            raise KlingValidationError(f"output_uri: cannot be written to ({err})", param="output_uri") from None
        except OSError as err:
            if err.errno not in _UNWRITABLE_PATH:
                raise  # the storage itself (permissions, an outage): the try fails and retries
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise KlingValidationError(f"output_uri: cannot be written to ({reason})", param="output_uri") from None
        unwritable = unwritable_reason(target)
        if unwritable is not None:
            raise KlingValidationError(f"output_uri: cannot be written to ({unwritable})", param="output_uri")
        # Saved by an earlier try of this same task instance, which then died before finishing.
        ours = sidecar is not None and prior is not None and sidecar.task_id == prior.task_id
        same = sidecar is not None and self.if_exists == "skip" and sidecar.fingerprint == self._fingerprint
        if sidecar is not None and (ours or same):
            if reuse.video_is_intact(target, sidecar):
                return self._reuse(sidecar)
            self.log.info("%s no longer holds the video of %s: generating anew", sidecar.video_uri, sidecar.describe())
            return None
        if prior is not None or file_size(target) is None:
            return None  # nothing there, or a retry continuing the generation its first try began
        where = destination_uri(target)
        if self.if_exists == "fail":
            raise AirflowFailException(
                f"output_uri: {where} already exists and if_exists='fail'; nothing was submitted. Remove it, "
                "choose another output_uri, or set if_exists='skip' (reuse a video saved from the same "
                "request) or 'overwrite'."
            )
        if sidecar is not None and self.if_exists == "skip":
            self.log.info(
                "%s holds a video from a different request (%s): generating anew, it will be replaced",
                where,
                sidecar.describe(),
            )
        elif sidecar is None:
            self.log.info(
                "%s exists with no %s record of the request that made it: generating anew, it will be replaced",
                where,
                reuse.SIDECAR_SUFFIX,
            )
        return None

    def _reuse(self, sidecar: Any) -> dict[str, Any]:
        from kling_provider.operators.lineage_facts import LineageFacts

        result = {**sidecar.result, "reused": True}
        self._lineage = LineageFacts(
            sidecar.task_id, model=sidecar.model, status="completed", credits_reserved=sidecar.credits
        ).with_result(result)
        self.log.info("Skipped: already saved at %s (%s)", sidecar.video_uri, sidecar.describe())
        return result

    def _request_fingerprint(self, hook: KlingHook, kwargs: dict[str, Any], request: KlingRequest) -> str:
        """The request as asked for, images by content (see :func:`.reuse.request_fingerprint`)."""

        def identity(field: str, value: Any) -> str:
            if _is_url(value):
                return exact_str(value)
            return hook.image_digest(exact_str(value), field=field, conn_id=self.image_conn_id)

        images: dict[str, Any] = {}
        for name in self.image_fields:
            value = kwargs.get(name)
            if isinstance(value, list | tuple):
                images[name] = [identity(f"{name}[{i}]", v) for i, v in enumerate(value)]
            elif value is not None:
                images[name] = identity(name, value)
        return reuse.request_fingerprint(request.to_body(), images)

    def remember_output(self, context: Context, task: Task, result: dict[str, Any]) -> None:
        """Write the sidecar, after the video is complete (see :mod:`.reuse` on the order)."""
        saved_uri = result.get("output_uri")
        if not saved_uri or not self.output_uri or self._fingerprint is None:
            return
        from kling_provider.storage import resolve_destination

        reuse.record(resolve_destination(str(self.output_uri), self.output_conn_id), task.id, self._fingerprint, result)

    def link_for(self, result: Mapping[str, Any]) -> str:
        """The saved copy where a browser can open it (:mod:`.links`), else EvoLink's link until it
        expires; then nothing, said in the log (an extra link can only be a URL or empty)."""
        saved = result.get("output_uri")
        if saved and self.output_uri:
            from kling_provider.storage import resolve_destination

            browsable = browser_url(str(saved), resolve_destination(str(self.output_uri), self.output_conn_id))
            if browsable:
                return browsable
        url, expires = result.get("video_url"), result.get("expires_at")
        if not isinstance(url, str) or not url:
            return ""
        if isinstance(expires, str) and _has_passed(expires):
            self.log.info(
                "The 'Kling video' link is left empty: EvoLink's link expired at %s%s",
                expires,
                f"; the video is saved at {saved}" if saved else "",
            )
            return ""
        return url

    def outcome(self, result: Mapping[str, Any]) -> str:
        saved = result.get("output_uri")
        if saved:
            return f"video saved to {saved}"
        return f"video not saved (no output_uri), at EvoLink's link until {result.get('expires_at')}"

    def build_result(self, task: Task, saved_uri: str | None, estimate: CostEstimate) -> dict[str, Any]:
        """The XCom: everything a downstream task needs, JSON-serialisable."""
        return {
            "id": task.id,
            "model": task.model or estimate.model,
            "status": task.status.value,
            "video_url": task.video_url,
            "expires_at": _expires_at(task, time.time()),
            "output_uri": saved_uri,
            "duration": self.duration,
            "quality": self.quality,
            "sound": self.sound,
            "credits_reserved": task.usage.credits_reserved if task.usage else None,
            "estimated_credits": estimate.credits,
            "estimated_usd": estimate.usd,
            "video": getattr(self, "_video_report", None) if saved_uri else None,
            "poster_uri": getattr(self, "_poster_uri", None) if saved_uri else None,
            "reused": False,
        }


@with_base_params(VIDEO_PARAMS, BASE_PARAMS)
class KlingTextToVideoOperator(_VideoOperator):
    """Generate a video from a prompt (docs/operators/text_to_video.md).

    :param model: ``"kling-v3-text-to-video"`` (used when left out), ``"kling-v3-turbo-text-to-video"``
        or ``"kling-o3-text-to-video"``; each model's own rules are checked.
    :param prompt: what to show, <= 2,500 characters (templated). Required unless ``shots`` are
        given: with customised shots leave it out, the shots carry the text.
    :param aspect_ratio: ``"16:9"``, ``"9:16"`` or ``"1:1"``; None leaves EvoLink's default.
    :param elements: ``kling-o3-text-to-video`` only: up to 7 element ids (from
        :class:`KlingCreateElementOperator`), referred to in prompts as ``<<<element_1>>>``...
        (templated).
    """

    request_class = lazy_request_model("TextToVideoRequest")


@with_base_params(VIDEO_PARAMS, BASE_PARAMS)
class KlingImageToVideoOperator(_VideoOperator):
    """Animate an image, optionally towards an end frame (docs/operators/image_to_video.md).

    :param model: ``"kling-v3-image-to-video"`` (used when left out),
        ``"kling-v3-turbo-image-to-video"`` or ``"kling-o3-image-to-video"``; each model's own
        rules are checked.
    :param image_start: first frame: an https URL, a local path, or an object-storage path/URI
        (``s3://...``, read with ``image_conn_id``); templated. Non-URLs are checked (JPG/PNG,
        <= 10 MB, >= 300 px, aspect 1:2.5 to 2.5:1) and uploaded through EvoLink's file API.
        Required except on v3 with ``image_end`` and on o3 with ``image_urls``.
    :param image_end: last frame, same forms; may stand alone on v3 (the product page says so,
        its OpenAPI document does not), needs ``image_start`` on o3, not on turbo.
    :param image_urls: ``kling-o3-image-to-video`` only: reference images, same forms, referred to
        in prompts as ``<<<image_N>>>``.
    :param aspect_ratio: ``"16:9"``, ``"9:16"`` or ``"1:1"``: o3, and v3 as its product page
        documents; left out, the video follows the frame (and its orientation is not checked).
        Not on turbo.
    :param prompt: what to show, <= 2,500 characters (templated); optional on v3 and turbo,
        required on o3.
    :param elements: element ids (from :class:`KlingCreateElementOperator`), referred to in
        prompts as ``<<<element_1>>>``... (templated): o3 up to 7 with its images (3 with
        ``image_start``), v3 up to 3, turbo none.
    """

    request_class = lazy_request_model("ImageToVideoRequest")

    template_fields: Sequence[str] = (*_VideoOperator.template_fields, "image_start", "image_end", "image_urls")
    image_fields: ClassVar[Sequence[str]] = ("image_start", "image_end", "image_urls")

    # Arguments as stored by __init__ (BaseKlingOperator._store).
    image_start: Any
    image_end: Any
    image_urls: Sequence[Any] | None

    def __init__(
        self,
        *,
        image_start: Any = None,
        image_end: Any = None,
        image_urls: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Before the video operator's __init__, whose parse-time check reads them.
        self._store(
            image_start=image_start,
            image_end=image_end,
            image_urls=list(image_urls) if isinstance(image_urls, list | tuple) else image_urls,
        )
        super().__init__(**kwargs)

    placeholders: ClassVar[dict[str, Any]] = {
        **_VideoOperator.placeholders,
        "image_start": _PLACEHOLDER_URL,
        "image_end": _PLACEHOLDER_URL,
        "image_urls[]": "https://example.com/placeholder-{i}.png",
    }

    def request_arguments(self) -> dict[str, Any]:
        return {
            **super().request_arguments(),
            "image_start": self.image_start,
            "image_end": self.image_end,
            "image_urls": _empty_as_none(self.image_urls),
        }

    def lineage_subject(self) -> LineageSubject:
        from kling_provider.operators.lineage_facts import flatten

        inputs = flatten(self.image_start, self.image_end, self.image_urls)
        return replace(super().lineage_subject(), inputs=inputs)


@with_base_params(BASE_PARAMS)
class KlingCreateElementOperator(BaseKlingOperator):
    """Create a reusable element (a character or object) with ``kling-custom-element``
    (docs/operators/create_element.md).

    Give either ``frontal_image`` and 1 to 3 ``refer_images``, or one ``refer_video``.

    :param element_name: the element's name, 1 to 20 characters (templated).
    :param element_description: its description, 1 to 100 characters (templated).
    :param frontal_image: the front view: an https URL, a local path, or an object-storage
        path/URI (templated); non-URLs are checked and uploaded as for
        :class:`KlingImageToVideoOperator`.
    :param refer_images: 1 to 3 more views, same forms (templated).
    :param refer_video: one reference video URL, instead of images (templated).
    :param element_voice_id: a voice id for a video-referenced element (``video_refer`` only).
    :param reference_type: ``"image_refer"`` or ``"video_refer"``; None infers it from the
        material given.
    :param model: ``"kling-custom-element"``, the only model accepted (used when left out).
    :returns: (the XCom) a dict: ``element_id`` (pass it to :class:`KlingImageToVideoOperator`
        ``elements=`` downstream), ``id`` (the EvoLink task id), ``model``, ``status``,
        ``element_name``, ``credits_reserved`` (what EvoLink reserved).
    """

    request_class = lazy_request_model("CustomElementRequest")

    template_fields: Sequence[str] = (
        "element_name",
        "element_description",
        "frontal_image",
        "refer_images",
        "refer_video",
        "callback_url",
    )
    image_fields: ClassVar[Sequence[str]] = ("frontal_image", "refer_images")
    placeholders: ClassVar[dict[str, Any]] = {
        "frontal_image": _PLACEHOLDER_URL,
        "refer_images": [_PLACEHOLDER_URL],
        "refer_images[]": "https://example.com/placeholder-{i}.png",
        "refer_video": "https://example.com/placeholder.mp4",
    }

    # Arguments as stored by __init__ (BaseKlingOperator._store).
    element_name: str
    element_description: str
    frontal_image: Any
    refer_images: Sequence[Any] | None
    refer_video: str | None
    element_voice_id: str | None
    reference_type: str | None

    def __init__(
        self,
        *,
        element_name: str,
        element_description: str,
        frontal_image: Any = None,
        refer_images: Sequence[Any] | None = None,
        refer_video: str | None = None,
        element_voice_id: str | None = None,
        reference_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._store(
            element_name=element_name,
            element_description=element_description,
            frontal_image=frontal_image,
            refer_images=list(refer_images) if isinstance(refer_images, list | tuple) else refer_images,
            refer_video=refer_video,
            element_voice_id=element_voice_id,
            reference_type=reference_type,
        )
        self._validate_literals()

    def request_arguments(self) -> dict[str, Any]:
        return {
            "element_name": self.element_name,
            "element_description": self.element_description,
            "frontal_image": self.frontal_image,
            "refer_images": _empty_as_none(self.refer_images),
            "refer_video": self.refer_video,
            "element_voice_id": self.element_voice_id,
            "reference_type": self.reference_type,
            "callback_url": self.callback_url,
        }

    def lineage_subject(self) -> LineageSubject:
        from kling_provider.operators.lineage_facts import flatten

        inputs = flatten(self.frontal_image, self.refer_images, self.refer_video)
        return replace(super().lineage_subject(), inputs=inputs)

    def outcome(self, result: Mapping[str, Any]) -> str:
        return f"created element_id {result.get('element_id')} ({result.get('element_name')!r})"

    def build_result(self, task: Task, saved_uri: str | None, estimate: CostEstimate) -> dict[str, Any]:
        element_id = task.element_id
        if element_id is None:
            raise KlingServerError(f"EvoLink task {task.id} completed but its result_data holds no element_id")
        return {
            "element_id": element_id,
            "id": task.id,
            "model": task.model or estimate.model,
            "status": task.status.value,
            "element_name": self.element_name,
            "credits_reserved": task.usage.credits_reserved if task.usage else None,
        }


def _empty_as_none(value: Any) -> Any:
    """An empty list, tuple or string means "not given"; never asks a user object for its truth."""
    if isinstance(value, list):
        return value if list.__len__(value) else None
    if isinstance(value, tuple):
        return value if tuple.__len__(value) else None
    if isinstance(value, str):
        return value if str.__len__(value) else None
    return value


def _check_output_settings(output_uri: Any, output_conn_id: Any, asset_alias: Any) -> str | None:
    """Where the video goes: a path or URI (or a template), a connection id, an asset alias name.

    Returns the alias as a plain ``str``."""
    if output_uri is not None and not isinstance(output_uri, str | os.PathLike) and not _is_template(output_uri):
        raise KlingValidationError(
            f"output_uri: must be a local path or a URI such as s3://bucket/key.mp4 (got {show(output_uri)})",
            param="output_uri",
        )
    if output_conn_id is not None and not isinstance(output_conn_id, str) and not _is_template(output_conn_id):
        raise KlingValidationError(
            f"output_conn_id: must be a connection id (got {show(output_conn_id)})", param="output_conn_id"
        )
    if asset_alias is None:
        return None
    if not isinstance(asset_alias, str):
        raise KlingValidationError(f"asset_alias: must be a string (got {show(asset_alias)})", param="asset_alias")
    alias = exact_str(asset_alias)

    try:
        AssetAlias(name=alias)
    except (TypeError, ValueError) as err:
        raise KlingValidationError(f"asset_alias: {err} (got {show(alias)})", param="asset_alias") from None
    return alias


def _check_review_settings(output_uri: Any, on_mismatch: Any, poster: Any, poster_at: Any) -> None:
    """on_mismatch, poster and poster_at, at parse time (a poster also needs PyAV and Pillow)."""

    # The type first: a hostile object's __eq__ must not run before it is refused.
    if not isinstance(on_mismatch, str) or exact_str(on_mismatch) not in ("warn", "fail"):
        raise KlingValidationError(
            f"on_mismatch: must be 'warn' or 'fail' (got {show(on_mismatch)})", param="on_mismatch"
        )
    if not isinstance(poster, bool):
        raise KlingValidationError(f"poster: must be True or False (got {show(poster)})", param="poster")

    # _finite: a real number that is not a bool and fits a float (10**120 does not).
    if poster_at is not None and ((seconds := _finite(poster_at)) is None or seconds < 0):
        raise KlingValidationError(
            f"poster_at: must be a time in seconds >= 0, or None for the middle (got {show(poster_at)})",
            param="poster_at",
        )
    if poster_at is not None and not poster:
        raise KlingValidationError("poster_at: only used with poster=True", param="poster_at")
    if poster:
        # A mapped operator's parse-time check may not know output_uri yet (an expand_kwargs row sets it).
        if output_uri is None and "output_uri" not in (UNKNOWN.get() or ()):
            raise KlingValidationError(
                "poster: needs output_uri (the poster frame is decoded from the saved video)", param="poster"
            )
        from kling_provider.video.poster import require_review_extra

        require_review_extra("poster")


def _has_passed(when: str) -> bool:
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment <= datetime.now(tz=timezone.utc)


def _expires_at(task: Task, observed_at: float) -> str:
    """When the result link stops working: 24 h after completion. The completion time is not
    reported, so take the earliest it can be: creation time when known (conservative)."""
    anchor = float(task.created) if task.created else observed_at
    return datetime.fromtimestamp(anchor, tz=timezone.utc).__add__(LINK_LIFETIME).isoformat(timespec="seconds")
