"""A connection becomes checked settings; the key never shows in a repr."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from kling_provider.exceptions import KlingAuthenticationError, KlingValidationError
from kling_provider.hooks.connection import KlingConnectionSettings


def conn(**kwargs: Any) -> SimpleNamespace:
    base: dict[str, Any] = {"conn_id": "kling_default", "host": None, "password": "sk-secret-123", "port": None}
    base.update(kwargs)
    base.setdefault("extra_dejson", {})
    return SimpleNamespace(**base)


def test_defaults_to_evolink_hosts() -> None:
    settings = KlingConnectionSettings.from_connection(conn())
    assert settings.api_base_url == "https://api.evolink.ai"
    assert settings.files_base_url == "https://files-api.evolink.ai"
    assert "sk-secret-123" not in repr(settings)


def test_host_without_scheme_is_https_and_port_is_kept() -> None:
    settings = KlingConnectionSettings.from_connection(conn(host="beta-api.evolink.ai", port=8443))
    assert settings.api_base_url == "https://beta-api.evolink.ai:8443"


def test_http_only_for_loopback() -> None:
    ok = KlingConnectionSettings.from_connection(
        conn(host="http://127.0.0.1:8790/", extra_dejson={"files_host": "http://localhost:8790"})
    )
    assert ok.api_base_url == "http://127.0.0.1:8790"
    assert ok.files_base_url == "http://localhost:8790"
    with pytest.raises(KlingValidationError, match="host: plain http:// is only allowed"):
        KlingConnectionSettings.from_connection(conn(host="http://api.evolink.ai"))
    with pytest.raises(KlingValidationError, match="files_host"):
        KlingConnectionSettings.from_connection(conn(extra_dejson={"files_host": "http://10.0.0.5"}))


def test_missing_key_is_an_authentication_error_naming_the_field() -> None:
    with pytest.raises(KlingAuthenticationError, match="password"):
        KlingConnectionSettings.from_connection(conn(password=""))


@pytest.mark.parametrize("value", ["0", "-5", "abc", "inf"])
def test_rate_limit_must_be_positive(value: str) -> None:
    with pytest.raises(KlingValidationError, match=r"extra\.rate_limit_rpm"):
        KlingConnectionSettings.from_connection(conn(extra_dejson={"rate_limit_rpm": value}))


def test_limiter_key_does_not_contain_the_key() -> None:
    settings = KlingConnectionSettings.from_connection(conn())
    assert "sk-secret-123" not in str(settings.limiter_key)
    other = KlingConnectionSettings.from_connection(conn(password="sk-other"))
    assert settings.limiter_key != other.limiter_key
