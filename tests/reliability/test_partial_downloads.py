"""A download killed mid-write (SIGKILL: no ``finally`` runs) leaves its hidden part file behind;
the next successful save of the same output removes it, and leaves a writer still at work alone.

The slow end-to-end proof (a real task process killed with half the video on disk) is in
test_process_faults.py; this is the same situation, fast.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kling_provider.storage import VerifiedWriter
from kling_provider.testing.media import make_mp4

VIDEO = make_mp4(320, 320, 1.0)


def _leftover(output: Path, suffix: str, age: float, data: bytes = b"\x00\x00\x00\x18ftypmp42") -> Path:
    part = output.with_name(f".{output.name}.part-{suffix}")
    part.write_bytes(data)
    then = time.time() - age
    os.utime(part, (then, then))
    return part


def test_a_killed_attempts_part_file_is_removed_once_the_video_is_saved(tmp_path: Path) -> None:
    output = tmp_path / "video.mp4"
    killed = _leftover(output, "killedbefore", age=30)
    writer = VerifiedWriter(output, len(VIDEO))
    writer.write_all([VIDEO[:1000], VIDEO[1000:]])
    writer.commit()
    assert output.read_bytes() == VIDEO
    assert not killed.exists(), "the part file of the killed attempt is still there"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]


def test_a_part_file_still_being_written_is_left_alone(tmp_path: Path) -> None:
    output = tmp_path / "video.mp4"
    writer = VerifiedWriter(output, len(VIDEO))
    busy = _leftover(output, "stillwriting", age=-5)  # touched after this download began
    writer.write_all([VIDEO])
    writer.commit()
    assert busy.exists(), "a concurrent writer's part file was removed"


def test_other_files_beside_the_output_are_never_touched(tmp_path: Path) -> None:
    output = tmp_path / "video.mp4"
    others = [tmp_path / name for name in ("other.mp4", ".other.mp4.part-abc", "video.mp4.part-abc", ".video.mp4x")]
    for path in others:
        path.write_bytes(b"keep")
        os.utime(path, (1, 1))
    writer = VerifiedWriter(output, len(VIDEO))
    writer.write_all([VIDEO])
    writer.commit()
    assert all(p.exists() for p in others)
