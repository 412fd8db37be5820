"""Human review of generated variants in Airflow's own UI (Airflow 3.1+ human-in-the-loop).

:class:`KlingReviewOperator` is a :class:`~airflow.providers.standard.operators.hitl.HITLBranchOperator`
whose form (Required Actions, or ``PATCH .../hitlDetails``) offers ``Variant 1`` ... ``Variant N``
and ``Reject all``, with a free-text ``note``. Its Markdown body shows each variant: the poster
frame (an image), links to the saved copy and to EvoLink's result, the credits, the settings and
any verification mismatch. A pick branches to ``publish_task_id``, a rejection to
``reject_task_id``; the XCom says what was decided (see :meth:`KlingReviewOperator.execute_complete`).

How images reach the form. Airflow 3.3's UI renders the body with react-markdown: raw HTML is
dropped (``skipHtml``), and its default URL filter blanks every URL whose scheme is not http(s),
mailto, irc(s) or xmpp, so ``data:`` images and ``file://`` links never show. Images therefore
point at this provider's small API-server app (:mod:`kling_provider.plugins.review_media`), which
serves exactly the files this task listed in its ``kling_review_media`` XCom, to users allowed to
read the DAG's XComs, with the browser's own Airflow session. Files must be on a disk the API
server can read (local paths); object-storage variants show their URI as text instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from airflow import __version__ as airflow_version
from airflow.sdk import Param

from kling_provider._compat import conf, hitl_branch_operator
from kling_provider.exceptions import KlingValidationError

__all__ = [
    "MEDIA_XCOM_KEY",
    "NOTE_PARAM",
    "REJECT_OPTION",
    "KlingReviewOperator",
    "media_path",
    "review_body",
    "variant_options",
]

#: The option that rejects every variant.
REJECT_OPTION = "Reject all"
#: The form field the reviewer writes the note in.
NOTE_PARAM = "note"
#: XCom key of the review task: media token -> {"uri", "type"}, what the API-server app may serve.
MEDIA_XCOM_KEY = "kling_review_media"
#: Where the API-server app is mounted (``fastapi_apps`` url_prefix) and its route.
MEDIA_ROUTE_PREFIX = "/kling"
MEDIA_ROUTE = "/review-media"
_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}

if TYPE_CHECKING:
    from airflow.providers.standard.operators.hitl import HITLBranchOperator as _ReviewBase
    from airflow.sdk import Context

    _HITL_MISSING: str | None = None
else:  # Airflow 3.0 has no human-in-the-loop: BaseOperator, and why (raised when one is built)
    _ReviewBase, _HITL_MISSING = hitl_branch_operator()


def variant_options(count: int) -> list[str]:
    """The form's options for ``count`` variants: ``Variant 1`` ... ``Variant N``, then ``Reject all``."""
    return [f"Variant {n}" for n in range(1, count + 1)] + [REJECT_OPTION]


class KlingReviewOperator(_ReviewBase):
    """Ask a person to pick one of ``count`` generated variants, or reject them all with a note.

    :param variants: the video operator's results, one per variant in order (``generate.output``
        of a mapped task, or a list of XComArgs / dicts); each needs ``output_uri`` or ``video_url``.
    :param count: how many variants (the form's options are fixed when the DAG is parsed, so the
        count is too; a run with a different number of results fails before asking anyone).
    :param publish_task_id: the task to run when a variant is picked.
    :param reject_task_id: the task to run on ``Reject all`` (e.g. the one starting the next round).
    :param captions: a short label per variant (its angle, its settings), shown as its heading.
    :param contact_sheet: a contact sheet image (path/URI, or a dict with ``uri``) shown first.
    :param body: Markdown shown above the variants (templated), e.g. the brief.
    :param subject: the form's title (templated).
    :param fields: more form fields (name -> ``Param``) besides ``note``; their answers are in
        the HITL answer, not in this operator's XCom.

    :returns: (the XCom, once answered) a dict: ``decision`` (``"publish"`` or ``"reject"``),
        ``option`` (the option picked), ``variant`` (its 1-based number, or None), ``chosen``
        (that variant's result, or None), ``note``, ``responded_by``, ``responded_at``; then it
        branches to ``publish_task_id`` or ``reject_task_id``.

    Other arguments (``response_timeout``, ``assigned_users``, ``notifiers``...) are
    the HITL operator's. Needs Airflow 3.1+; on older Airflow building it raises at once.
    """

    template_fields: Sequence[str] = ("subject", "body", "variants", "captions", "contact_sheet")

    def __init__(
        self,
        *,
        variants: Any,
        count: int,
        publish_task_id: str,
        reject_task_id: str,
        captions: Any = None,
        contact_sheet: Any = None,
        subject: str = "Pick a video variant to publish",
        body: str | None = None,
        fields: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if _HITL_MISSING is not None:
            raise RuntimeError(
                f"KlingReviewOperator needs Airflow 3.1+ (its human-in-the-loop operators); this is Airflow "
                f"{airflow_version} ({_HITL_MISSING})"
            )

        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise KlingValidationError(f"count: must be a whole number of at least 1 (got {count!r})", param="count")
        for name, value in (("publish_task_id", publish_task_id), ("reject_task_id", reject_task_id)):
            if not isinstance(value, str) or not value:
                raise KlingValidationError(f"{name}: must be a task id (got {value!r})", param=name)
        form = {
            NOTE_PARAM: Param(
                None,  # optional: with type "string" alone the UI requires it and greys out every option
                type=["null", "string"],
                title="Note for the next round",
                description=f"With '{REJECT_OPTION}': what to change. It is added to every prompt of the next round.",
            ),
            **dict(fields or {}),
        }
        # Airflow hands every task the DAG's params in ``params``; the form shows only its own fields.
        params = {**dict(kwargs.pop("params", None) or {}), **form}
        super().__init__(subject=subject, body=body, options=variant_options(count), params=params, **kwargs)
        self.form_fields = tuple(form)
        self.variants = variants
        self.count = count
        self.publish_task_id = publish_task_id
        self.reject_task_id = reject_task_id
        self.captions = captions
        self.contact_sheet = contact_sheet

    @property
    def serialized_params(self) -> dict[str, dict[str, Any]]:
        """Only the form's own fields (what the HITL operator writes to the form and checks answers against)."""
        return {k: v for k, v in super().serialized_params.items() if k in self.form_fields}

    def execute(self, context: Context) -> Any:
        variants = self._resolved_variants()
        media: dict[str, dict[str, str]] = {}
        ti = context["ti"]
        url = _media_url_maker(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), media)
        self.body = review_body(
            variants,
            captions=_as_list(self.captions),
            contact_sheet=self.contact_sheet,
            intro=self.body,
            media_url=url,
        )
        ti.xcom_push(key=MEDIA_XCOM_KEY, value=media)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The decision, as XCom: ``{"decision": "publish" | "reject", "option", "variant" (1-based
        or None), "chosen" (that variant's result or None), "note", "responded_by", "responded_at"}``;
        then branch to the publish or the reject task."""
        from airflow.providers.standard.operators.hitl import HITLOperator  # Airflow 3.1+, like the base

        answer = HITLOperator.execute_complete(self, context=context, event=event)
        option = answer["chosen_options"][0]
        note = str((answer.get("params_input") or {}).get(NOTE_PARAM) or "").strip()
        responded_at = answer.get("responded_at")
        result: dict[str, Any] = {
            "option": option,
            "note": note,
            "responded_by": dict(answer.get("responded_by_user") or {}),
            "responded_at": responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
        }
        if option == REJECT_OPTION:
            result.update(decision="reject", variant=None, chosen=None)
            branch = self.reject_task_id
        else:
            number = self.options.index(option) + 1
            result.update(decision="publish", variant=number, chosen=self._resolved_variants()[number - 1])
            branch = self.publish_task_id
        self.log.info("Reviewer chose %s%s", option, f" with the note {note!r}" if note else "")
        # Pushed now: skipping the other branch ends this method with an exception (the Task
        # SDK's DownstreamTasksSkipped), after which a returned value is never pushed.
        context["ti"].xcom_push(key="return_value", value=result)
        self.do_branch(context, branch)
        return result

    def _resolved_variants(self) -> list[dict[str, Any]]:
        variants = [dict(v) for v in _as_list(self.variants) or [] if isinstance(v, Mapping)]
        if len(variants) != self.count:
            raise KlingValidationError(
                f"variants: {len(variants)} results to review, but the form offers {self.count} variants (count)",
                param="variants",
            )
        return variants


def review_body(
    variants: Sequence[Mapping[str, Any]],
    *,
    captions: Sequence[Any] | None = None,
    contact_sheet: Any = None,
    intro: str | None = None,
    media_url: Any = None,
) -> str:
    """The Markdown a reviewer reads: the contact sheet, then one section per variant.

    ``media_url(uri, kind)`` returns a URL the reviewer's browser can open for a local file, or
    None; without it only EvoLink's links are clickable.
    """

    def link(uri: Any, kind: str) -> str | None:
        return media_url(str(uri), kind) if media_url is not None and uri else None

    lines: list[str] = []
    if intro:
        lines += [intro.strip(), ""]
    sheet_uri = contact_sheet.get("uri") if isinstance(contact_sheet, Mapping) else contact_sheet
    if sheet_uri:
        sheet = link(sheet_uri, "sheet")  # the picture links to itself: full size in a new tab
        lines += [
            f"[![Contact sheet of all variants]({sheet})]({sheet})" if sheet else f"Contact sheet: `{sheet_uri}`",
            "",
        ]
    for number, variant in enumerate(variants, 1):
        caption = str(captions[number - 1]) if captions and number <= len(captions) else ""
        lines.append(f"### Variant {number}" + (f": {_escape(caption)}" if caption else ""))
        video_link = link(variant.get("output_uri"), f"v{number}-video")
        poster_uri = variant.get("poster_uri")
        poster = link(poster_uri, f"v{number}-poster")
        target = video_link or variant.get("video_url")
        if poster:
            image = f"![Variant {number}: poster frame]({poster})"
            lines += [f"[{image}]({target})" if target else image, ""]
        elif poster_uri:
            lines += [f"Poster frame: `{poster_uri}`", ""]
        lines += _facts(variant, video_link)
        lines.append("")
    lines.append(f"Pick a variant to publish it, or choose **{REJECT_OPTION}** and write a note for the next round.")
    return "\n".join(lines)


def _facts(variant: Mapping[str, Any], video_link: str | None) -> list[str]:
    facts = []
    videos = []
    if video_link:
        videos.append(f"[saved copy]({video_link})")
    elif variant.get("output_uri"):
        videos.append(f"saved at `{variant['output_uri']}`")
    if variant.get("video_url"):
        until = f" (link valid until {variant['expires_at']})" if variant.get("expires_at") else ""
        videos.append(f"[EvoLink result]({variant['video_url']}){until}")
    if videos:
        facts.append("- **Video**: " + " · ".join(videos))
    credits = variant.get("credits_reserved")
    estimate, usd = variant.get("estimated_credits"), variant.get("estimated_usd")
    cost = f"{_number(credits)} credits" if credits is not None else "credits not reported"
    if estimate is not None:
        cost += f" (estimate {_number(estimate)}" + (f", about ${usd:.2f})" if isinstance(usd, int | float) else ")")
    facts.append(f"- **Credits**: {cost}")
    settings = [f"{variant['duration']} s" if variant.get("duration") else None, variant.get("quality")]
    if "sound" in variant:
        settings.append("sound" if variant["sound"] else "no sound")
    shown = ", ".join(str(s) for s in settings if s)
    task = f"EvoLink task `{variant['id']}`" if variant.get("id") else ""
    if shown or task:
        facts.append("- **Settings**: " + " · ".join(p for p in (shown, task) if p))
    checked = variant.get("video")
    if isinstance(checked, Mapping) and checked.get("matches_request") is False:
        found = checked.get("mismatches") or []
        differs = "; ".join(str(m.get("message") if isinstance(m, Mapping) else m) for m in found) or "see the log"
        facts.append(f"- **Does not match the request**: {_escape(differs)}")
    return facts


def media_path(uri: str) -> str | None:
    """The local file behind a path or ``file://`` URI, or None for object storage."""
    if uri.startswith("file://"):
        return unquote(urlsplit(uri).path)
    if "://" in uri or not uri.startswith("/"):
        return None
    return uri


def _media_url_maker(dag_id: str, run_id: str, task_id: str, map_index: int, media: dict[str, dict[str, str]]) -> Any:
    """``media_url(uri, token)`` for :func:`review_body`: records the file under ``token`` in
    ``media`` (this task's XCom) and returns the URL the API-server app serves it at."""
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")

    def media_url(uri: str, token: str) -> str | None:
        path = media_path(uri)
        media_type = _MEDIA_TYPES.get(_suffix(path or ""))
        if path is None or media_type is None:
            return None
        media[token] = {"uri": uri, "type": media_type}
        parts = "/".join(quote(str(p), safe="") for p in (dag_id, run_id, task_id, token))
        query = f"?map_index={map_index}" if map_index not in (-1, None) else ""
        return f"{base}{MEDIA_ROUTE_PREFIX}{MEDIA_ROUTE}/{parts}{query}"

    return media_url


def _suffix(path: str) -> str:
    match = re.search(r"\.[A-Za-z0-9]+$", path)
    return match.group(0).lower() if match else ""


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping):
        return [value]
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):
        # By index: iterating a mapped task's lazy XCom sequence asks for one item past the end,
        # which the task log shows as an "XCom not found" error.
        return [value[i] for i in range(len(value))]
    return list(value)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!])")


def _escape(text: str) -> str:
    """Text shown literally in Markdown (captions and messages, not links)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))
