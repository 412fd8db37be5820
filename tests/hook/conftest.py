"""Fixtures shared by the KlingHook tests: one loopback server per module, each test its own simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import FLAVOURS, MODES, Caller, Loopback, SimEnv, SleepLog, open_env


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    with Loopback.serve() as server:
        yield server


@pytest.fixture(params=MODES)
def env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, loopback: Loopback) -> Iterator[SimEnv]:
    """The simulator in-process or over loopback HTTP, with the connection pointing at it."""
    with open_env(request.param, monkeypatch, loopback) as sim_env:
        yield sim_env


@pytest.fixture(params=FLAVOURS)
def caller(request: pytest.FixtureRequest) -> Iterator[Caller]:
    """The same calls made through the sync and the async API."""
    with Caller.open(request.param) as flavoured:
        yield flavoured


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepLog:
    """Record the hook's sleeps instead of waiting (its clock moves on by them)."""
    return SleepLog().install(monkeypatch)
