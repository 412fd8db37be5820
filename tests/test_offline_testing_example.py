"""The README's "Testing your DAGs offline" example: shown verbatim, and passing as a user's project.

The example lives in docs/examples/offline_testing/: a project with its DAG file in dags/, its test
in tests/ and a pytest.ini (``pythonpath = dags``). It is copied, byte for byte, into an empty
folder and run there by a separate pytest: no conftest and no pytest settings of this repository,
its own AIRFLOW_HOME and DAGS_FOLDER. The fixtures can only come from the ``pytest11`` entry
point, as in a user's project.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "examples" / "offline_testing"
EXAMPLE_FILES = ("pytest.ini", "dags/product_video.py", "tests/test_product_video.py")
# <!-- docs/examples/offline_testing/<path> --> right before the fenced block showing that file.
_BLOCK = re.compile(r"<!-- (docs/examples/offline_testing/[\w./]+) -->\n```(?:python|ini)\n(.*?)```\n", re.DOTALL)


def readme_blocks() -> dict[str, str]:
    return {path: code for path, code in _BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))}


def test_the_readme_shows_the_example_files_verbatim() -> None:
    blocks = readme_blocks()
    assert set(blocks) == {f"docs/examples/offline_testing/{name}" for name in EXAMPLE_FILES}
    for path, code in blocks.items():
        assert code == (REPO / path).read_text(encoding="utf-8"), f"README's copy of {path} differs from the file"


def test_the_example_passes_in_a_project_of_its_own(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in EXAMPLE_FILES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLE / name, project / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_", "KLING_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONDONTWRITEBYTECODE="1",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^2 passed\b", result.stdout.splitlines()[-1]), output
    assert not list(project.rglob("conftest.py"))
