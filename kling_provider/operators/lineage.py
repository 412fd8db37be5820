"""OpenLineage for the Kling operators: what a generation read, what it wrote, what it cost.

Only the operators' ``get_openlineage_facets_on_*`` methods import this module, and only the
OpenLineage provider calls those: the OpenLineage client it needs is never a requirement of
this provider. They hand it a :class:`.LineageSubject` (``operators/lineage_facts.py``), and it
reads nothing else of the operator. Dataset names follow https://openlineage.io/docs/spec/naming:

========================================  ==========================  ============================
source or target                          namespace                   name
========================================  ==========================  ============================
local path, ``file://`` URI               ``file://{worker host}``    the absolute path
``s3://bucket/key`` (any object store)    ``s3://bucket``             ``key``
``https://host/path?query`` (an image)    ``https://host``            ``path`` (no query)
an element (``element_id``)               ``evolink://{API host}``    ``elements/{element_id}``
========================================  ==========================  ============================

Images given as bytes have no name, so no dataset. See docs/lineage.md for the decisions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.sdk.api.client import get_hostname
from attrs import define
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet

from kling_provider import __version__
from kling_provider.hooks.connection import DEFAULT_API_HOST
from kling_provider.operators.lineage_facts import LineageFacts, LineageSubject, authority
from kling_provider.storage import destination_uri

log = logging.getLogger(__name__)

#: The run facet's key: producer-prefixed, as OpenLineage asks of custom facets.
FACET_NAME = "kling_task"
#: Who wrote the facet (OpenLineage's ``_producer``: a URI naming the producer and its version).
PRODUCER = f"https://pypi.org/project/airflow-provider-kling/{__version__}/"
#: ``gcs://`` is another spelling of ``gs://``; OpenLineage names GCS datasets ``gs://``.
_SCHEME_ALIASES = {"gcs": "gs", "s3a": "s3", "s3n": "s3"}


@define
class KlingTaskRunFacet(RunFacet):
    """The EvoLink task behind an Airflow run: which one, what it cost, what it made.

    ``creditsReserved`` is EvoLink's own figure for the task (the bill); ``estimatedCredits`` and
    ``estimatedUsd`` are this provider's forecast (None where no price is published). EvoLink
    reports no separate "charged" amount. ``videoUrl`` is EvoLink's result link without its
    signature: it says which result, the XCom keeps the link that opens it.
    """

    taskId: str
    model: str | None = None
    status: str | None = None
    estimatedCredits: float | None = None
    estimatedUsd: float | None = None
    creditsReserved: float | None = None
    outputUri: str | None = None
    videoUrl: str | None = None
    videoUrlExpiresAt: str | None = None
    elementId: str | None = None
    errorCode: str | None = None

    # Ids, figures and locations, no secrets: the OpenLineage secrets masker may leave them be.
    _additional_skip_redact = ["taskId", "model", "status", "outputUri", "elementId", "errorCode"]


def lineage_on_start(subject: LineageSubject) -> OperatorLineage:
    """Before submitting: the inputs, and the output the video will be saved to."""
    output = dataset_for(subject.output_uri)
    return OperatorLineage(inputs=input_datasets(subject), outputs=[output] if output else [])


def lineage_on_complete(subject: LineageSubject) -> OperatorLineage:
    """After success: inputs, what was written (the saved video, or the new element) and the task."""
    facts = subject.facts
    outputs: list[Dataset] = []
    if facts is not None and facts.element_id:
        outputs.append(element_dataset(facts.element_id, _api_host(subject)))
    elif facts is not None and (saved := dataset_for(facts.output_uri)) is not None:
        outputs.append(saved)
    facet = run_facet(facts)
    return OperatorLineage(
        inputs=input_datasets(subject), outputs=outputs, run_facets={FACET_NAME: facet} if facet else {}
    )


def lineage_on_failure(subject: LineageSubject) -> OperatorLineage:
    """After a failure: the inputs, and the EvoLink task if one was created (nothing was written)."""
    facet = run_facet(subject.facts)
    return OperatorLineage(inputs=input_datasets(subject), run_facets={FACET_NAME: facet} if facet else {})


def run_facet(facts: LineageFacts | None) -> KlingTaskRunFacet | None:
    """The task the operator last knew of (None before anything was submitted)."""
    if facts is None:
        return None
    estimate = facts.estimate
    return KlingTaskRunFacet(
        producer=PRODUCER,
        taskId=facts.task_id,
        model=facts.model or (estimate.model if estimate else None),
        status=facts.status,
        estimatedCredits=estimate.credits if estimate else None,
        estimatedUsd=estimate.usd if estimate else None,
        creditsReserved=facts.credits_reserved,
        outputUri=facts.output_uri,
        videoUrl=facts.video_url,
        videoUrlExpiresAt=facts.expires_at,
        elementId=facts.element_id,
        errorCode=facts.error_code,
    )


def input_datasets(subject: LineageSubject) -> list[Dataset]:
    """Images (and a reference video) as the user named them, not as uploaded; elements used."""
    datasets = [found for source in subject.inputs if (found := dataset_for(source)) is not None]
    elements = [e for e in subject.elements if isinstance(e, str) and e.strip()]
    if elements:
        host = _api_host(subject)
        datasets += [element_dataset(element, host) for element in elements]
    return _unique(datasets)


def dataset_for(source: Any) -> Dataset | None:
    """A path, URI, URL or ObjectStoragePath as an OpenLineage dataset; None if it names nothing."""
    if source is None or isinstance(source, bytes | bytearray | memoryview):
        return None
    if not isinstance(source, str) and hasattr(source, "protocol"):  # ObjectStoragePath (not PathLike on 3.1+)
        source = destination_uri(source)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source.strip():
        return None
    text = source.strip()
    if "://" not in text:
        return _local_file(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # not a URL after all (a bad port, an unclosed IPv6 bracket): names nothing
        return None
    scheme = parts.scheme.lower()
    if scheme == "file":  # Path.as_uri() percent-encodes: name the file as its raw path names it
        path = unquote(parts.path)
        if parts.hostname in (None, "localhost"):
            return _local_file(path)
        return Dataset(namespace=f"file://{authority(parts.hostname, None)}", name=path)
    host = parts.hostname or ""
    if not host:
        return None
    if scheme in ("http", "https"):
        return Dataset(namespace=f"{scheme}://{authority(host, port)}", name=parts.path.lstrip("/") or "/")
    # Object storage: the bucket is the namespace, the key the name. Any user info is the
    # Airflow connection id ObjectStoragePath embeds (s3://aws_default@bucket/key), not the place.
    return Dataset(namespace=f"{_SCHEME_ALIASES.get(scheme, scheme)}://{host}", name=parts.path.lstrip("/") or "/")


def element_dataset(element_id: str, api_host: str) -> Dataset:
    """An element lives in the EvoLink account behind the connection: its API host is the namespace."""
    return Dataset(namespace=f"evolink://{api_host}", name=f"elements/{element_id}")


def _api_host(subject: LineageSubject) -> str:
    """host[:port] of the connection's API (the EvoLink default when the connection cannot be read)."""
    try:
        base = subject.api_base_url()
    except Exception:  # lineage must never fail a task, nor hide its other datasets
        log.warning(
            "OpenLineage: cannot read connection %r; naming elements after %s", subject.kling_conn_id, DEFAULT_API_HOST
        )
        base = DEFAULT_API_HOST
    parts = urlsplit(base)
    return authority(parts.hostname or "", parts.port)


def _local_file(path: str) -> Dataset:
    """A worker's file: the host is part of the name, the same path elsewhere is another file."""
    return Dataset(namespace=f"file://{_hostname()}", name=str(Path(path).expanduser().resolve()))


def _hostname() -> str:
    """The host name Airflow records for the task instance ([core] hostname_callable)."""
    return str(get_hostname())


def _unique(datasets: Iterable[Dataset]) -> list[Dataset]:
    """In order, each (namespace, name) once: start and end frame may be the same image."""
    seen: set[tuple[str, str]] = set()
    out = []
    for dataset in datasets:
        if (dataset.namespace, dataset.name) not in seen:
            seen.add((dataset.namespace, dataset.name))
            out.append(dataset)
    return out
