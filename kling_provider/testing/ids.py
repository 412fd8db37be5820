"""The random parts of task, element and file ids, from one seeded sequence.

One sequence shared by all three kinds, so the same seed and the same calls in the same order
give the same ids: a failing run can be replayed id for id.
"""

from __future__ import annotations

import random
import string

__all__ = ["IdSource"]

_ALPHABET = string.ascii_lowercase + string.digits


class IdSource:
    """``token(8)`` -> e.g. ``"k3v9q0ab"``: lowercase letters and digits, seeded."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def token(self, length: int) -> str:
        return "".join(self._rng.choices(_ALPHABET, k=length))
