"""One request as the simulator's handlers see it, and what is read off it before any handler runs.

The bearer key lives on the :class:`Exchange` only, never in the request log: an account is
known by a fingerprint of its key, so the simulator's memory holds no key either.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from kling_provider.testing.state import RequestRecord

__all__ = ["Exchange", "bearer", "fingerprint", "loggable_json"]


@dataclass
class Exchange:
    """One request being served (the key lives here only, never in the record)."""

    request: Request
    record: RequestRecord
    params: dict[str, str]
    body: bytes
    key: str | None = field(repr=False)
    owner: str
    base_url: str


def bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def fingerprint(key: str) -> str:
    """Stands for an account in memory without keeping the key itself around."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def loggable_json(request: Request, body: bytes) -> Any:
    """A JSON body as the request log keeps it: parsed, with uploaded base64 data left out."""
    if not body or "json" not in request.headers.get("content-type", "json"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("base64_data"), str):
        value = {**value, "base64_data": f"<{len(value['base64_data'])} characters>"}
    return value
