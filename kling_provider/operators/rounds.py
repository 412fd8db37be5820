"""Review rounds: a rejected batch is generated once more, with the reviewer's note in every prompt.

Decision: **a round is a DAG run**. A rejection does not loop inside the run (Airflow DAGs have
no cycles, and unrolling N rounds into one graph makes every run show N copies of every task);
instead the rejecting run triggers a new run of the same DAG whose conf is its own params plus
``round + 1`` and the note appended to ``notes``. Each round then has its own run, its own
review, its own saved variants (nothing of an earlier round is overwritten), and the notes that
shaped its prompts are visible in its conf. ``max_rounds`` bounds the chain: the last round's
rejection starts nothing (see :func:`next_round_conf`).

The params a reviewing DAG declares (defaults shown)::

    params={"round": 1, "max_rounds": 3, "notes": [], ...the brief...}
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kling_provider.exceptions import KlingValidationError
from kling_provider.models.common import MAX_PROMPT_CHARS

__all__ = ["NOTES_LEAD", "Round", "current_round", "fold_notes", "next_round_conf"]

#: How the notes are introduced in a prompt (the model reads them as part of the description).
NOTES_LEAD = "Reviewer notes:"
#: Longest single note kept; a note is guidance, not a second prompt.
MAX_NOTE_CHARS = 500


@dataclass(frozen=True)
class Round:
    """Where a run stands: its round number (from 1), the bound, and the notes so far (oldest first)."""

    number: int
    max_rounds: int
    notes: tuple[str, ...]

    @property
    def is_last(self) -> bool:
        return self.number >= self.max_rounds

    def describe(self) -> str:
        return f"round {self.number} of {self.max_rounds}"


def current_round(params: Mapping[str, Any]) -> Round:
    """The round a run is in, read from its params (``round``, ``max_rounds``, ``notes``), checked."""
    number = _whole(params, "round", 1)
    max_rounds = _whole(params, "max_rounds", 1)
    if number > max_rounds:
        raise KlingValidationError(
            f"round: {number} is past max_rounds={max_rounds}; a run must not start a round beyond the bound",
            param="round",
        )
    notes = params.get("notes") or []
    if isinstance(notes, str) or not isinstance(notes, Sequence) or not all(isinstance(n, str) for n in notes):
        raise KlingValidationError(f"notes: must be a list of strings (got {notes!r})", param="notes")
    return Round(number, max_rounds, tuple(n.strip() for n in notes if n.strip()))


def fold_notes(prompt: str, notes: Sequence[str]) -> str:
    """``prompt`` followed by the reviewers' notes (oldest first), or unchanged when there are none.

    Raises :class:`KlingValidationError` (``param="notes"``) when the result would be longer than
    a prompt may be, so a long note fails the next round before anything is paid for.
    """
    kept = [" ".join(note.split()) for note in notes if note and note.strip()]
    if not kept:
        return prompt
    folded = f"{prompt.rstrip()}\n{NOTES_LEAD} " + " ".join(_sentence(note) for note in kept)
    if len(folded) > MAX_PROMPT_CHARS:
        raise KlingValidationError(
            f"notes: the prompt with the reviewers' notes is {len(folded)} characters, more than the "
            f"{MAX_PROMPT_CHARS} a prompt may have; shorten the notes or the prompt",
            param="notes",
        )
    return folded


def next_round_conf(params: Mapping[str, Any], note: str | None) -> dict[str, Any] | None:
    """The conf of the run that tries again after a rejection, or None when the rounds are used up.

    The new conf is ``params`` with ``round`` one higher and ``note`` (when not blank) appended to
    ``notes``: the same brief, one more piece of guidance.
    """
    now = current_round(params)
    if now.is_last:
        return None
    note = " ".join((note or "").split())
    if len(note) > MAX_NOTE_CHARS:
        raise KlingValidationError(
            f"note: {len(note)} characters, at most {MAX_NOTE_CHARS}; a note says what to change", param="note"
        )
    conf = dict(params)
    conf["round"] = now.number + 1
    conf["max_rounds"] = now.max_rounds
    conf["notes"] = [*now.notes, note] if note else list(now.notes)
    return conf


def _sentence(note: str) -> str:
    return note if note[-1] in ".!?" else note + "."


def _whole(params: Mapping[str, Any], name: str, least: int) -> int:
    value = params.get(name, least)
    if isinstance(value, str) and value.strip().isdigit():  # conf from the CLI or a form arrives as text
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise KlingValidationError(f"{name}: must be a whole number of at least {least} (got {value!r})", param=name)
    return int(value)
