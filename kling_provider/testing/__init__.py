"""A local simulator of EvoLink's video and file APIs, for tests and demos without the network.

Start here::

    from kling_provider.testing import EvoLinkSimulator, Fault, SimClock, SimulatorServer

    sim = EvoLinkSimulator(clock=SimClock(speed=0))          # time moves only by advance()
    client = httpx.Client(transport=sim.sync_transport(), base_url="http://evolink-sim.localhost")
    sim.faults.add(Fault(phase="poll", kind="status", status=503, times=2))
    ...
    with SimulatorServer(sim) as server:                      # the same app over loopback HTTP
        httpx.get(server.base_url + "/api/v1/files/quota", headers=...)

``python -m kling_provider.testing`` serves it from the command line; the pytest fixtures live in
:mod:`kling_provider.testing.pytest_plugin`. Names are imported lazily, so importing this
package (e.g. from the pytest plugin) does not load Starlette or uvicorn until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kling_provider.testing.app import DEFAULT_API_KEY, EvoLinkSimulator
    from kling_provider.testing.clock import SimClock
    from kling_provider.testing.faults import Fault, FaultSet, SimulatedConnectionDrop, SimulatedReadTimeout
    from kling_provider.testing.server import SimulatorServer
    from kling_provider.testing.state import RequestRecord, SimTask, StoredFile, TaskView
    from kling_provider.testing.transports import SimAsyncTransport, SimSyncTransport
    from kling_provider.testing.validation import GenerationSpec, RequestRejected, output_size, price_credits

_EXPORTS = {
    "DEFAULT_API_KEY": "app",
    "EvoLinkSimulator": "app",
    "SimClock": "clock",
    "Fault": "faults",
    "FaultSet": "faults",
    "SimulatedConnectionDrop": "faults",
    "SimulatedReadTimeout": "faults",
    "SimulatorServer": "server",
    "RequestRecord": "state",
    "SimTask": "state",
    "StoredFile": "state",
    "TaskView": "state",
    "SimAsyncTransport": "transports",
    "SimSyncTransport": "transports",
    "GenerationSpec": "validation",
    "RequestRejected": "validation",
    "output_size": "validation",
    "price_credits": "validation",
}

__all__ = [
    "DEFAULT_API_KEY",
    "EvoLinkSimulator",
    "Fault",
    "FaultSet",
    "GenerationSpec",
    "RequestRecord",
    "RequestRejected",
    "SimAsyncTransport",
    "SimClock",
    "SimSyncTransport",
    "SimTask",
    "SimulatedConnectionDrop",
    "SimulatedReadTimeout",
    "SimulatorServer",
    "StoredFile",
    "TaskView",
    "output_size",
    "price_credits",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
