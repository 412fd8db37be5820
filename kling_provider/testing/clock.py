"""The simulator's notion of time, so tests can jump over minutes of "generation" instantly.

Every time-dependent answer (task status, progress, link and file expiry, rate-limit windows)
reads :meth:`SimClock.now`, never the system clock directly.
"""

from __future__ import annotations

import threading
import time

__all__ = ["SimClock"]


class SimClock:
    """Simulated unix time: real time scaled by ``speed``, plus what :meth:`advance` added.

    ``speed=1`` follows the wall clock, ``speed=10`` runs ten times faster, ``speed=0`` stands
    still so that time moves only through :meth:`advance` (deterministic tests). ``start`` is
    the simulated unix time at construction (default: the real time), so ``created`` fields and
    task ids look like the vendor's.
    """

    def __init__(self, speed: float = 1.0, *, start: float | None = None) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (got {speed})")
        self._speed = float(speed)
        self._start = time.time() if start is None else float(start)
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def manual(self) -> bool:
        """True when time moves only through :meth:`advance`."""
        return self._speed == 0

    def now(self) -> float:
        """Current simulated unix time in seconds."""
        scaled = (time.monotonic() - self._mono0) * self._speed if self._speed else 0.0
        return self._start + scaled + self._offset

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        with self._lock:
            self._offset += seconds
        return self.now()

    def advance_to(self, when: float) -> float:
        """Move simulated time forward to ``when`` if it is still in the future."""
        with self._lock:
            gap = when - self.now()
            if gap > 0:
                self._offset += gap
        return self.now()

    def __repr__(self) -> str:
        return f"SimClock(speed={self._speed:g}, now={self.now():.3f})"
