"""The chaos loop: SIGKILL a random Celery worker, triggerer or the scheduler now and then, and
start it again after a pause. One component is down at a time.

Driven by the soak's main loop (:meth:`Chaos.tick` every second or so), not a thread of its own,
so kills, restarts and the soak's own checks never race on the cluster's process table.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from e2e.cluster import AirflowCluster, component_kind

__all__ = ["KILLABLE", "Chaos", "Kill"]

#: Kinds the loop picks from (then one instance of the kind at random).
KILLABLE = ("celery-worker", "triggerer", "scheduler")


@dataclass
class Kill:
    component: str
    killed_at: float
    restarted_at: float | None = None

    @property
    def kind(self) -> str:
        return component_kind(self.component)


@dataclass
class Chaos:
    """Kills every ``every`` (min, max) seconds, restarts after ``pause`` (min, max) seconds.

    The first kills go through every kind in a shuffled order, so even a short soak kills a
    worker, a triggerer and the scheduler at least once; after that each kind is drawn at random.
    """

    cluster: AirflowCluster
    every: tuple[float, float] = (30.0, 90.0)
    pause: tuple[float, float] = (5.0, 15.0)
    seed: int = 13
    kills: list[Kill] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._order = list(KILLABLE)
        self._rng.shuffle(self._order)
        self._next_kill = time.monotonic() + self._rng.uniform(*self.every)
        self._down: Kill | None = None
        self._restart_at = 0.0
        self.stopped = False

    def instances(self, kind: str) -> list[str]:
        return sorted(name for name in self.cluster.processes if component_kind(name) == kind)

    def tick(self) -> None:
        """Restart the component that is down if its pause is over; kill the next one if due."""
        now = time.monotonic()
        if self._down is not None:
            if now >= self._restart_at:
                self._restart()
            return
        if self.stopped or now < self._next_kill:
            return
        kind = self._order.pop(0) if self._order else self._rng.choice(KILLABLE)
        name = self._rng.choice(self.instances(kind))
        self.cluster.kill_component(name)
        self._down = Kill(name, time.time())
        self.kills.append(self._down)
        self._restart_at = time.monotonic() + self._rng.uniform(*self.pause)

    def _restart(self) -> None:
        assert self._down is not None
        self.cluster.start_component(self._down.component)
        self._down.restarted_at = time.time()
        self._down = None
        self._next_kill = time.monotonic() + self._rng.uniform(*self.every)

    def stop(self) -> None:
        """No more kills; start at once whatever is down."""
        self.stopped = True
        if self._down is not None:
            self._restart()

    def by_kind(self) -> dict[str, int]:
        return {kind: sum(1 for k in self.kills if k.kind == kind) for kind in KILLABLE}
