"""How long to wait before asking about a task again.

Every status query counts against a per-account rate limit, so polling follows what the server
says instead of a fixed short interval: ``task_info.estimated_time`` gives the expected length
at creation, and ``progress`` (0-100) lets the client predict completion from the rate seen so
far. The client sleeps until just after the predicted end, re-checks once half-way through long
waits (estimates drift), and polls at a short tail interval once the task is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kling_provider.models.responses import Task


@dataclass(frozen=True)
class PollPolicy:
    """Bounds for server-guided polling; all in seconds."""

    min_interval: float = 2.0
    max_interval: float = 120.0
    #: Used when the server gave no ``estimated_time``.
    default_estimate: float = 180.0
    #: Interval once a task is past its predicted end, as a fraction of the estimate (bounded).
    tail_fraction: float = 0.04
    max_tail_interval: float = 8.0
    #: Waits longer than this are split so a drifting estimate is corrected once.
    recheck_after: float = 45.0
    #: Sleep this much past the predicted end, so the first look usually finds it done.
    margin: float = 1.0
    #: Below this progress (percent), readings are too coarse to extrapolate from.
    min_progress: float = 10.0
    #: A trigger's first query waits at least this long. Airflow 3 fails a deferred task whose
    #: event is handled before the scheduler has seen the deferring process exit (the "state
    #: changed externally" race, apache/airflow#72716 and #71580, open in 3.3). Generations take
    #: minutes, so this only delays re-attaching to a task that is already finished.
    settle: float = 5.0

    def predicted_remaining(self, task: Task, elapsed: float, estimate: float | None) -> float:
        """Seconds until completion, from progress when there is some, else from the estimate."""
        return self._remaining(task.progress, elapsed, estimate or task.estimated_time or self.default_estimate)

    def next_delay(self, task: Task, elapsed: float, estimate: float | None = None) -> float:
        """Delay before the next query of ``task``, ``elapsed`` seconds after it was created."""
        return self._delay(task.progress, elapsed, estimate or task.estimated_time or self.default_estimate)

    def first_delay(self, elapsed: float, estimate: float) -> float:
        """Delay before the first query of a task whose creation answer (progress 0) was just read.

        The submit answer already said what a query right away would say, so the first query
        waits as :meth:`next_delay` would after it. 0 once the task is past its estimate (a wait
        picked up late, e.g. by another triggerer, looks at once).
        """
        if elapsed >= estimate:
            return 0.0
        return self._delay(0.0, elapsed, estimate)

    def _remaining(self, progress: float, elapsed: float, total: float) -> float:
        if self.min_progress <= progress < 100 and elapsed > 0:
            # Early progress readings are coarse: never predict more than twice the estimate.
            return min(elapsed * (100 - progress) / progress, 2 * total - elapsed)
        return total - elapsed

    def _delay(self, progress: float, elapsed: float, total: float) -> float:
        tail = min(self.max_tail_interval, max(self.min_interval, total * self.tail_fraction))
        remaining = self._remaining(progress, elapsed, total)
        if remaining <= 0:
            return tail
        delay = remaining + self.margin
        if elapsed >= total:
            # Overdue against the estimate: a progress stuck at 99 % must not mean a poll
            # every couple of seconds.
            delay = max(delay, tail)
        if delay > self.recheck_after:
            delay = max(self.recheck_after, remaining * 0.6)
        return max(self.min_interval, min(self.max_interval, delay))
