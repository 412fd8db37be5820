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
    # Log lines may precede the JSON on stdout, and Airflow 3.0's start with "[<timestamp>]":
    # the document is the first line-start from which a whole JSON value decodes.
    decoder = json.JSONDecoder()
    offset = 0
    for line in out.splitlines(keepends=True):
        if line.startswith(("[", "{")):
            try:
                return decoder.raw_decode(out, offset)[0]
            except json.JSONDecodeError:
                pass
        offset += len(line)
    raise AssertionError(f"no JSON document in the output of airflow {' '.join(args)}:\n{out[-2000:]}")


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
        (("plugins",), "kling_provider.plugins.review_media"),
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
