"""The shared base of the Kling operators: one task = one paid-for-once generation.

Shape (after the dbt Cloud operator): validate, submit, remember the remote id, then defer to
:class:`~kling_provider.triggers.kling.KlingTaskTrigger` (or wait on the worker), and on
completion save the video and return a small dict for downstream tasks.

Bill-once decisions, all in :meth:`BaseKlingOperator.execute`:

* Arguments are validated (parse time for literals, before anything is sent for templates) and
  the budget is checked before images are uploaded or a task is created.
* The EvoLink task id is stored before waiting (:mod:`kling_provider.operators.state`). A retry
  looks it up first: still running -> re-attach; completed -> save it, no new task; failed
  with a transient code -> submit anew; unknown to EvoLink (expired) -> submit anew.
* A remote failure that the request itself caused (content policy, invalid parameters, image
  errors, cancellation) raises ``AirflowFailException``: no retry burns more credits on it.
* A create call whose outcome is unknown is never repeated (``AirflowFailException`` with
  what to look for in the EvoLink console), nor is one whose try stopped before the new id was
  stored (the store brackets the call); the try after that report submits anew.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import numbers
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from kling_provider._compat import AirflowFailException, conf
from kling_provider.exceptions import (
    KlingError,
    KlingNotFoundError,
    KlingSubmissionUnknownError,
    KlingTaskFailedError,
    KlingTimeoutError,
    KlingValidationError,
    is_retryable_task_code,
)
from kling_provider.models.untrusted import exact_str, show
from kling_provider.operators.mapping import UNKNOWN, CheckedPartial, MappedValue

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from kling_provider.hooks.kling import KlingHook
    from kling_provider.models import KlingRequest, Task
    from kling_provider.operators.lineage_facts import LineageFacts, LineageSubject
    from kling_provider.operators.state import PendingSubmit, RemoteTask, TaskStateStore
    from kling_provider.pricing import CostEstimate

# Methods import the hook, trigger, pricing, request/response models, task state and lineage facts
# where they use them: a DAG file builds operators without loading any of those (bench #4,
# bench/README.md).

#: Result links live 24 hours after completion (EvoLink docs).
LINK_LIFETIME = timedelta(hours=24)
VIDEO_URL_XCOM_KEY = "kling_video_url"
_PLACEHOLDER_URL = "https://example.com/placeholder.png"
_PLACEHOLDER_TEXT = "placeholder"
_COMMON_PLACEHOLDERS = {"callback_url": "https://example.com/callback"}
#: The arguments a price depends on.
_PRICE_INPUTS = frozenset({"model", "duration", "quality", "sound"})


class _LazyRequestModel:
    """A request model class, imported on first use: importing the operators module (the API
    server does, for the extra link) must not load pydantic and every model (bench #4)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> type[KlingRequest]:
        from kling_provider import models

        model: type[KlingRequest] = getattr(models, self.name)
        return model


def lazy_request_model(name: str) -> Any:
    """``request_class = lazy_request_model("TextToVideoRequest")`` in an operator class."""
    return _LazyRequestModel(name)


#: The arguments every Kling operator takes from :class:`BaseKlingOperator` (``model`` is in each
#: operator's own docstring, with its models), added to each operator's docstring by
#: :func:`with_base_params`. The guides in docs/operators/ say more.
BASE_PARAMS = """
:param kling_conn_id: connection of type ``kling``: password = EvoLink API key, host = API base
    URL, extra ``files_host`` (default ``"kling_default"``).
:param callback_url: HTTPS URL EvoLink POSTs the final task to (public host, no credentials,
    <= 2,048 characters; templated). A hint only: the operator still polls.
:param max_credits: refuse to submit when the estimate is higher, or unknown (no published
    price): fails at parse time for literal arguments, before any upload for templated ones.
:param deferrable: wait in the triggerer (True) or on the worker (False). Default: deferrable
    unless ``[kling] default_deferrable = False``; ``[operators] default_deferrable = True`` also
    turns it on (:func:`kling_provider.operators.base.default_deferrable`).
:param timeout: how long to wait for the generation, seconds or a timedelta (default 1 hour, at
    most 365 days); then ``KlingTimeoutError``, and a retry re-attaches to the same EvoLink task.
:param image_conn_id: connection for reading images given as object-storage paths (``s3://...``).
:param poll_policy: ``PollPolicy`` settings to override, as a plain dict (e.g.
    ``{"min_interval": 5}``); unknown keys fail at parse time; they reach the trigger too.
:param http_retry_policy: ``RetryPolicy`` settings to override for each HTTP call, as a plain
    dict (e.g. ``{"max_attempts": 8}``); a create call that may have been billed is never retried.

Every argument of Airflow's ``BaseOperator`` (``task_id``, ``retries``, ``outlets``...) works as usual.
"""


def with_base_params(*blocks: str) -> Any:
    """Class decorator: append ``:param:`` blocks (:data:`BASE_PARAMS`, a shared family's) to the
    class docstring, so each operator documents the arguments it inherits, written once."""

    def decorate(cls: type) -> type:
        if cls.__doc__ is not None:  # None under python -OO
            cls.__doc__ = "\n\n".join(inspect.cleandoc(text) for text in (cls.__doc__, *blocks))
        return cls

    return decorate


def default_deferrable() -> bool:
    """Deferrable unless the deployment says otherwise; read when an operator is built.

    Airflow's own ``[operators] default_deferrable`` ships as False and a generated airflow.cfg
    spells that default out, so "not set" cannot be told from "set to False". Decision: Kling
    generations take minutes, so these operators defer by default; ``[kling] default_deferrable
    = False`` (``AIRFLOW__KLING__DEFAULT_DEFERRABLE``) turns that off for deployments without a
    triggerer, and ``[operators] default_deferrable = True`` is honoured as well.
    """
    return conf.getboolean("kling", "default_deferrable", fallback=True) or conf.getboolean(
        "operators", "default_deferrable", fallback=False
    )


_PLAIN_SCALARS = frozenset({int, float, bool})


def _is_template(value: Any) -> bool:
    """A Jinja string or an XComArg: only known once the task runs."""
    if value is None or type(value) in _PLAIN_SCALARS:  # most arguments: no slow ABC check
        return False
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(_is_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_is_template(v) for v in value)
    return value is not None and not isinstance(value, int | float | bool) and hasattr(value, "resolve")


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.split("://", 1)[0].lower() in ("http", "https")


@with_base_params(BASE_PARAMS)
class BaseKlingOperator(BaseOperator):
    """What every Kling operator shares: validate, budget, submit once, wait, save, return.

    Subclass it for an operator of your own: set ``request_class`` (with
    :func:`lazy_request_model`), ``placeholders`` and ``image_fields``, and implement
    :meth:`request_arguments` and :meth:`build_result`. The operators in
    :mod:`kling_provider.operators.kling` are the examples.

    :param model: the EvoLink model id; each subclass names its own models and default.
    :returns: (the XCom) what the subclass's :meth:`build_result` makes of the finished task.
    """

    request_class: ClassVar[type[KlingRequest]]
    #: Operator argument -> how to stand in for it at parse time when it is templated.
    placeholders: ClassVar[Mapping[str, Any]] = {}
    #: Arguments holding images that may be local files or object-storage paths.
    image_fields: ClassVar[Sequence[str]] = ()

    ui_color = "#f3e8ff"

    #: What the OpenLineage methods report, remembered as this try runs (None before a task is known).
    _lineage: LineageFacts | None = None
    #: The fingerprint of the request the EvoLink task was made from (re-run detection).
    _fingerprint: str | None = None
    #: When the EvoLink task was submitted (unix seconds), for the closing log line.
    _submitted_at: float | None = None

    # Arguments as stored by __init__ (see _store).
    kling_conn_id: str
    model: str | None
    callback_url: str | None
    max_credits: float | None
    _deferrable: bool | None
    timeout: float
    image_conn_id: str | None
    poll_policy: dict[str, float]
    http_retry_policy: dict[str, float]

    def __init__(
        self,
        *,
        kling_conn_id: str = "kling_default",
        model: str | None = None,
        callback_url: str | None = None,
        max_credits: float | None = None,
        deferrable: bool | None = None,
        timeout: float | timedelta = timedelta(hours=1),
        image_conn_id: str | None = None,
        poll_policy: Mapping[str, float] | None = None,
        http_retry_policy: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if UNKNOWN.get() is None:  # not a parse-time check of a mapped operator (.mapping)
            super().__init__(**kwargs)
        # The operator's own settings are checked like the request: a wrong kind of value is a
        # KlingValidationError naming the argument when the DAG is parsed, not a TypeError (or a
        # busy poll loop) in a task that already paid for its video.
        if max_credits is not None and not (_finite(max_credits) or 0) > 0:
            raise KlingValidationError(
                f"max_credits: must be a positive number (got {show(max_credits)})", param="max_credits"
            )
        if deferrable is not None and not isinstance(deferrable, bool):
            raise KlingValidationError(
                f"deferrable: must be True or False (got {show(deferrable)})", param="deferrable"
            )
        self._store(
            kling_conn_id=_conn_id("kling_conn_id", kling_conn_id, required=True),
            model=model,
            callback_url=callback_url,
            max_credits=max_credits,
            _deferrable=deferrable,
            timeout=_timeout_seconds(timeout),
            image_conn_id=_conn_id("image_conn_id", image_conn_id),
            poll_policy=_policy_settings("poll_policy", poll_policy, _poll_policy_fields),
            # Not "retry_policy": Airflow 3.3's BaseOperator has that argument (task-level retries).
            http_retry_policy=_policy_settings("http_retry_policy", http_retry_policy, _retry_policy_fields),
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _keep_signature(cls)

    def _store(self, **values: Any) -> None:
        """Set the operator's own attributes while ``__init__`` runs, past ``BaseOperator.__setattr__``.

        Until the operator is built, that method only runs a ``_convert_<name>`` hook (Airflow has
        none for these names; tests/test_operators_parse.py checks) and tracks nothing else, so
        the result is the same; it costs ~1 us an attribute, ~6 ms of a 200-task DAG's parse
        (bench #4). Declare each stored attribute on the class for mypy.
        """
        vars(self).update(values)

    @property
    def deferrable(self) -> bool:
        """``deferrable=`` as given, else the deployment's setting (:func:`default_deferrable`),
        read when asked for (reading configuration costs ~20 us an operator while parsing)."""
        return default_deferrable() if self._deferrable is None else self._deferrable

    @deferrable.setter
    def deferrable(self, value: bool | None) -> None:
        self._deferrable = value

    # -- subclass hooks ---------------------------------------------------------------------

    def request_arguments(self) -> dict[str, Any]:
        """The request model's keyword arguments, from this operator's (rendered) attributes."""
        raise NotImplementedError

    def build_result(self, task: Task, saved_uri: str | None, estimate: CostEstimate) -> dict[str, Any]:
        """The XCom returned for the finished task (a small, JSON-serialisable dict)."""
        raise NotImplementedError

    def reuse_saved(
        self, context: Context, hook: KlingHook, kwargs: dict[str, Any], request: KlingRequest, prior: RemoteTask | None
    ) -> dict[str, Any] | None:
        """A result already saved from this same request, to return instead of submitting; or None.

        May raise to refuse running at all (``if_exists="fail"``). Sets ``self._fingerprint``.
        """
        return None

    def remember_output(self, context: Context, task: Task, result: dict[str, Any]) -> None:
        """Record what was saved, once the result is known (the video operators' sidecar)."""

    def link_for(self, result: Mapping[str, Any]) -> str:
        """What the "Kling video" link shows for this result ("" for none)."""
        return ""

    def outcome(self, result: Mapping[str, Any]) -> str:
        """Where the result went, for the closing log line."""
        return f"result {result.get('id')}"

    # -- validation ---------------------------------------------------------------------------

    #: ``partial()``'s ``expand()``/``expand_kwargs()`` check the arguments while the DAG file
    #: is parsed, as a plain operator's are (:mod:`kling_provider.operators.mapping`).
    partial = CheckedPartial()

    def _validate_literals(self) -> None:
        """Parse-time check: templated arguments stand in as harmless placeholders, and so do
        mapped ones not known yet (:mod:`kling_provider.operators.mapping`)."""
        unknown = UNKNOWN.get() or frozenset()
        kwargs = self.request_arguments()
        if _is_template(kwargs.get("shots")) or "duration" in unknown:
            # Shots decide several cross-field rules (and add up to the duration); with templated
            # or mapped shots or duration those wait for execute().
            kwargs.update(multi_shot=False, shot_type=None, shots=None)
            prompt = kwargs.get("prompt")
            if not prompt or (isinstance(prompt, str) and "镜头" in prompt):  # turbo's shots in the prompt
                kwargs["prompt"] = _PLACEHOLDER_TEXT
        # A mapped list the prompt refers to (<<<element_2>>>) has at least the items referred to.
        referred = frozenset(name for name in unknown & _NUMBERED_LISTS.keys() if _fewest_items(name, kwargs, 0))
        kwargs.update({name: MappedValue() for name in referred if kwargs.get(name) is None})
        for name, value in list(kwargs.items()):
            kwargs[name] = self._stand_in(name, value, kwargs)
        try:
            request: KlingRequest | None = self._request(kwargs, images_as_placeholders=True)
        except KlingValidationError as err:
            if not unknown:
                raise
            request = self._request_unless_mapped_to_blame(kwargs, unknown - referred, err)
        if self.max_credits is None:
            return
        from kling_provider import pricing

        if request is not None and not unknown & _PRICE_INPUTS:
            self._check_budget(pricing.estimate(request))
        else:
            self._check_budget(self._least_estimate(unknown), at_least=bool(unknown & _PRICE_INPUTS))

    def _request_unless_mapped_to_blame(
        self, kwargs: dict[str, Any], unknown: frozenset[str], error: KlingValidationError
    ) -> KlingRequest | None:
        """With mapped arguments, refuse only what no mapped value could make valid: problems
        that name a mapped argument are not counted, and a mapped ``model`` passes if any model
        of the family takes the rest. ``None``: valid, though no request could be built yet."""
        from kling_provider.models import REQUEST_MODELS

        models: list[str | None] = [None]
        if "model" in unknown:
            models += [name for name, cls in REQUEST_MODELS.items() if cls is self.request_class]
        for model in models:
            try:
                return self._request({**kwargs, "model": model} if model else kwargs, images_as_placeholders=True)
            except KlingValidationError as err:
                problems = getattr(err, "problems", None) or [(err.param or "", err.message)]
                if all(re.split(r"[.\[]", str(path), maxsplit=1)[0] in unknown for path, _ in problems):
                    return None
        raise error

    def _least_estimate(self, unknown: frozenset[str]) -> CostEstimate:
        """The least the request can cost when some price inputs are mapped: the default model,
        3 s (the least billed), and quality and sound at their defaults (720p, silent)."""
        from kling_provider.pricing import MIN_BILLED_SECONDS, estimate_video

        model = self.model if self.model is not None and "model" not in unknown else self.request_class.model_name
        duration = MIN_BILLED_SECONDS if "duration" in unknown else getattr(self, "duration", MIN_BILLED_SECONDS)
        return estimate_video(model, duration, getattr(self, "quality", "720p"), getattr(self, "sound", False))

    def _stand_in(self, name: str, value: Any, arguments: Mapping[str, Any]) -> Any:
        """A value that validates like the rendered one will, for a templated argument."""
        if not _is_template(value):
            return value
        item_stand_in = str(self.placeholders.get(name + "[]", _PLACEHOLDER_TEXT + "-{i}"))
        if isinstance(value, list | tuple):  # keep the length: <<<element_N>>> rules count items
            return [item_stand_in.format(i=i) if _is_template(item) else item for i, item in enumerate(value)]
        if name in _NUMBERED_LISTS:  # a whole list from an XComArg or a template: length unknown
            return [item_stand_in.format(i=i) for i in range(_fewest_items(name, arguments))]
        return self.placeholders.get(name, _COMMON_PLACEHOLDERS.get(name, _PLACEHOLDER_TEXT))

    def _request(self, kwargs: dict[str, Any], *, images_as_placeholders: bool) -> KlingRequest:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if self.model is not None:
            kwargs["model"] = self.model
        if images_as_placeholders:
            for name in self.image_fields:
                kwargs.update(_placeholder_images(name, kwargs.get(name)))
        return self.request_class.build(**kwargs)

    # -- execution ----------------------------------------------------------------------------

    def get_hook(self) -> KlingHook:
        from kling_provider.hooks.kling import KlingHook
        from kling_provider.hooks.polling import PollPolicy
        from kling_provider.hooks.retry import RetryPolicy

        return KlingHook(
            self.kling_conn_id,
            poll_policy=PollPolicy(**self.poll_policy),
            retry_policy=RetryPolicy(**self.http_retry_policy),  # type: ignore[arg-type]
        )

    def execute(self, context: Context) -> Any:
        from kling_provider import pricing
        from kling_provider.operators.lineage_facts import LineageFacts
        from kling_provider.operators.state import PendingSubmit, RemoteTask, state_store_for

        kwargs = self.request_arguments()
        request = self._request(kwargs, images_as_placeholders=True)  # every rule, nothing sent yet
        estimate = pricing.estimate(request)
        self._check_budget(estimate)
        self.log.info("Kling %s: estimated %s", request.model, estimate.describe())

        hook = self.get_hook()
        store = state_store_for(context)
        record = store.load()
        prior = record if isinstance(record, RemoteTask) else None
        reused = self.reuse_saved(context, hook, kwargs, request, prior)
        if reused is not None:
            hook.close()
            if record is not None:
                store.clear()
            self._publish_link(context, reused)
            return reused
        if isinstance(record, PendingSubmit):
            self._after_interrupted_submit(store, record)
        task = self._resume(hook, prior)
        if task is not None:
            self._lineage = LineageFacts.of(task, estimate)
            if prior is not None and prior.fingerprint:
                self._fingerprint = prior.fingerprint  # the request that task was made from
        submitted_at = prior.submitted_at if task is not None and prior is not None else time.time()
        if task is None:
            kwargs = self._upload_images(hook, kwargs)
            request = self._request(kwargs, images_as_placeholders=False)
            submitted_at = time.time()
            task = self._submit(hook, request, store)
            self._lineage = LineageFacts.of(task, estimate)
            store.save(RemoteTask(task.id, submitted_at, request.model, self._fingerprint))
            self.log.info(
                "Submitted EvoLink task %s (%s credits reserved, about %s s to go)",
                task.id,
                task.usage.credits_reserved if task.usage else "?",
                task.estimated_time or "?",
            )
        self._submitted_at = submitted_at
        if task.is_terminal:
            return self._finish(context, task, estimate)

        deadline = time.time() + self.timeout
        # The link reads this key; an empty value until the video exists keeps the UI quiet.
        context["ti"].xcom_push(key=VIDEO_URL_XCOM_KEY, value="")
        if self.deferrable:
            from kling_provider.triggers.kling import KlingTaskTrigger

            self.defer(
                trigger=KlingTaskTrigger(
                    task.id,
                    self.kling_conn_id,
                    deadline=deadline,
                    started_at=submitted_at,
                    estimated_time=task.estimated_time,
                    poll_policy=self.poll_policy,
                    retry_policy=self.http_retry_policy,
                    attempt=_try_number(context),
                ),
                method_name="execute_complete",
                kwargs={"estimate": _estimate_dict(estimate)},
                # Airflow's own timeout would skip execute_complete; the trigger's deadline comes first.
                timeout=timedelta(seconds=self.timeout + 120),
            )
        try:
            # The wait's heartbeat (at most a line a minute, from its polls) goes to this task's log.
            task = hook.wait_for_task(task.id, timeout=self.timeout, started_at=submitted_at, log=self.log)
        finally:
            hook.close()
        return self._finish(context, task, estimate)

    def execute_complete(self, context: Context, event: dict[str, Any], estimate: dict[str, Any] | None = None) -> Any:
        """Back from the trigger: exactly one event, with the final task when there is one.

        The event is checked first (:meth:`.KlingTaskEvent.from_dict`): anything else fails the
        try with what is wrong with it, and a retry re-attaches to the stored task.
        """
        from kling_provider.operators.lineage_facts import LineageFacts
        from kling_provider.pricing import CostEstimate
        from kling_provider.triggers.events import EventStatus, KlingTaskEvent

        received = KlingTaskEvent.from_dict(event)
        if received.attempt is not None and received.attempt != _try_number(context):
            # Airflow 3.0 to 3.1.2 keep a resumed task's next_method/next_kwargs when it fails,
            # so its retry starts here with the earlier try's event, already acted on. Start
            # over instead: execute() re-attaches, saves or resubmits as on any retry.
            self.log.warning(
                "Try %s resumed with the event of try %s; starting this try afresh",
                _try_number(context),
                received.attempt,
            )
            return self.execute(context)
        forecast = CostEstimate(**estimate) if estimate else None
        task = received.final_task()
        if task is not None:
            return self._finish(context, task, forecast, received.observed_at)
        self._lineage = LineageFacts(
            received.task_id, status=received.status.value, error_code=received.error_code, estimate=forecast
        )
        match received.status:
            case EventStatus.TIMEOUT:
                message = received.message + " A retry re-attaches to the same task."
                raise KlingTimeoutError(message, task_id=received.task_id)
            case EventStatus.EXPIRED:
                raise KlingNotFoundError(received.message + " A retry submits a new generation.")
        if received.retryable:
            raise KlingError(received.message)
        raise AirflowFailException(received.message)

    def _check_budget(self, estimate: CostEstimate, at_least: bool = False) -> None:
        if self.max_credits is None:
            return
        if estimate.credits is None:
            raise KlingValidationError(
                f"max_credits: cannot guarantee a budget of {self.max_credits} credits: {estimate.describe()}. "
                "Remove max_credits to submit anyway.",
                param="max_credits",
            )
        if estimate.credits > self.max_credits:
            least = "at least " if at_least else ""
            raise KlingValidationError(
                f"max_credits: the request would cost {least}{estimate.describe()}, more than max_credits="
                f"{self.max_credits}; nothing was submitted",
                param="max_credits",
            )

    def _resume(self, hook: KlingHook, prior: Any) -> Task | None:
        """The stored task to re-attach to or save, or None to submit a new one."""
        from kling_provider.models.responses import TaskStatus

        if prior is None:
            return None
        try:
            task = hook.get_task(prior.task_id)
        except KlingNotFoundError:
            self.log.warning("Stored EvoLink task %s is gone (expired); submitting a new one", prior.task_id)
            return None
        if task.status is TaskStatus.COMPLETED:
            self.log.info("EvoLink task %s already completed on an earlier try: saving it, not resubmitting", task.id)
            return task
        if not task.is_terminal:
            self.log.info("Re-attaching to EvoLink task %s (%s) from an earlier try", task.id, task.status.value)
            return task
        code = task.error_code
        if task.is_cancelled or not is_retryable_task_code(code):
            return task  # _finish fails it for good: resubmitting would fail (and bill) the same way
        self.log.warning("EvoLink task %s failed with %s, which may be transient: submitting anew", task.id, code)
        return None

    def _submit(self, hook: KlingHook, request: KlingRequest, store: TaskStateStore) -> Task:
        """The create call, bracketed in the store (:mod:`kling_provider.operators.state`): the
        bracket stays open only when the call's outcome is unknown or this try stops inside it."""
        from kling_provider.hooks.kling import summarise_request
        from kling_provider.operators.state import PendingSubmit

        pending = PendingSubmit(time.time(), request.model, summarise_request(request.to_body()))
        store.save(pending)
        try:
            return hook.submit(request)
        except KlingSubmissionUnknownError as err:
            # Reported here: a try after this one was started by someone who read it.
            store.save(dataclasses.replace(pending, reported=True))
            raise AirflowFailException(err.message) from None
        except KlingValidationError as err:
            store.clear()
            raise AirflowFailException(f"EvoLink refused the request: {err.message}") from None
        except KlingError:
            store.clear()  # answered, with an error: nothing was created
            raise

    def _after_interrupted_submit(self, store: TaskStateStore, pending: PendingSubmit) -> None:
        """An earlier try stopped inside its create call: fail for good the first time, saying what
        to look for; submit anew on the try after (someone cleared the task, having looked)."""
        when = datetime.fromtimestamp(pending.sent_at, tz=timezone.utc).isoformat(timespec="seconds")
        if pending.reported:
            self.log.warning(
                "The create call sent %s (%s; %s) had an unknown outcome, reported by an earlier try; "
                "this try comes after it: submitting anew",
                when,
                pending.model,
                pending.summary,
            )
            store.clear()
            return
        store.save(dataclasses.replace(pending, reported=True))
        raise AirflowFailException(
            f"An earlier try stopped while asking EvoLink to create a {pending.model} task (sent {when}; "
            f"{pending.summary}), before the new task's id was stored: a task may have been created and "
            "billed. Not submitting again, because EvoLink has no idempotency key. Look for a task created "
            "around that time in the EvoLink console; if there is none, clear this task to submit again."
        )

    def _upload_images(self, hook: KlingHook, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Local files and object-storage paths become EvoLink file URLs (uploads are free).

        Every image is checked before the first is uploaded: a bad second image must not be
        found out after the first one was already sent.
        """
        local: list[tuple[str, int | None, Any]] = []
        for name in self.image_fields:
            value = kwargs.get(name)
            if isinstance(value, list | tuple):
                local += [(f"{name}[{i}]", i, exact_str(v)) for i, v in enumerate(value) if not _is_url(v)]
            elif value is not None and not _is_url(value):
                local.append((name, None, exact_str(value)))
        for field, _, value in local:
            hook.check_image(value, field=field, conn_id=self.image_conn_id)
        out = {k: list(v) if isinstance(v, list | tuple) else v for k, v in kwargs.items()}
        for field, index, value in local:
            url = hook.upload_image(value, field=field, conn_id=self.image_conn_id)
            name = field.split("[", 1)[0]
            if index is None:
                out[name] = url
            else:
                out[name][index] = url
        return out

    def _finish(
        self, context: Context, task: Task, estimate: CostEstimate | None, observed_at: float | None = None
    ) -> Any:
        from kling_provider.models.responses import TaskStatus
        from kling_provider.operators.lineage_facts import LineageFacts
        from kling_provider.operators.state import RemoteTask, state_store_for

        self._lineage = LineageFacts.of(task, estimate)
        if task.status is not TaskStatus.COMPLETED:
            code, reason = task.error_code, task.failure_reason
            err = KlingTaskFailedError(
                f"EvoLink task {task.id} {'was cancelled' if task.is_cancelled else 'failed'} "
                f"({code or 'no code'}): {reason}",
                task_id=task.id,
                code=code,
            )
            if task.is_cancelled or not err.retryable:
                # Forget the task: a later manual clear (with a changed request) must submit anew,
                # while a crash before this point still finds it and fails without paying again.
                state_store_for(context).clear()
                raise AirflowFailException(err.message + " Change the request before trying again.")
            raise err
        if estimate is None:
            from kling_provider import pricing

            estimate = pricing.estimate(self._request(self.request_arguments(), images_as_placeholders=True))
        if self._submitted_at is None:  # resumed from the trigger: the try that submitted knew these
            record = state_store_for(context).load()
            if isinstance(record, RemoteTask) and record.task_id == task.id:
                self._fingerprint, self._submitted_at = record.fingerprint, record.submitted_at
        saved = self.save_output(context, task, observed_at or time.time())
        result = self.build_result(task, saved, estimate)
        self._lineage = LineageFacts.of(task, estimate).with_result(result)
        self.remember_output(context, task, result)
        self._publish_link(context, result)
        state_store_for(context).clear()
        self._log_closing(task, result, estimate)
        return result

    def _publish_link(self, context: Context, result: Mapping[str, Any]) -> None:
        """Decide the "Kling video" link now: Airflow 3 stores what ``get_link`` returns when the
        try ends, and the UI shows that stored value from then on."""
        from kling_provider.operators.links import remember_link

        link = self.link_for(result)
        remember_link(self, link)
        if link:
            context["ti"].xcom_push(key=VIDEO_URL_XCOM_KEY, value=link)

    def _log_closing(self, task: Task, result: Mapping[str, Any], estimate: CostEstimate | None) -> None:
        """One line that tells how it ended: elapsed, credits, dollars, where the result went."""
        elapsed = f"{time.time() - self._submitted_at:.1f} s" if self._submitted_at else "an unknown time"
        credits = result.get("credits_reserved")
        self.log.info(
            "Done: EvoLink task %s %s in %s, %s; %s",
            task.id,
            task.status.value,
            elapsed,
            _spend(credits if isinstance(credits, int | float) else None, estimate),
            self.outcome(result),
        )

    def save_output(self, context: Context, task: Task, observed_at: float) -> str | None:
        return None

    # -- OpenLineage: the provider calls these; nothing of it is imported unless it does ----------

    def lineage_subject(self) -> LineageSubject:
        """What lineage reports of this run; subclasses add the inputs, elements and output they have."""
        from kling_provider.operators.lineage_facts import LineageSubject

        return LineageSubject(kling_conn_id=self.kling_conn_id, api_base_url=self._api_base_url, facts=self._lineage)

    def _api_base_url(self) -> str:
        """The connection's API base URL (lineage names elements after its host)."""
        return self.get_hook().settings.api_base_url

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        from kling_provider.operators.lineage import lineage_on_start

        return lineage_on_start(self.lineage_subject())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from kling_provider.operators.lineage import lineage_on_complete

        return lineage_on_complete(self.lineage_subject())

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        from kling_provider.operators.lineage import lineage_on_failure

        return lineage_on_failure(self.lineage_subject())


def _keep_signature(cls: type) -> None:
    """Compute the signature of ``cls``'s own ``__init__`` once, as ``__signature__``.

    Airflow asks for it again for every task: ``partial()`` reads the defaults of each
    ``__init__`` in the class's MRO with ``inspect.signature`` (~20 us for a Kling operator's), and
    ``inspect`` answers from ``__signature__`` when a function has one; Airflow's ``__init__``
    wrapper (``functools.wraps``) copies it. The same signature, computed at class creation.
    """
    init = cls.__dict__.get("__init__")
    if init is not None and "__signature__" not in vars(init):
        init.__signature__ = inspect.signature(init)


_keep_signature(BaseKlingOperator)

#: Longest wait an operator accepts: far beyond any generation, and safe to add to a timestamp.
MAX_TIMEOUT = timedelta(days=365)
_WHOLE, _NON_NEGATIVE, _POSITIVE = "a whole number of at least 1", "a finite number >= 0", "a finite number > 0"


def _conn_id(name: str, value: Any, *, required: bool = False) -> Any:
    """A connection id: a non-blank string (or None when not required)."""
    if value is None and not required:
        return None
    text = exact_str(value)
    if not isinstance(text, str) or not text.strip():
        raise KlingValidationError(f"{name}: must be a connection id (got {show(value)})", param=name)
    return text


def _timeout_seconds(value: Any) -> float:
    """Seconds from a timedelta or a number (never a bool), positive and at most MAX_TIMEOUT."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else _finite(value)
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT.total_seconds():
        raise KlingValidationError(
            f"timeout: must be a positive number of seconds or a timedelta, at most {MAX_TIMEOUT.days} days "
            f"(got {show(value)})",
            param="timeout",
        )
    return seconds


@functools.cache
def _retry_policy_fields() -> dict[str, str]:
    """RetryPolicy's settings, and what each must be."""
    from kling_provider.hooks.retry import RetryPolicy

    return {f.name: _WHOLE if f.name == "max_attempts" else _NON_NEGATIVE for f in dataclasses.fields(RetryPolicy)}


@functools.cache
def _poll_policy_fields() -> dict[str, str]:
    """PollPolicy's settings, and what each must be (a zero min_interval would poll in a busy loop)."""
    from kling_provider.hooks.polling import PollPolicy

    return {f.name: _POSITIVE if f.name == "min_interval" else _NON_NEGATIVE for f in dataclasses.fields(PollPolicy)}


def _policy_settings(name: str, value: Any, fields: Callable[[], Mapping[str, str]]) -> dict[str, float]:
    """A policy given as a plain mapping: known settings only, each a number of the right kind.

    Checked when the operator is built, so a typo fails the DAG file, not a task that already
    paid for a video. ``fields`` is only called for a policy that is given: it imports the hook
    modules, which a DAG without policies does not need while it is parsed (bench #4).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise KlingValidationError(f"{name}: must be a mapping of settings (got {type(value).__name__})", param=name)
    known = fields()
    settings: dict[str, float] = {}
    for key, item in value.items():
        if key not in known:
            listed = ", ".join(sorted(known))
            raise KlingValidationError(f"{name}: unknown setting {show(key)} (known: {listed})", param=name)
        kind, number = known[key], _finite(item)
        if kind == _WHOLE:
            if number is None or not isinstance(item, numbers.Integral) or item < 1:
                raise KlingValidationError(f"{name}: {key} must be {kind} (got {show(item)})", param=name)
            settings[key] = int(item)
            continue
        if number is None or number < 0 or (kind == _POSITIVE and number == 0):
            raise KlingValidationError(f"{name}: {key} must be {kind} (got {show(item)})", param=name)
        settings[key] = number
    return settings


def _finite(value: Any) -> float | None:
    """``value`` as a finite float if it is a real number (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):  # an int too large for a float; odd Real types
        return None
    return number if math.isfinite(number) else None


def _try_number(context: Context) -> int | None:
    number = getattr(context["ti"], "try_number", None)
    return number if isinstance(number, int) else None


#: List arguments whose items prompts refer to by number (``<<<element_N>>>``, ``<<<image_N>>>``).
_NUMBERED_LISTS = {"elements": "element", "image_urls": "image"}


def _fewest_items(name: str, arguments: Mapping[str, Any], least: int = 1) -> int:
    """The fewest items a templated list can render to and still satisfy the prompt's references.

    Count rules (o3's images + elements <= 7, <<<element_N>>> within the list...) then judge the
    smallest list that could be valid, so a DAG fails to parse only if no rendering could pass;
    execute() checks the rendered list itself. ``<<<image_N>>>`` counts first and last frame first.
    """
    text = json.dumps([arguments.get("prompt"), arguments.get("shots")], default=str)
    referred = [int(n) for n in re.findall(rf"<<<{_NUMBERED_LISTS[name]}_(\d+)>>>", text)]
    needed = max(referred, default=1)
    if name == "image_urls":
        needed -= sum(arguments.get(frame) is not None for frame in ("image_start", "image_end"))
    return max(least, needed if referred else 0)


def _placeholder_images(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, list | tuple):
        return {name: [_image_stand_in(f"{name}[{i}]", v) for i, v in enumerate(value)]}
    return {name: _image_stand_in(name, value)}


def _image_stand_in(name: str, value: Any) -> Any:
    """A URL stays (the model checks it); a local or object-storage image stands in as a URL
    until it is uploaded. Anything else cannot be an image: say so now, not at upload time."""
    if _is_url(value):
        return value
    if isinstance(value, str | bytes | bytearray | memoryview | os.PathLike):
        return _PLACEHOLDER_URL
    raise KlingValidationError(
        f"{name}: must be an image URL, a local path, an object-storage path or bytes (got {show(value)})",
        param=name,
    )


def _spend(credits: float | None, estimate: CostEstimate | None) -> str:
    """``27 credits (~$0.375)``: credits as reserved, dollars at the estimate's rate."""
    if credits is None:
        return estimate.describe() if estimate is not None else "credits unknown"
    text = f"{credits:g} credits"
    if estimate is not None and estimate.credits and estimate.usd is not None:
        usd = credits * estimate.usd / estimate.credits
        cents = f"{usd:.4f}".rstrip("0")
        whole, _, fraction = cents.partition(".")
        text += f" (~${whole}.{fraction.ljust(2, '0')})"
    return text


def _estimate_dict(estimate: CostEstimate) -> dict[str, Any]:
    return dataclasses.asdict(estimate)
