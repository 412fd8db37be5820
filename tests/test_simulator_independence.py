"""The simulator imports nothing from the client: it is an independent oracle of the vendor's API.

If ``kling_provider.testing`` used the client's models, rules or prices, a wrong rule would be
wrong on both sides and every test would still pass. So no module under
``kling_provider/testing`` may import any ``kling_provider`` module outside that package, not even
under ``TYPE_CHECKING`` or inside a function. Read from the source (``ast``), not from
``sys.modules``, so a lazy import counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kling_provider.testing

PACKAGE = "kling_provider"
SIMULATOR = "kling_provider.testing"
SIMULATOR_DIR = Path(kling_provider.testing.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SIMULATOR_DIR.parent.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """The absolute name ``from <level dots><module> import ...`` refers to inside ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def client_imports(source: str, importer: str, *, is_package: bool = False) -> list[str]:
    """Every ``kling_provider`` name outside the simulator that ``source`` imports, as written."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, importer, is_package)
            # ``from kling_provider import models`` imports a submodule; name it.
            names = [f"{module}.{alias.name}" if module == PACKAGE else module for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        else:
            continue
        for name in names:
            inside_package = name == PACKAGE or name.startswith(PACKAGE + ".")
            inside_simulator = name == SIMULATOR or name.startswith(SIMULATOR + ".")
            if inside_package and not inside_simulator:
                found.append(name)
    return found


def _simulator_sources() -> list[Path]:
    return sorted(SIMULATOR_DIR.rglob("*.py"))


def test_the_simulator_has_modules_to_check() -> None:
    names = {_module_name(path) for path in _simulator_sources()}
    assert {SIMULATOR, f"{SIMULATOR}.app", f"{SIMULATOR}.state", f"{SIMULATOR}.validation"} <= names


@pytest.mark.parametrize("path", _simulator_sources(), ids=lambda p: p.relative_to(SIMULATOR_DIR).as_posix())
def test_simulator_module_imports_nothing_from_the_client(path: Path) -> None:
    importer = _module_name(path)
    found = client_imports(path.read_text(encoding="utf-8"), importer, is_package=path.name == "__init__.py")
    assert not found, f"{importer} imports the client ({', '.join(found)}): the simulator must stay independent"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import kling_provider.models", ["kling_provider.models"]),
        ("from kling_provider.hooks.kling import KlingHook", ["kling_provider.hooks.kling"]),
        ("from kling_provider import pricing", ["kling_provider.pricing"]),
        ("from kling_provider import testing", []),
        ("from ..operators import base", ["kling_provider.operators"]),
        ("from .state import SimTask", []),
        ("from . import media", []),
        (
            "if TYPE_CHECKING:\n    from kling_provider.triggers.kling import KlingTaskTrigger",
            ["kling_provider.triggers.kling"],
        ),
        ("def f():\n    import kling_provider.models.requests as r", ["kling_provider.models.requests"]),
        ("importlib.import_module('kling_provider.models')", ["kling_provider.models"]),
        ("import kling_provider.testing.app\nfrom kling_provider.testing.clock import SimClock", []),
        ("import httpx\nfrom starlette.responses import Response", []),
    ],
)
def test_the_check_sees_client_imports(source: str, expected: list[str]) -> None:
    assert client_imports(source, "kling_provider.testing.app") == expected
