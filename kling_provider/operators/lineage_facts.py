"""What lineage reports about an operator, handed to it as values: the operator's side of lineage.

No OpenLineage import here: the operators record :class:`LineageFacts` as they run, whether or
not the OpenLineage provider is installed. Only ids, figures and locations are kept, never a
signed link: with ``[openlineage] include_full_task_info`` the OpenLineage provider copies an
operator's attributes into its events. :class:`LineageSubject` is built only when OpenLineage
asks, so :mod:`kling_provider.operators.lineage` reads nothing of the operator itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from kling_provider.models import Task
    from kling_provider.pricing import CostEstimate


@dataclass(frozen=True)
class LineageFacts:
    task_id: str
    model: str | None = None
    status: str | None = None
    credits_reserved: float | None = None
    error_code: str | None = None
    estimate: CostEstimate | None = None
    output_uri: str | None = None
    #: EvoLink's result link without its query: the signature is a credential.
    video_url: str | None = None
    expires_at: str | None = None
    element_id: str | None = None

    @classmethod
    def of(cls, task: Task, estimate: CostEstimate | None) -> LineageFacts:
        return cls(
            task_id=task.id,
            model=task.model or (estimate.model if estimate else None),
            status=task.status.value,
            credits_reserved=task.usage.credits_reserved if task.usage else None,
            error_code=task.error_code,
            estimate=estimate,
        )

    def with_result(self, result: dict[str, Any]) -> LineageFacts:
        """The saved output as the XCom reports it, less the link's signature."""
        return replace(
            self,
            output_uri=result.get("output_uri"),
            video_url=without_query(result.get("video_url")),
            expires_at=result.get("expires_at"),
            element_id=result.get("element_id"),
        )


@dataclass(frozen=True)
class LineageSubject:
    """One operator run as lineage sees it: what it read, where it writes, what it learned.

    ``inputs`` are images and reference videos as the user named them (paths, URIs, URLs,
    ``ObjectStoragePath``, bytes; None where not given), not EvoLink's upload URLs. ``elements``
    are element ids the run uses. ``api_base_url`` is called only when an element needs naming
    (its namespace is the connection's API host), so building a subject reads no connection.
    """

    kling_conn_id: str
    api_base_url: Callable[[], str]
    inputs: tuple[Any, ...] = ()
    elements: tuple[Any, ...] = ()
    output_uri: Any = None
    facts: LineageFacts | None = None


def flatten(*values: Any) -> tuple[Any, ...]:
    """Single values and the items of lists or tuples, in order (a frame, then a list of references)."""
    return tuple(item for value in values for item in (value if isinstance(value, list | tuple) else (value,)))


def without_query(url: str | None) -> str | None:
    """Which result, not the key to it: a signed link's query (and any user info) is a credential."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, authority(parts.hostname or "", parts.port), parts.path, "", ""))


def authority(host: str, port: int | None) -> str:
    """host[:port], an IPv6 literal in brackets, without any user info (a credential)."""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host
