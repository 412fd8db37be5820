"""Airflow finds the provider through its entry point: CLI listings and the connection form."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kling_provider import get_provider_info


def _airflow_json(*args: str) -> object:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "-o", "json"], check=True, capture_output=True, text=True
    ).stdout
    # Warnings may precede the JSON on stdout: parse from the first line that opens it.
    start = min(i for i in (out.find("["), out.find("{")) if i >= 0)
    return json.loads(out[start:])


def test_provider_info_is_valid_against_airflows_schema() -> None:
    import jsonschema
    from airflow.providers_manager import ProvidersManager

    info = get_provider_info()
    schema = ProvidersManager()._provider_schema_validator.schema  # the schema Airflow itself applies
    jsonschema.validate(info, schema)
    assert info["connection-types"][0] == info["connection-types"][0] | {
        "connection-type": "kling",
        "hook-class-name": "kling_provider.hooks.kling.KlingHook",
    }


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (("providers", "list"), "airflow-provider-kling"),
        (("providers", "hooks"), "kling_provider.hooks.kling.KlingHook"),
        (("providers", "links"), "kling_provider.operators.kling.KlingVideoLink"),
        (("providers", "triggers"), "kling_provider.triggers.kling"),
    ],
)
def test_airflow_cli_lists_the_provider(command: tuple[str, ...], needle: str) -> None:
    assert needle in json.dumps(_airflow_json(*command))


@pytest.mark.newer_airflow("3.2: the form from the provider info; 3.0/3.1: tests/test_connection_form_versions.py")
def test_connection_form_fields_and_behaviour() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    assert "extra__kling__files_host" in widgets
    assert "extra__kling__rate_limit_rpm" in widgets
    behaviour = manager.field_behaviours["kling"]
    assert behaviour["relabeling"]["password"] == "API key"
    assert "login" in behaviour["hidden_fields"]
