"""``make soak``: ``python -m soak`` (``tests/`` on ``PYTHONPATH``); ``SOAK_N`` generations (1,000),
``SOAK_BUDGET`` seconds before the soak stops waiting and judges what it has (default 4 hours:
generations still running then are reported as unfinished), ``SOAK_DIR`` to keep the files.

Prints progress, then the table (docs/reliability.md shows the latest); on a broken invariant,
the offending generations with their history, and exits 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .run import SoakConfig, run_soak


def main() -> int:
    generations = int(os.environ.get("SOAK_N", "1000"))
    config = SoakConfig(generations=generations, per_run=min(50, generations))
    if os.environ.get("SOAK_BUDGET"):
        config.budget_seconds = float(os.environ["SOAK_BUDGET"])
    keep = os.environ.get("SOAK_DIR")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="kling-soak-"))
    print(
        f"soak: {generations} generations, {config.per_run} per DAG run, faults {config.fault_rate:.0%}, "
        f"a kill every {config.kill_every[0]:g}-{config.kill_every[1]:g} s; files under {root}",
        flush=True,
    )
    result = run_soak(root, config, say=lambda line: print(line, flush=True))
    print(result.table())
    if not result.verdict.passed:
        print("\nOffending generations (at most 50):")
        print("\n".join(result.details))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
