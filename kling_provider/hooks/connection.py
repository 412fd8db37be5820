"""Turn an Airflow connection into the few settings the client needs, checked once.

Kept apart from the hook so the trigger can build the same settings from an async lookup,
and so a wrong host or a missing key fails before any request is made.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kling_provider.exceptions import KlingAuthenticationError, KlingConnectionNotFoundError, KlingValidationError

DEFAULT_API_HOST = "https://api.evolink.ai"
DEFAULT_FILES_HOST = "https://files-api.evolink.ai"
#: Requests per minute one process sends per (API host, key) unless the connection says otherwise.
#: EvoLink does not publish its limits; 120/min is well under what an account is seen to get and
#: still polls 1,000 waiting generations every ~8 minutes (the poll policy asks far less often).
DEFAULT_RATE_LIMIT_RPM = 120.0


def _normalise_base_url(raw: str, *, field_name: str, port: int | None = None) -> str:
    raw = raw.strip().rstrip("/")
    if "://" not in raw:
        raw = f"https://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KlingValidationError(f"{field_name}: must be an https:// URL (got {raw[:200]!r})", param=field_name)
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise KlingValidationError(
            f"{field_name}: plain http:// is only allowed for a loopback host such as the bundled "
            f"simulator; use https:// for {parts.hostname}",
            param=field_name,
        )
    if port and parts.port is None:
        raw = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return raw


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class KlingConnectionSettings:
    """What a ``kling`` connection configures. ``repr`` never shows the key."""

    conn_id: str
    api_base_url: str
    files_base_url: str
    api_key: str = field(repr=False)
    rate_limit_rpm: float = DEFAULT_RATE_LIMIT_RPM
    timeout: float = 30.0

    @classmethod
    def from_connection(cls, conn: Any) -> KlingConnectionSettings:
        """Build from an Airflow ``Connection`` (sdk or core): password is the key, host the API URL."""
        conn_id = str(getattr(conn, "conn_id", "") or "kling_default")
        api_key = (getattr(conn, "password", None) or "").strip()
        if not api_key:
            raise KlingAuthenticationError(
                f"Connection {conn_id!r} has no API key: put the EvoLink key in the password field of "
                f"connection {conn_id!r}."
            )
        try:
            extra = _extra_dict(conn)
            port = getattr(conn, "port", None)
            api_base = _normalise_base_url(
                getattr(conn, "host", None) or DEFAULT_API_HOST, field_name="host", port=port
            )
            files_base = _normalise_base_url(
                str(extra.get("files_host") or DEFAULT_FILES_HOST), field_name="files_host"
            )
            rate_limit_rpm = _positive_float(extra, "rate_limit_rpm", DEFAULT_RATE_LIMIT_RPM)
            timeout = _positive_float(extra, "timeout", 30.0)
        except KlingValidationError as err:  # name the connection the setting is in
            raise KlingValidationError(f"connection {conn_id!r}: {err.message}", param=err.param) from None
        return cls(
            conn_id=conn_id,
            api_base_url=api_base,
            files_base_url=files_base,
            api_key=api_key,
            rate_limit_rpm=rate_limit_rpm,
            timeout=timeout,
        )

    @property
    def limiter_key(self) -> tuple[str, str]:
        """Rate limits are per account: one limiter per (API host, key) in a process."""
        return (self.api_base_url, hashlib.sha256(self.api_key.encode()).hexdigest()[:16])


def connection_not_found(conn_id: str) -> KlingConnectionNotFoundError:
    """The error for a ``kling_conn_id`` that names no connection: how to create one."""
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    example = json.dumps({"conn_type": "kling", "password": "<your EvoLink API key>"})
    return KlingConnectionNotFoundError(
        f"Connection {conn_id!r} (kling_conn_id) is not defined. Create it with your EvoLink API key as its "
        f"password: as an environment variable of the workers and triggerers, {env_var}='{example}'; or in "
        "the Airflow UI under Admin > Connections > Add Connection, Connection Type 'Kling video (EvoLink)', "
        f"Connection Id {conn_id!r}, the key in 'API key'; or with "
        f"`airflow connections add {conn_id} --conn-type kling --conn-password <key>`. "
        "Or set kling_conn_id to a connection that exists.",
        conn_id=conn_id,
    )


def _extra_dict(conn: Any) -> dict[str, Any]:
    getter = getattr(conn, "extra_dejson", None)
    if isinstance(getter, dict):
        return getter
    raw = getattr(conn, "extra", None)
    if not raw:
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise KlingValidationError("extra: must be a JSON object", param="extra") from err
    return value if isinstance(value, dict) else {}


def _positive_float(extra: dict[str, Any], name: str, default: float) -> float:
    value = extra.get(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise KlingValidationError(f"extra.{name}: must be a positive number (got {value!r})", param=f"extra.{name}")
    return number
