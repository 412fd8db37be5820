"""The handle tests steer the simulator with: the request log, the tasks, and their outcomes.

Nothing here is reachable over HTTP: a test holds the simulator object (in-process, or the one a
:class:`~.server.SimulatorServer` serves) and asks it what it saw or tells it what happens next.
The clock (``sim.clock``) and the faults (``sim.faults``) are the other two levers.
"""

from __future__ import annotations

from kling_provider.testing.clock import SimClock
from kling_provider.testing.errors import task_error_message
from kling_provider.testing.state import Phase, RequestRecord, SimState, SimTask, StoredFile, TaskView
from kling_provider.testing.videos import VideoCache, prompt_of

__all__ = ["SimulatorControl"]


class SimulatorControl:
    """What :class:`~.app.EvoLinkSimulator` offers a test besides serving requests."""

    state: SimState
    clock: SimClock
    _videos: VideoCache

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far, oldest first (a copy)."""
        return self.state.records()

    def count(
        self,
        *,
        method: str | None = None,
        phase: Phase | None = None,
        path: str | None = None,
        status: int | None = None,
        task_id: str | None = None,
    ) -> int:
        """How many logged requests match all the given filters."""
        return self.state.count(
            lambda r: (
                (method is None or r.method == method.upper())
                and (phase is None or r.phase == phase)
                and (path is None or r.path == path)
                and (status is None or r.status == status)
                and (task_id is None or r.task_id == task_id)
            )
        )

    @property
    def tasks(self) -> list[SimTask]:
        """Every task created, oldest first."""
        return list(self.state)

    def task(self, task_id: str) -> SimTask:
        found = self.state.task(task_id)
        if found is None:
            raise KeyError(task_id)
        return found

    def view(self, task_id: str) -> TaskView:
        """What a query of ``task_id`` would see now (status, progress, error)."""
        return self.task(task_id).view(self.clock.now())

    @property
    def credits(self) -> float | None:
        """Remaining balance (None = unlimited)."""
        return self.state.credits

    @property
    def credits_spent(self) -> float:
        return self.state.credits_spent

    @property
    def files(self) -> list[StoredFile]:
        with self.state.lock:
            return list(self.state.files.values())

    def cancel(self, task_id: str, *, as_failed: bool | None = None) -> bool:
        """Cancel a running task now; False if it had already ended."""
        task = self.task(task_id)
        with self.state.lock:
            now = self.clock.now()
            if task.view(now).terminal:
                return False
            task.cancel_at = now
            if as_failed is not None:
                task.cancel_as = "failed" if as_failed else "cancelled"
            return True

    def fail(
        self,
        task_id: str,
        code: str = "generation_failed_no_content",
        message: str | None = None,
        *,
        at_progress: int | None = None,
    ) -> bool:
        """Make a running task fail now (or when it reaches ``at_progress``); False if it had ended."""
        task = self.task(task_id)
        with self.state.lock:
            now = self.clock.now()
            if task.view(now).terminal:
                return False
            task.fail_code = code
            task.fail_message = message or task_error_message(code)
            task.fail_at = now if at_progress is None else max(now, task.time_at_progress(at_progress))
            return True

    def fast_forward(self, task_id: str | None = None) -> float:
        """Advance the clock until ``task_id`` (default: every task) has ended; return the time."""
        tasks = [self.task(task_id)] if task_id else self.tasks
        target = self.clock.now()
        for task in tasks:
            ends = [task.ends_at]
            if task.fail_code is not None and task.fail_at is not None:
                ends.append(task.fail_at)
            if task.cancel_at is not None:
                ends.append(task.cancel_at)
            target = max(target, min(ends))
        return self.clock.advance_to(target)

    def video(self, task_id: str) -> bytes:
        """The MP4 a video task's result link serves (kling_provider.testing.videos: the prompt's
        first words and each frame's number drawn in, sound when asked, or the planned mismatch)."""
        task = self.task(task_id)
        return self._videos.get(
            width=task.width,
            height=task.height,
            duration=task.spec.duration,
            sound=task.spec.sound,
            prompt=prompt_of(task.body),
            bad_video=task.bad_video,
        )
