"""VerifiedWriter's clean-up of part files that earlier attempts left beside a local video.

A killed process never reaches ``discard()``: its part file stays. The next successful save
removes it, but never the part of a writer still at work: that one holds a lock on its file,
which the kernel drops only when the writer closes it or dies.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kling_provider.storage import VerifiedWriter
from kling_provider.testing.media import make_mp4

VIDEO = make_mp4(64, 64, 0.5)


def save(destination: Path) -> None:
    writer = VerifiedWriter(destination, len(VIDEO))
    writer.write_all([VIDEO])
    writer.commit()


def part_beside(destination: Path, name: str, age: float) -> Path:
    part = destination.with_name(f".{destination.name}.part-{name}")
    part.write_bytes(VIDEO[: len(VIDEO) // 2])
    past = time.time() - age
    os.utime(part, (past, past))
    return part


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    return tmp_path / "videos" / "teaser.mp4"


@pytest.fixture
def live_lock() -> Iterator[list[int]]:
    """Locks taken as a live writer takes them (another open file description, as in another process)."""
    held: list[int] = []
    yield held
    for fd in held:
        os.close(fd)


def test_a_dead_writers_part_is_removed_even_just_after_it_died(destination: Path) -> None:
    destination.parent.mkdir(parents=True)
    leftover = part_beside(destination, "killed000001", age=0.05)  # died a moment ago, lock gone
    save(destination)
    assert destination.read_bytes() == VIDEO
    assert not leftover.exists()


def test_a_live_writers_part_is_left_alone_however_old(destination: Path, live_lock: list[int]) -> None:
    destination.parent.mkdir(parents=True)
    busy = part_beside(destination, "stalled00001", age=3600)  # stalled on a slow server for an hour
    fd = os.open(busy, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    live_lock.append(fd)
    save(destination)
    assert busy.exists(), "a writer at work keeps its part file"


def test_the_writer_holds_its_part_until_commit_and_lets_go_after(destination: Path) -> None:
    writer = VerifiedWriter(destination, len(VIDEO))
    writer.write_all([VIDEO])
    probe = os.open(writer.part, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)
    writer.commit()
    probe = os.open(destination, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: nothing is left locked
    finally:
        os.close(probe)


def test_a_discarded_writer_leaves_nothing(destination: Path) -> None:
    writer = VerifiedWriter(destination, len(VIDEO) + 1)
    writer.write_all([VIDEO])
    with pytest.raises(Exception, match="incomplete"):
        writer.commit()
    assert sorted(destination.parent.iterdir()) == []
