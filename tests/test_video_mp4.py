"""The provider's MP4 metadata reader and checks, against files from FFmpeg's own muxer and the simulator.

FFmpeg (through PyAV: libx264 + AAC, its mp4 muxer) writes the kinds of files a vendor sends:
``moov`` at the end (its default), at the front (``faststart``), fragmented. What PyAV reports
about each file is the reference for what :func:`read_video_info` must read, and every damaged
or cut file must give :class:`NotAnMp4Error` (or correct metadata), never anything else.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kling_provider.testing.media import make_mp4
from kling_provider.video import DURATION_TOLERANCE_S, NotAnMp4Error, VideoInfo, check_video, read_video_info
from kling_provider.video.mp4 import Mp4StreamCheck, read_video_info_at


def ffmpeg_mp4(
    path: Path,
    *,
    width: int = 320,
    height: int = 180,
    seconds: float = 2.0,
    fps: int = 25,
    codec: str = "libx264",
    audio: bool = True,
    movflags: str | None = None,
    rotate: int | None = None,
) -> Path:
    """An MP4 written by FFmpeg's muxer: ``codec`` video, AAC audio when ``audio``."""
    options = {"movflags": movflags} if movflags else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotate is not None:
            video.metadata["rotate"] = str(rotate)
        sound = out.add_stream("aac", rate=48000) if audio else None
        frames = round(seconds * fps)
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 9) % 256]) * plane.buffer_size)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            samples = 1024
            for i in range(round(seconds * 48000 / samples)):
                chunk = av.AudioFrame(format="fltp", layout="mono", samples=samples)
                for plane in chunk.planes:
                    plane.update(bytes(plane.buffer_size))
                chunk.sample_rate = 48000
                chunk.pts = i * samples
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def pyav_facts(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "codec": stream.codec_context.name,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "has_audio": bool(container.streams.audio),
            "duration": float(stream.duration * stream.time_base) if stream.duration else None,
        }


def moov_position(data: bytes) -> str:
    pos, kinds = 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        kinds.append(kind)
        pos += size if size else len(data)
    return "front" if kinds.index(b"moov") < kinds.index(b"mdat") else "end"


@pytest.mark.parametrize(
    ("movflags", "where"),
    [(None, "end"), ("faststart", "front")],
    ids=["moov-at-end", "faststart"],
)
@pytest.mark.parametrize("audio", [True, False], ids=["audio", "silent"])
def test_reads_what_ffmpeg_writes(tmp_path: Path, movflags: str | None, where: str, audio: bool) -> None:
    path = ffmpeg_mp4(tmp_path / "clip.mp4", audio=audio, movflags=movflags)
    assert moov_position(path.read_bytes()) == where
    facts = pyav_facts(path)
    with path.open("rb") as f:
        info = read_video_info(f)
    assert (info.width, info.height, info.codec, info.has_audio) == (320, 180, "h264", audio)
    assert (facts["width"], facts["height"], facts["codec"], facts["has_audio"]) == (320, 180, "h264", audio)
    assert info.fps == pytest.approx(facts["fps"]) == pytest.approx(25)
    assert info.duration_s == pytest.approx(facts["duration"], abs=1 / 25) == pytest.approx(2.0, abs=1 / 25)
    assert read_video_info_at(path) == read_video_info_at(path.as_uri()) == info


def test_fragmented_mp4_and_other_codecs(tmp_path: Path) -> None:
    fragmented = ffmpeg_mp4(tmp_path / "frag.mp4", movflags="frag_keyframe+empty_moov+default_base_moof")
    info = read_video_info_at(fragmented)
    assert (info.width, info.height, info.codec, info.has_audio) == (320, 180, "h264", True)
    mpeg4 = read_video_info_at(ffmpeg_mp4(tmp_path / "mpeg4.mp4", codec="mpeg4", audio=False, fps=30))
    assert (mpeg4.codec, mpeg4.fps, mpeg4.has_audio) == ("mpeg4", pytest.approx(30), False)


def test_rotated_video_reports_the_size_it_is_shown_at(tmp_path: Path) -> None:
    """A phone's portrait video is often landscape pictures with a 90 degree matrix in tkhd."""
    data = bytearray(ffmpeg_mp4(tmp_path / "clip.mp4", width=320, height=180, audio=False).read_bytes())
    at = data.index(b"tkhd") + 4 + 40  # payload: version/flags, 5 x 4 bytes, 8 reserved, 8 more: the matrix
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    assert data[at : at + 36] == identity
    data[at : at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path = tmp_path / "phone.mp4"
    path.write_bytes(bytes(data))
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, abs(frame.rotation)) == (320, 180, 90)  # FFmpeg sees it so too
    info = read_video_info_at(path)
    assert (info.width, info.height) == (180, 320)


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (720, 720), (3840, 2160)])
def test_reads_the_simulator_videos(width: int, height: int) -> None:
    info = read_video_info(io.BytesIO(make_mp4(width, height, 5.0)))
    assert info == VideoInfo(duration_s=5.0, width=width, height=height, fps=24.0, codec="h264", has_audio=False)


def test_reads_by_seeking_not_the_whole_file(tmp_path: Path) -> None:
    """Bytes read from a file whose mdat holds 64 MiB more (moov after it): the metadata only."""
    data = ffmpeg_mp4(tmp_path / "clip.mp4", audio=True).read_bytes()
    assert moov_position(data) == "end"
    pad = 64 * 2**20
    pos = 0
    while data[pos + 4 : pos + 8] != b"mdat":
        pos += struct.unpack(">I", data[pos : pos + 4])[0]
    size = struct.unpack(">I", data[pos : pos + 4])[0]
    # Unreferenced bytes at the end of mdat: every chunk offset stays right, moov moves back.
    grown = data[:pos] + struct.pack(">I", size + pad) + data[pos + 4 : pos + size] + bytes(pad) + data[pos + size :]

    class Counting(io.BytesIO):
        total = 0

        def read(self, n: int | None = -1) -> bytes:
            chunk = super().read(n)
            Counting.total += len(chunk)
            return chunk

    info = read_video_info(Counting(grown))
    assert (info.width, info.height, info.has_audio) == (320, 180, True)
    assert info == read_video_info(io.BytesIO(data))
    assert Counting.total < 16 * 1024, f"read {Counting.total} bytes of a {len(grown)}-byte file"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no 'ftyp'"),
        (b"<html>not found</html>", "no 'ftyp'|truncated"),
        (struct.pack(">I4s", 8, b"ftyp") + struct.pack(">I4s", 8, b"mdat"), "no 'moov'"),
        (struct.pack(">I4s", 8, b"ftyp") + struct.pack(">I4s", 8, b"moov"), "no 'mdat'"),
        (struct.pack(">I4s", 8, b"ftyp") + struct.pack(">I4s", 4, b"moov"), "size 4"),
        (
            struct.pack(">I4s", 8, b"ftyp") + struct.pack(">I4s", 8, b"moov") + struct.pack(">I4s", 8, b"mdat"),
            "no video",
        ),
    ],
)
def test_what_is_not_a_readable_mp4(data: bytes, message: str) -> None:
    with pytest.raises(NotAnMp4Error, match=message):
        read_video_info(io.BytesIO(data))


_SMALL = make_mp4(64, 64, 1.0)


@pytest.mark.parametrize("cut", [1, 8, 31, 32, 33, 200, len(_SMALL) // 2, len(_SMALL) - 1])
def test_every_truncation_is_caught_by_both_readers(cut: int) -> None:
    data = _SMALL[:cut]
    with pytest.raises(NotAnMp4Error):
        read_video_info(io.BytesIO(data))
    check = Mp4StreamCheck()
    for i in range(0, len(data), 7):  # in awkward chunks: headers split across them
        check.feed(data[i : i + 7])
    assert check.problem() is not None


def test_stream_check_accepts_whole_files_in_any_chunking() -> None:
    for size in (1, 3, 8, 16, 1000, len(_SMALL)):
        check = Mp4StreamCheck()
        for i in range(0, len(_SMALL), size):
            check.feed(_SMALL[i : i + size])
        assert check.problem() is None, size


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(_SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(_SMALL))),
)
def test_damaged_files_give_metadata_or_not_an_mp4(edits: list[tuple[int, int]], cut: int | None) -> None:
    """Whatever a server sent: only NotAnMp4Error may escape (the download turns it into a retry)."""
    data = bytearray(_SMALL)
    for pos, value in edits:
        data[pos] = value
    if cut is not None:
        del data[cut:]
    try:
        info = read_video_info(io.BytesIO(bytes(data)))
    except NotAnMp4Error:
        return
    assert isinstance(info, VideoInfo)


# -- the rules -------------------------------------------------------------------------------

GOOD = VideoInfo(duration_s=5.04, width=1920, height=1080, fps=24.0, codec="h264", has_audio=True)


def test_a_matching_video_has_no_mismatches() -> None:
    assert check_video(GOOD, duration=5, quality="1080p", sound=True, aspect_ratio="16:9") == []
    assert check_video(GOOD, duration=5, quality="1080p", sound=True) == []  # no aspect ratio asked


@pytest.mark.parametrize(
    ("changes", "request_", "field", "text"),
    [
        ({"duration_s": 5 + DURATION_TOLERANCE_S + 0.01}, {}, "duration", "lasts 5.51 s, asked for duration=5"),
        ({"duration_s": 3.0}, {}, "duration", "tolerance ±0.5 s"),
        ({"width": 1280, "height": 720}, {}, "quality", "short side 720 px), asked for quality='1080p'"),
        ({"width": 1080, "height": 1920}, {}, "aspect_ratio", "(portrait), asked for aspect_ratio='16:9'"),
        ({"width": 1080, "height": 1080}, {}, "aspect_ratio", "(square)"),
        ({"has_audio": False}, {}, "sound", "has no audio track, asked for sound=True"),
        ({}, {"sound": False}, "sound", "has an audio track, asked for sound=False"),
    ],
)
def test_each_rule(changes: dict[str, Any], request_: dict[str, Any], field: str, text: str) -> None:
    info = VideoInfo(**{**GOOD.as_dict(), **changes})
    asked = {"duration": 5, "quality": "1080p", "sound": True, "aspect_ratio": "16:9", **request_}
    (mismatch,) = check_video(info, **asked)
    assert mismatch.field == field
    assert text in mismatch.message


def test_within_tolerance_both_ways() -> None:
    for duration_s in (5 - DURATION_TOLERANCE_S, 5 + DURATION_TOLERANCE_S):
        info = VideoInfo(**{**GOOD.as_dict(), "duration_s": duration_s})
        assert check_video(info, duration=5, quality="1080p", sound=True) == []


def test_importing_the_provider_does_not_import_pyav_or_pillow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kling_provider, kling_provider.operators.kling, kling_provider.video, "
        "kling_provider.video.poster, kling_provider.video.sheet, kling_provider.storage; "
        "print(sorted(m for m in ('av', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
