"""Publish a reviewed video: an atomic copy to where published videos live, and an Asset event.

The copy goes through the same writer as downloads (:class:`~kling_provider.storage.VerifiedWriter`):
counted against the source's size, checked for an MP4 header, and only then renamed (local disk)
or completed (S3) under the published name. A reader of the published location therefore sees
the previous video or the new one, never half of one; a crash leaves at most a hidden part file.

Only the video is copied. The re-run sidecar next to a saved video describes the generation
request that made it (it lets a re-run skip an identical video), which is not a property of the
published copy; the poster frame is a review aid. Both stay with the saved variant, and the
Asset event names the saved variant (``source_uri``) for anyone who wants them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from kling_provider.exceptions import KlingValidationError

if TYPE_CHECKING:
    from airflow.sdk import Context

# kling_provider.storage is imported by the functions that write: a DAG file importing this
# module to declare its tasks does not load it (bench #4).

__all__ = ["PublishedVideo", "publish_chosen", "publish_video"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PublishedVideo:
    uri: str
    size: int
    source_uri: str


def publish_video(
    source_uri: str,
    target_uri: str,
    *,
    source_conn_id: str | None = None,
    target_conn_id: str | None = None,
) -> PublishedVideo:
    """Copy the saved video at ``source_uri`` to ``target_uri`` atomically; return where it went.

    Both may be local paths, ``file://`` URIs or object-storage URIs (read and written with the
    given connections). An existing published video is replaced in one step.
    """
    from kling_provider.storage import VerifiedWriter, destination_uri, resolve_destination

    for name, value in (("source_uri", source_uri), ("target_uri", target_uri)):
        if not isinstance(value, str) or not value.strip():
            raise KlingValidationError(f"{name}: must be a path or URI (got {value!r})", param=name)
    source = resolve_destination(source_uri, source_conn_id)
    target = resolve_destination(target_uri, target_conn_id)
    source_name, target_name = destination_uri(source), destination_uri(target)
    if source_name == target_name:
        raise KlingValidationError(
            f"target_uri: {target_name} is the saved video itself; publish to another place", param="target_uri"
        )
    size = int(source.stat().st_size)
    writer = VerifiedWriter(target, size)
    with source.open("rb") as handle:
        writer.write_all(_chunks(handle))
    writer.commit()
    return PublishedVideo(uri=target_name, size=size, source_uri=source_name)


def publish_chosen(
    context: Context,
    review: Mapping[str, Any],
    target_uri: str,
    *,
    outlet: Asset | AssetAlias,
    source_conn_id: str | None = None,
    target_conn_id: str | None = None,
) -> dict[str, Any]:
    """Publish the variant a :class:`~kling_provider.operators.review.KlingReviewOperator` answer chose.

    ``review`` is that operator's XCom. The event on ``outlet`` (declared in the task's
    ``outlets``) carries the published URI, the saved variant it came from, the EvoLink task id,
    the variant number, and who approved it: a downstream DAG scheduled on the asset reads them
    from ``triggering_asset_events``. With an :class:`AssetAlias` the event is on an asset whose
    URI is the published video.
    """
    chosen = review.get("chosen") if review.get("decision") == "publish" else None
    if not isinstance(chosen, Mapping) or not chosen.get("output_uri"):
        raise KlingValidationError(
            f"review: no chosen variant with a saved video to publish (decision {review.get('decision')!r}); "
            "publish only after a variant was picked, and give the video operator an output_uri",
            param="review",
        )
    published = publish_video(
        str(chosen["output_uri"]), target_uri, source_conn_id=source_conn_id, target_conn_id=target_conn_id
    )
    responded_by = review.get("responded_by") or {}
    extra = {
        "uri": published.uri,
        "source_uri": published.source_uri,
        "size": published.size,
        "kling_task_id": chosen.get("id"),
        "variant": review.get("variant"),
        "approved_by": responded_by.get("name") if isinstance(responded_by, Mapping) else None,
    }
    events = context["outlet_events"]
    if isinstance(outlet, AssetAlias):
        events[outlet].add(Asset(uri=published.uri), extra=extra)
    else:
        events[outlet].extra.update(extra)
    return extra


def _chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk
