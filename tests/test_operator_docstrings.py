"""Each public operator's docstring documents every argument it takes, the Kling base's too, and
what it returns, and names no argument it does not take: ``help()``, IDEs and Sphinx show what the
code accepts (docs/operators/ has the long form, tests/test_docs.py keeps that in step)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest
from airflow.sdk import BaseOperator

import kling_provider
import kling_provider.operators

PACKAGE = Path(kling_provider.__file__).parent
_PARAM = re.compile(r":param (\w+):")
_CLASS = re.compile(r"^class (\w*Operator)\(", re.MULTILINE)


def public_operators() -> dict[str, type[BaseOperator]]:
    """Every public ``BaseOperator`` subclass defined in ``kling_provider.operators``."""
    found: dict[str, type[BaseOperator]] = {}
    for info in pkgutil.iter_modules(kling_provider.operators.__path__, "kling_provider.operators."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseOperator)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[name] = obj
    return found


OPERATORS = public_operators()


def arguments(operator: type) -> set[str]:
    """The keyword arguments the operator's own classes take (ours, down the MRO; not Airflow's)."""
    names: set[str] = set()
    for cls in operator.__mro__:
        if not cls.__module__.startswith("kling_provider.") or "__init__" not in cls.__dict__:
            continue
        parameters = inspect.signature(cls.__dict__["__init__"]).parameters.values()
        names |= {p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


def params(operator: type) -> list[str]:
    doc = operator.__doc__ or ""
    return _PARAM.findall(doc)


def returns_section(operator: type) -> str:
    doc = inspect.cleandoc(operator.__doc__ or "")
    start = doc.find(":returns:")
    if start < 0:
        return ""
    following = re.search(r"^:\w+", doc[start + 1 :], re.MULTILINE)
    return doc[start : start + 1 + following.start()] if following else doc[start:]


def xcom_keys(operator: type) -> set[str]:
    """The keys of the dict ``build_result`` returns, read from its source (empty without one)."""
    for cls in operator.__mro__:
        method = cls.__dict__.get("build_result")
        if method is not None:
            tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
            return {
                key.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict)
                for key in node.value.keys
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            }
    return set()


def test_every_public_operator_is_covered() -> None:
    """A public operator class anywhere in the package is one of those checked below."""
    in_source = {
        name
        for path in PACKAGE.rglob("*.py")
        for name in _CLASS.findall(path.read_text(encoding="utf-8"))
        if not name.startswith("_")
    }
    assert in_source, "the source scan found no operator classes"
    assert in_source == set(OPERATORS), "public operators outside kling_provider/operators/, or the scan is wrong"
    assert {"KlingTextToVideoOperator", "KlingImageToVideoOperator", "KlingCreateElementOperator"} <= set(OPERATORS)


@pytest.mark.parametrize("operator", OPERATORS.values(), ids=list(OPERATORS))
def test_every_argument_has_a_param_entry_and_nothing_else(operator: type) -> None:
    documented = params(operator)
    assert len(documented) == len(set(documented)), f"an argument is documented twice: {sorted(documented)}"
    taken = arguments(operator)
    assert not taken - set(documented), f"undocumented arguments: {sorted(taken - set(documented))}"
    assert not set(documented) - taken, (
        f":param: entries for arguments it does not take: {sorted(set(documented) - taken)}"
    )


@pytest.mark.parametrize("operator", OPERATORS.values(), ids=list(OPERATORS))
def test_each_param_entry_is_its_own_field(operator: type) -> None:
    """``:param a: / :param b:`` or a ``:param:`` inside another's text renders as one garbled field."""
    for line in inspect.cleandoc(operator.__doc__ or "").splitlines():
        fields = _PARAM.findall(line)
        assert len(fields) <= 1 and (not fields or line.startswith(":param ")), line


@pytest.mark.parametrize("operator", OPERATORS.values(), ids=list(OPERATORS))
def test_it_says_what_it_returns(operator: type) -> None:
    section = returns_section(operator)
    assert section, "no :returns: field"
    missing = {key for key in xcom_keys(operator) if f"``{key}``" not in section}
    assert not missing, f"XCom keys build_result returns that :returns: does not name: {sorted(missing)}"


def test_the_video_operators_xcom_keys_are_read() -> None:
    """The source reading above finds the keys (a test that could not fail would prove nothing)."""
    keys = xcom_keys(OPERATORS["KlingTextToVideoOperator"])
    assert {"id", "video_url", "output_uri", "estimated_credits"} <= keys
    assert xcom_keys(OPERATORS["KlingCreateElementOperator"]) >= {"element_id", "element_name"}


def test_no_docstring_in_the_package_runs_two_params_into_one() -> None:
    """Hooks and triggers too: ``:param transport: / :param async_transport:`` was one garbled field."""
    bad = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r":param \w+:\s*/|\S.*:param \w+:", line.replace('"""', "").strip())
    ]
    assert not bad, bad
