"""Where the "Kling video" button goes once a video is saved: somewhere a browser can open.

Decisions:

* ``http(s)://`` outputs are their own address.
* ``s3://bucket/key`` on AWS itself opens the object's page in the AWS console; not for S3 APIs
  elsewhere (MinIO, R2, moto...: an ``endpoint_url`` on the connection), whose consoles have no
  URL scheme in common.
* ``gs://bucket/key`` opens the object's page in the Google Cloud console.
* Local paths and ``file://`` URIs cannot be opened from the Airflow UI (the file is on the worker,
  and browsers refuse ``file://`` links from web pages): the button keeps EvoLink's link.

A console page asks the viewer to sign in to the account that owns the bucket; it still outlives
EvoLink's link, which stops working 24 hours after the generation.
"""

from __future__ import annotations

import os
import weakref
from typing import Any
from urllib.parse import quote

AWS_CONSOLE = "https://console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
GCS_CONSOLE = "https://console.cloud.google.com/storage/browser/_details/{bucket}/{key}"
_S3_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def browser_url(uri: str | None, destination: Any = None) -> str | None:
    """A URL a browser can open for the saved ``uri`` (as the XCom names it), or None.

    ``destination`` is the resolved ``ObjectStoragePath`` it was written through, whose
    filesystem tells whether an S3 URI is on AWS itself.
    """
    if not uri or "://" not in uri:
        return None
    scheme, _, rest = uri.partition("://")
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        return uri
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        return None
    if scheme in ("s3", "s3a"):
        if _custom_s3_endpoint(destination):
            return None
        return AWS_CONSOLE.format(bucket=quote(bucket, safe=""), key=quote(key, safe=""))
    if scheme in ("gs", "gcs"):
        return GCS_CONSOLE.format(bucket=quote(bucket, safe=""), key=quote(key, safe="/"))
    return None


#: The link each live operator decided, by ``id()``: kept off the operator's attributes, which the
#: OpenLineage provider copies into its events (``include_full_task_info``), while EvoLink's link
#: is signed (a credential). An entry goes when its operator is garbage-collected.
_DECIDED: dict[int, str] = {}


def remember_link(operator: Any, link: str) -> None:
    """What the "Kling video" link of ``operator`` shows, as decided in this try."""
    key = id(operator)
    if key not in _DECIDED:
        weakref.finalize(operator, _DECIDED.pop, key, None)
    _DECIDED[key] = link


def decided_link(operator: Any) -> str:
    """The link ``remember_link`` kept for this operator ("" when this try decided none)."""
    return _DECIDED.get(id(operator), "")


def _custom_s3_endpoint(destination: Any) -> bool:
    """An S3 API other than AWS's: the filesystem (or the environment) names an endpoint."""
    if any(os.environ.get(name) for name in _S3_ENDPOINT_VARIABLES):
        return True
    fs = getattr(destination, "fs", None)
    if fs is None:
        return destination is not None  # cannot tell: no console link rather than a wrong one
    client_kwargs = getattr(fs, "client_kwargs", None) or {}
    return bool(getattr(fs, "endpoint_url", None) or client_kwargs.get("endpoint_url"))
