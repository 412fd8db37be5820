"""The sdist and wheel as a user gets them: built, checked, installed into a clean virtualenv.

Slow (a build and an Airflow install, ~1 min with pip's cache): ``make test-all`` / ``make test-slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OPENAPI = sorted(p.name for p in (REPO / "kling_provider" / "testing" / "openapi").glob("*.json"))
EXAMPLE_DAGS = [
    REPO / "dags_examples" / "kling_teaser.py",
    REPO / "docs" / "examples" / "offline_testing" / "dags" / "product_video.py",
]

pytestmark = pytest.mark.slow

_CHECK_SCRIPT = """
import json, sys

import httpx

import kling_provider.operators.kling  # noqa: F401
from kling_provider.testing import SimClock, EvoLinkSimulator

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.1
    from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
# The simulator validates against the vendored OpenAPI documents: they must be in the wheel.
sim = EvoLinkSimulator(clock=SimClock(speed=0))
with httpx.Client(transport=sim.sync_transport(), base_url="http://evolink-sim.localhost") as client:
    key = sorted(sim.api_keys)[0]
    answer = client.post(
        "/v1/videos/generations",
        json={"model": "kling-v3-text-to-video", "prompt": "a kite", "duration": 5},
        headers={"Authorization": "Bearer " + key},
    )
print(json.dumps({
    "module": kling_provider.operators.kling.__file__,
    "dag_ids": sorted(bag.dag_ids),
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "submit_status": answer.status_code,
}))
"""


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, REPO)
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert sorted(p.suffix for p in files) == [".gz", ".whl"], files
    _run(sys.executable, "-m", "twine", "check", "--strict", *files)


def test_the_wheel_carries_types_assets_and_entry_points(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = archive.read(entry_points).decode()
    assert "kling_provider/py.typed" in names
    assert {f"kling_provider/testing/openapi/{name}" for name in OPENAPI} <= names
    assert len(OPENAPI) >= 10
    assert not any(n.startswith(("tests/", "docs/", "dags_examples/")) for n in names)
    assert "[apache_airflow_provider]\nprovider_info = kling_provider:get_provider_info" in entry_text
    assert "[pytest11]\nkling = kling_provider.testing.pytest_plugin" in entry_text
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("kling_provider/testing/openapi/kling-v3-text-to-video.json") for m in members)


def test_the_wheel_works_in_a_clean_virtualenv(dist: Path, tmp_path: Path) -> None:
    import airflow

    [wheel] = dist.glob("*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)  # no --system-site-packages: nothing leaks in
    python = venv / "bin" / "python"
    # This Python's own pins where it has them (see PY_CONSTRAINTS in the Makefile), else the default.
    pins = REPO / ".ci" / f"constraints-airflow-{airflow.__version__}"
    python_pins = pins.with_name(f"{pins.name}-py{sys.version_info[0]}.{sys.version_info[1]}.txt")
    constraints = python_pins if python_pins.exists() else pins.with_name(f"{pins.name}.txt")
    pin = ["-c", str(constraints)] if constraints.exists() else []
    _run(python, "-m", "pip", "install", "-q", *pin, f"apache-airflow=={airflow.__version__}", wheel)

    dags = tmp_path / "dags"
    dags.mkdir()
    for dag_file in EXAMPLE_DAGS:
        shutil.copyfile(dag_file, dags / dag_file.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    work = tmp_path / "elsewhere"  # not the repository: imports must come from the wheel
    work.mkdir()

    listed = _run(python, "-m", "airflow", "providers", "list", "-o", "json", env=env, cwd=work).stdout
    start = listed.index("[{")  # warnings and log lines may come first
    packages = {p["package_name"]: p["version"] for p in json.loads(listed[start : listed.rindex("]") + 1])}
    from kling_provider import __version__

    assert packages.get("airflow-provider-kling") == __version__, packages

    out = _run(python, "-c", _CHECK_SCRIPT, dags, env=env, cwd=work).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["module"].startswith(str(venv)), report["module"]
    assert report["import_errors"] == {}
    assert {"kling_teaser", "product_video"} <= set(report["dag_ids"])
    assert report["submit_status"] == 200
