"""Every configuration option the provider reads is declared in its provider info, so Airflow's
``config`` commands list it with its description and default, and the code's fallback agrees."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kling_provider
from kling_provider import get_provider_info

PACKAGE = Path(kling_provider.__file__).resolve().parent
#: ``AIRFLOW__SECTION__KEY`` in a string: the environment spelling of an option.
ENV_OPTION = re.compile(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)")
DECLARED: dict[str, dict[str, Any]] = get_provider_info()["config"]


@dataclass(frozen=True)
class Read:
    """One ``conf.get*(section, key, ...)`` call (or ``AIRFLOW__SECTION__KEY`` string) in the source."""

    where: str
    module: str
    section: str
    key: str
    fallback: ast.expr | None = None


def _reads() -> list[Read]:
    reads: list[Read] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for section, key in ENV_OPTION.findall(node.value):
                    if section not in {"CORE", "DATABASE"}:  # set by helpers, not read by the provider
                        reads.append(Read(where, module, section.lower(), key.lower()))
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and (node.func.attr.startswith("get") or node.func.attr == "has_option")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "conf"
            ):
                continue
            args = node.args[:2]
            assert len(args) == 2 and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args), (
                f"{where}: conf.{node.func.attr}() with a section or key that is not a literal: the declared-config "
                "test cannot check it; spell both out"
            )
            section, key = (a.value for a in args if isinstance(a, ast.Constant))
            fallback = next((kw.value for kw in node.keywords if kw.arg == "fallback"), None)
            reads.append(Read(where, module, section, key, fallback))
    return reads


READS = _reads()


def _typed(option: dict[str, Any], raw: str) -> object:
    """A declared default as the code reads it (``conf.getboolean``, ``getfloat``, ...)."""
    match option["type"]:
        case "boolean":
            return {"true": True, "false": False}[raw.lower()]
        case "float":
            return float(raw)
        case "integer":
            return int(raw)
        case _:
            return raw


def test_the_scan_finds_the_options_the_provider_reads() -> None:
    """The scan is not vacuous: it sees the two reads the provider is known to make."""
    found = {(r.section, r.key) for r in READS}
    assert {("kling", "default_deferrable"), ("kling", "trigger_settle_seconds")} <= found


@pytest.mark.parametrize("read", [r for r in READS if r.section == "kling"], ids=lambda r: f"{r.key}@{r.where}")
def test_every_kling_option_read_is_declared(read: Read) -> None:
    options = DECLARED["kling"]["options"]
    assert read.key in options, (
        f"{read.where} reads [kling] {read.key}, which is not declared in kling_provider/_provider_info.py's "
        "'config' section: declare it (description, type, example, default) so `airflow config list` shows it"
    )


def test_options_of_other_sections_are_airflows_own() -> None:
    """``[operators] default_deferrable`` and the like: a typo would silently read the fallback forever."""
    from airflow.configuration import conf

    foreign = [r for r in READS if r.section != "kling"]
    assert foreign, "the provider honours [operators] default_deferrable: the scan should see it"
    described = conf.configuration_description  # Airflow's own options, those without a default too
    for read in foreign:
        options = described.get(read.section, {}).get("options", {})
        assert read.key in options, f"{read.where}: [{read.section}] {read.key} is not Airflow's"


@pytest.mark.parametrize(
    "read", [r for r in READS if r.section == "kling" and r.fallback is not None], ids=lambda r: r.key
)
def test_the_codes_fallback_is_the_declared_default(read: Read) -> None:
    """The fallback applies where Airflow has not loaded provider config; both must say the same."""
    assert read.fallback is not None
    option = DECLARED["kling"]["options"][read.key]
    namespace = vars(importlib.import_module(read.module))
    fallback = eval(compile(ast.Expression(read.fallback), read.where, "eval"), namespace)
    assert fallback == _typed(option, option["default"]), f"{read.where}: fallback {fallback!r} vs declared default"


def test_declarations_are_complete_and_typed() -> None:
    for name, option in DECLARED["kling"]["options"].items():
        assert option["description"].strip(), name
        for field in ("default", "example"):
            assert isinstance(option[field], str), f"{name}.{field}: airflow.cfg values are strings"
            _typed(option, option[field])  # parses as its declared type


def test_defaults_apply_in_process_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the provider does with nothing configured is what ``airflow config`` says it does."""
    from kling_provider.operators.base import default_deferrable
    from kling_provider.triggers.kling import configured_settle

    for key in DECLARED["kling"]["options"]:
        monkeypatch.delenv(f"AIRFLOW__KLING__{key.upper()}", raising=False)
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    default = {key: _typed(option, option["default"]) for key, option in DECLARED["kling"]["options"].items()}
    assert default_deferrable() is default["default_deferrable"]
    assert configured_settle() == default["trigger_settle_seconds"]


def _airflow(*args: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__KLING__")}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=clean | (env or {})
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("key", sorted(DECLARED["kling"]["options"]))
def test_airflow_config_get_value_shows_the_default(key: str) -> None:
    out = _airflow("config", "get-value", "kling", key)
    assert out.strip().splitlines()[-1] == DECLARED["kling"]["options"][key]["default"]


def test_airflow_config_list_shows_descriptions_defaults_and_overrides() -> None:
    """``airflow config list`` prints each option with its description, example and value; an
    ``AIRFLOW__KLING__*`` variable overrides one and the listing says so."""
    listing = ["config", "list", "--section", "kling", "--include-descriptions", "--include-examples"]
    help_text = _airflow("config", "list", "--help")
    if "--show-values" in help_text:  # Airflow 3.1+ hides values unless asked
        listing.append("--show-values")
    out = _airflow(*listing, "--include-sources", env={"AIRFLOW__KLING__TRIGGER_SETTLE_SECONDS": "7.5"})
    assert "[kling]" in out
    assert DECLARED["kling"]["description"] in out
    for key, option in DECLARED["kling"]["options"].items():
        first_line = option["description"].splitlines()[0]
        assert f"# {first_line}" in out, f"{key}: description missing from `airflow config list`"
        assert f"# Example: {key} = {option['example']}" in out
    assert "\ndefault_deferrable = True\n" in out
    assert "\ntrigger_settle_seconds = 7.5\n" in out
    assert "# Source: env var" in out
