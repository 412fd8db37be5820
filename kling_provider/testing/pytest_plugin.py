"""pytest fixtures for code that talks to EvoLink, backed by the bundled simulator.

Installing ``airflow-provider-kling`` registers this plugin with pytest (the ``pytest11`` entry
point ``kling``): the fixtures are there in any test session, with nothing to import. With
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, load it with ``-p kling_provider.testing.pytest_plugin``.

Fixtures:

``kling_simulator``
    An in-process :class:`~kling_provider.testing.EvoLinkSimulator` whose clock stands still:
    time moves only by ``kling_simulator.clock.advance(s)`` or ``kling_simulator.fast_forward()``.
    Talk to it through ``kling_simulator.sync_transport()`` / ``.async_transport()``.
``kling_simulator_server``
    A :class:`~kling_provider.testing.SimulatorServer` on a free loopback port, running on real
    time with 1 s generations (``.sim`` is its simulator, ``.base_url`` its address).
``kling_connection``
    Points ``AIRFLOW_CONN_KLING_DEFAULT`` at ``kling_simulator_server`` (real HTTP: works from
    any thread or subprocess) and returns a :class:`KlingTestConnection`. Both connection
    fixtures also set ``[kling] trigger_settle_seconds`` to 0: ``dag.test()`` runs triggers in
    line, so the deferred task waits for the simulator only.
``kling_inprocess_connection``
    Points ``AIRFLOW_CONN_KLING_DEFAULT`` at :data:`IN_PROCESS_BASE_URL` for use with
    ``kling_simulator``'s transports; without them the requests fail to connect (they never
    reach the network).

Both simulator fixtures take options from the marker
``@pytest.mark.kling_simulator(clock_speed=..., **EvoLinkSimulator_kwargs)``, e.g.
``@pytest.mark.kling_simulator(error_shape="integer", rate_limit_rpm=10)``. Where EvoLink's
product page and its OpenAPI document disagree (kling-v3-image-to-video's end frame alone and
``aspect_ratio``), the simulator accepts either form; ``@pytest.mark.kling_simulator(
reading="openapi")`` makes it refuse what only the product page allows, as the live API would
if it followed the OpenAPI document.

Simulator modules are imported inside the fixtures, so registering this plugin costs nothing
in a session that does not use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kling_provider.testing.app import EvoLinkSimulator
    from kling_provider.testing.server import SimulatorServer

__all__ = [
    "IN_PROCESS_BASE_URL",
    "KlingTestConnection",
    "kling_connection",
    "kling_inprocess_connection",
    "kling_simulator",
    "kling_simulator_server",
]

#: Host used for in-process connections: loopback by name, so nothing leaks to the network.
IN_PROCESS_BASE_URL = "http://evolink-sim.localhost"
CONN_ID = "kling_default"
#: ``[kling] trigger_settle_seconds`` (see ``PollPolicy.settle``), 0 under the connection fixtures.
SETTLE_ENV_VAR = "AIRFLOW__KLING__TRIGGER_SETTLE_SECONDS"
_MARKER = "kling_simulator"


@dataclass(frozen=True)
class KlingTestConnection:
    """What a connection fixture set up."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    sim: EvoLinkSimulator
    #: The environment variable set, and its JSON value.
    env_var: str
    uri_json: str = field(repr=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(clock_speed=..., **options): settings for the kling_simulator fixtures "
        "(options are EvoLinkSimulator keyword arguments)",
    )


def _build(request: pytest.FixtureRequest, **defaults: Any) -> EvoLinkSimulator:
    from kling_provider.testing.app import EvoLinkSimulator
    from kling_provider.testing.clock import SimClock

    options = dict(defaults)
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None:
        if marker.args:
            raise TypeError(f"@pytest.mark.{_MARKER} takes keyword arguments only")
        options.update(marker.kwargs)
    speed = float(options.pop("clock_speed"))
    return EvoLinkSimulator(clock=options.pop("clock", None) or SimClock(speed=speed), **options)


@pytest.fixture
def kling_simulator(request: pytest.FixtureRequest) -> EvoLinkSimulator:
    """An in-process simulator on a manual clock (deterministic: nothing happens by itself)."""
    return _build(request, clock_speed=0.0, generation_seconds=3.0)


@pytest.fixture
def kling_simulator_server(request: pytest.FixtureRequest) -> Iterator[SimulatorServer]:
    """A simulator served over loopback HTTP on real time; tasks take about 1 s."""
    from kling_provider.testing.server import SimulatorServer

    sim = _build(request, clock_speed=1.0, generation_seconds=1.0, pending_seconds=0.1)
    with SimulatorServer(sim) as server:
        yield server


def _connect(monkeypatch: pytest.MonkeyPatch, sim: EvoLinkSimulator, base_url: str) -> KlingTestConnection:
    key = sorted(sim.api_keys)[0] if sim.api_keys else "sk-sim-any"
    value = json.dumps({"conn_type": "kling", "host": base_url, "password": key, "extra": {"files_host": base_url}})
    env_var = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    monkeypatch.setenv(env_var, value)
    # dag.test() runs triggers in line: no scheduler to race, so no settle wait before polling.
    monkeypatch.setenv(SETTLE_ENV_VAR, "0")
    return KlingTestConnection(CONN_ID, base_url, key, sim, env_var, value)


@pytest.fixture
def kling_connection(kling_simulator_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> KlingTestConnection:
    """``kling_default`` pointing at the loopback simulator server."""
    return _connect(monkeypatch, kling_simulator_server.sim, kling_simulator_server.base_url)


@pytest.fixture
def kling_inprocess_connection(
    kling_simulator: EvoLinkSimulator, monkeypatch: pytest.MonkeyPatch
) -> KlingTestConnection:
    """``kling_default`` pointing at the in-process simulator (pass its transports to the client)."""
    return _connect(monkeypatch, kling_simulator, IN_PROCESS_BASE_URL)
