"""The reduced soak, in ``make test-slow``: a hundred generations on PostgreSQL + Celery + Redis
(two workers, two triggerers) through ~5 % failing requests and a kill every 20-40 s of a worker,
a triggerer or the scheduler (each kind at least once). Every invariant of ``make soak`` must hold:
none lost, none billed twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run import SoakConfig, run_soak

pytestmark = pytest.mark.slow

REDUCED = SoakConfig(
    generations=100,
    per_run=25,
    kill_every=(20.0, 40.0),
    pause=(4.0, 8.0),
    generation_seconds=10.0,
    budget_seconds=540.0,
    progress_every=30.0,
)


def test_a_hundred_generations_through_faults_and_kills_lose_nothing_and_bill_once(tmp_path: Path) -> None:
    result = run_soak(tmp_path, REDUCED)
    print("\n" + result.table())
    assert result.verdict.passed, result.table() + "\n\n" + "\n".join(result.details)
    kills = result.chaos.by_kind()
    assert all(kills.values()), f"every kind of component was killed at least once: {kills}"
