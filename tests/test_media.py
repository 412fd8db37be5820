"""The simulator's media: an MP4 that real decoders open at the requested size and length.

PyAV (FFmpeg's decoder) is the reference here; ffprobe is used as well when it is installed.
Pixel values are compared exactly against what the encoder says a decoder must reconstruct, so
a bitstream that merely "decodes" but is mis-coded would fail.
"""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kling_provider.testing import media
from kling_provider.testing.media import (
    Mp4Info,
    band_colours,
    looks_like_mp4,
    make_jpeg,
    make_mp4,
    make_png,
    mp4_info,
)
from kling_provider.testing.overlay import frame_text, ink, layout, read_text

SIZES = [(1280, 720), (720, 1280), (720, 720), (1920, 1080), (3840, 2160)]


def _planes(frame: av.VideoFrame) -> list[list[bytes]]:
    """Rows of the Y, Cb and Cr planes, without the decoder's line padding."""
    out = []
    for plane in frame.planes:
        data, stride = bytes(plane), plane.line_size
        out.append([data[r * stride : r * stride + plane.width] for r in range(plane.height)])
    return out


def _assert_frame_matches(frame: av.VideoFrame, width: int, height: int, seed: int) -> None:
    assert frame.format.name == "yuv420p"
    assert (frame.width, frame.height) == (width, height)
    bands = band_colours(height, seed)
    y, cb, cr = _planes(frame)
    for row in range(height):
        assert y[row] == bytes([bands[row // 16][0]]) * width, f"luma row {row}"
    for row in range(height // 2):
        assert cb[row] == bytes([bands[row // 8][1]]) * (width // 2), f"Cb row {row}"
        assert cr[row] == bytes([bands[row // 8][2]]) * (width // 2), f"Cr row {row}"


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("duration", [3, 15])
def test_pyav_decodes_every_frame_at_the_requested_size_and_length(width: int, height: int, duration: int) -> None:
    seed = width * 7 + duration
    data = make_mp4(width, height, duration, seed=seed)
    with av.open(io.BytesIO(data)) as container:
        assert container.format.name.startswith("mov,mp4")
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.profile == "Constrained Baseline"
        assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
        assert stream.frames == duration * 24
        assert stream.average_rate == 24
        assert stream.duration is not None
        assert abs(float(stream.duration * stream.time_base) - duration) < 1 / 24
        assert container.duration is not None
        assert abs(container.duration / av.time_base - duration) < 1 / 24

        decoded = 0
        last_pts = -1
        for frame in container.decode(stream):  # a decoding error raises av.error.*
            assert frame.pts is not None and frame.pts > last_pts
            last_pts = frame.pts
            if decoded in (0, duration * 12, duration * 24 - 1):
                _assert_frame_matches(frame, width, height, seed)
            decoded += 1
        assert decoded == duration * 24
        assert abs(float(last_pts * stream.time_base) - (duration - 1 / 24)) < 1e-9

    info = mp4_info(data)
    assert info == Mp4Info(width=width, height=height, duration_s=duration, frame_count=duration * 24, fps=24.0)


@pytest.mark.parametrize(
    ("width", "height", "duration", "fps", "frames"),
    [
        (2, 2, 1, 24, 24),  # a single macroblock, cropped to 2x2
        (18, 34, 2, 30, 60),  # crops on both axes, three band rows
        (1000, 700, 5.5, 24, 132),  # a fractional duration rounds to whole frames
        (640, 360, 3, 60, 180),
        (1280, 720, 0.01, 24, 1),  # never fewer than one frame
    ],
)
def test_other_sizes_rates_and_durations(width: int, height: int, duration: float, fps: int, frames: int) -> None:
    data = make_mp4(width, height, duration, fps=fps, seed=3)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == fps
        decoded = list(container.decode(stream))
    assert len(decoded) == frames
    _assert_frame_matches(decoded[0], width, height, 3)
    _assert_frame_matches(decoded[-1], width, height, 3)
    info = mp4_info(data)
    assert (info.width, info.height, info.frame_count, info.fps) == (width, height, frames, fps)
    assert info.duration_s == pytest.approx(frames / fps)


def test_frame_num_wraps_without_breaking_decoding() -> None:
    """frame_num is 16 bits: past 65536 frames it wraps, and POC type 2 carries on (8.2.1.3)."""
    frames = (1 << 16) + 100
    data = make_mp4(2, 2, frames / 1000, fps=1000)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        count = sum(1 for packet in container.demux(stream) if packet.size)
        assert count == frames
        container.seek(0)
        decoded = 0
        for frame in container.decode(stream):
            decoded += 1
            if decoded == frames:
                _assert_frame_matches(frame, 2, 2, 0)
    assert decoded == frames


def test_level_and_cropping_in_the_sps() -> None:
    def sps_of(data: bytes) -> bytes:
        avcc = data.index(b"avcC") + 4
        length = struct.unpack(">H", data[avcc + 6 : avcc + 8])[0]
        return data[avcc + 8 : avcc + 8 + length]

    # profile_idc 66 with constraint_set0/1: Constrained Baseline; level from table A-1.
    assert sps_of(make_mp4(1280, 720, 1))[1:4] == bytes([66, 0xC0, 31])
    assert sps_of(make_mp4(1920, 1080, 1))[3] == 40
    assert sps_of(make_mp4(3840, 2160, 1))[3] == 51
    assert sps_of(make_mp4(3840, 2160, 1, fps=60))[3] == 52


def test_deterministic_and_seed_dependent() -> None:
    assert make_mp4(1280, 720, 5, seed=1) == make_mp4(1280, 720, 5, seed=1)
    assert make_mp4(1280, 720, 5, seed=1) != make_mp4(1280, 720, 5, seed=2)
    tops = {band_colours(720, seed)[0] for seed in range(50)}
    assert len(tops) > 40
    for seed in range(50):
        bands = band_colours(720, seed)
        assert bands[0] != bands[-1]  # a gradient, not a flat fill
        assert all(16 <= y <= 235 and 16 <= cb <= 240 and 16 <= cr <= 240 for y, cb, cr in bands)


def test_fast_and_small() -> None:
    best = min(_timed(lambda: make_mp4(3840, 2160, 15)) for _ in range(3))
    assert best < 0.1, f"make_mp4 for 15 s of 4K took {best * 1000:.0f} ms"
    size = len(make_mp4(3840, 2160, 15))
    # IDR: about a byte per macroblock (240x135); P frames: a few bytes each.
    assert 240 * 135 < size < 240 * 135 + 360 * 40 + 4096


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1281, 720, 5), "even"),
        ((1280, 0, 5), ">= 2"),
        ((1280, 720, 0), "positive"),
        ((1280, 720, float("nan")), "positive"),
        ((1280, 720, 5, 0), "fps"),
        ((16384, 16384, 1), "level 6.2"),
    ],
)
def test_rejects_impossible_requests(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_mp4(*args)


def test_emulation_prevention() -> None:
    """7.4.1: no 0x000000..0x000003 may appear inside a NAL unit's payload."""
    assert media._nal(0x41, b"\x00\x00\x00\x00\x01\x00\x00\x04") == b"\x41\x00\x00\x03\x00\x00\x03\x01\x00\x00\x04"
    data = make_mp4(3840, 2160, 2)
    mdat = data.index(b"mdat") + 4
    pos = mdat
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        nal = data[pos + 4 : pos + 4 + length]
        for bad in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
            assert bad not in nal
        pos += 4 + length
    assert pos == len(data)


def test_mp4_info_reads_paths_files_and_other_muxers(tmp_path: Path) -> None:
    data = make_mp4(720, 1280, 3)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    expected = Mp4Info(720, 1280, 3.0, 72, 24.0)
    assert mp4_info(path) == mp4_info(str(path)) == expected
    with path.open("rb") as f:
        assert mp4_info(f) == expected
    assert mp4_info(bytearray(data)) == expected

    # An MP4 written by FFmpeg's muxer (edts, different timescale, mdat before moov).
    other = tmp_path / "ffmpeg.mp4"
    with av.open(str(other), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame(320, 240, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([i * 4]) * plane.buffer_size)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    info = mp4_info(other)
    assert (info.width, info.height, info.frame_count) == (320, 240, 50)
    assert info.fps == pytest.approx(25)
    assert info.duration_s == pytest.approx(2.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an mp4 at all",
        make_png(10, 10),
        make_mp4(64, 64, 1)[:200],  # moov cut short
        struct.pack(">I4s", 8, b"ftyp") + struct.pack(">I4s", 4, b"moov"),  # a box smaller than its header
        struct.pack(">I4sI", 12, b"ftyp", 0) + struct.pack(">I4s", 8, b"moov"),  # no track
    ],
)
def test_mp4_info_rejects_what_is_not_a_readable_mp4(data: bytes) -> None:
    with pytest.raises(ValueError):
        mp4_info(data)


_SMALL = make_mp4(64, 64, 1)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(_SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(_SMALL))),
)
def test_mp4_info_on_damaged_files_gives_info_or_value_error(edits: list[tuple[int, int]], cut: int | None) -> None:
    """The download code may run mp4_info on whatever a server sent: only ValueError may escape."""
    data = bytearray(_SMALL)
    for pos, value in edits:
        data[pos] = value
    if cut is not None:
        del data[cut:]
    try:
        info = mp4_info(bytes(data))
    except ValueError:
        return
    assert isinstance(info, Mp4Info)


def test_looks_like_mp4() -> None:
    assert looks_like_mp4(make_mp4(64, 64, 1)[:8])
    assert looks_like_mp4(make_mp4(64, 64, 1))
    assert not looks_like_mp4(b"")
    assert not looks_like_mp4(b"\x00\x00\x00\x20ftp")
    assert not looks_like_mp4(b"<!DOCTYPE html><html>")
    assert not looks_like_mp4(b'{"error": {"code": "not_found"}}')
    assert not looks_like_mp4(make_png(10, 10))
    assert not looks_like_mp4(b"\x00\x00\x00\x00ftypisom")  # a zero-sized ftyp is no box


@pytest.mark.parametrize("rgb", [(64, 128, 192), (0, 0, 0), (255, 255, 255), (255, 0, 0), (12, 250, 3)])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 9), (300, 300), (1280, 720)])
def test_png_and_jpeg_fixtures_decode_with_pillow(rgb: tuple[int, int, int], width: int, height: int) -> None:
    png = Image.open(io.BytesIO(make_png(width, height, rgb)))
    assert png.format == "PNG" and png.size == (width, height) and png.mode == "RGB"
    assert set(png.getdata()) == {rgb}

    jpeg = Image.open(io.BytesIO(make_jpeg(width, height, rgb)))
    assert jpeg.format == "JPEG" and jpeg.size == (width, height)
    colours = set(jpeg.convert("RGB").getdata())
    assert len(colours) == 1
    (got,) = colours
    assert max(abs(a - b) for a, b in zip(got, rgb, strict=True)) <= 2  # YCbCr round trip


def test_large_fixtures_are_quick_and_small() -> None:
    start = time.perf_counter()
    png = make_png(4000, 3000)
    jpeg = make_jpeg(4000, 3000)
    assert time.perf_counter() - start < 2
    assert len(png) < 100_000 and len(jpeg) < 300_000
    assert Image.open(io.BytesIO(png)).size == Image.open(io.BytesIO(jpeg)).size == (4000, 3000)


# -- what the simulator draws: caption and frame number, sound, layout --------------------------

CAPTION = "A paper boat, on a rainy street!"


def _expected_luma(width: int, height: int, seed: int, caption: str, frame: int) -> list[bytes]:
    """Every luma row of frame ``frame``, from the overlay's layout and font alone."""
    bands = band_colours(height, seed, caption)
    rows = [bytearray([bands[r // 16][0]]) * width for r in range(height)]
    found = layout(width, height)
    assert found is not None
    for line, text in ((0, found.caption(caption)), (1, frame_text(frame))):
        top = found.cell(line, 0)[1]
        ink_luma = 16 if bands[top][0] >= 128 else 232
        for i, char in enumerate(text):
            col, row = found.cell(line, i)
            for by, cells in enumerate(ink(char, found.scale)):
                for bx, inked in enumerate(cells):
                    if inked:
                        for y in range(row * 16 + by * 4, row * 16 + by * 4 + 4):
                            rows[y][col * 16 + bx * 4 : col * 16 + bx * 4 + 4] = bytes([ink_luma]) * 4
    return [bytes(r) for r in rows]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_caption_and_frame_numbers_decode_exactly(width: int, height: int) -> None:
    """Every sample of the luma plane, in frames where one digit, two digits or none change."""
    seed = 11
    data = make_mp4(width, height, 3, seed=seed, caption=CAPTION)
    checked = set()
    with av.open(io.BytesIO(data)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number not in (0, 1, 9, 10, 11, 50, 71):
                continue
            y, cb, cr = _planes(frame)
            assert y == _expected_luma(width, height, seed, CAPTION, number), f"frame {number}"
            bands = band_colours(height, seed, CAPTION)
            assert all(cb[r] == bytes([bands[r // 8][1]]) * (width // 2) for r in range(height // 2))  # luma-only text
            assert all(cr[r] == bytes([bands[r // 8][2]]) * (width // 2) for r in range(height // 2))
            checked.add(number)
    assert checked == {0, 1, 9, 10, 11, 50, 71}


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (3840, 2160)])
def test_decoded_frames_and_their_jpegs_read_back(width: int, height: int) -> None:
    data = make_mp4(width, height, 5, seed=3, caption=CAPTION)
    found = layout(width, height)
    assert found is not None
    with av.open(io.BytesIO(data)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number in (0, 60, 119):
                jpeg = io.BytesIO()
                frame.to_image().save(jpeg, format="JPEG", quality=75)
                grey = Image.open(jpeg).convert("L")
                caption, counter = read_text(lambda x, y, g=grey: int(g.getpixel((x, y))), width, height)
                assert (caption, counter) == (found.caption(CAPTION), frame_text(number))
    assert found.caption(CAPTION) in ("A PAPER BOAT, ON A RAINY", "A PAPER BOAT,", "A PAPER BOAT, ON A RAINY STREET!")


def test_caption_shows_whole_first_words() -> None:
    found = layout(720, 1280)
    assert found is not None and found.columns == 14
    assert found.caption("a paper boat, on a rainy street") == "A PAPER BOAT,"
    assert found.caption("  lots   of\tspace ") == "LOTS OF SPACE"
    assert found.caption("supercalifragilistic") == "SUPERCALIFRAGI"
    assert found.caption("über café №5") == "?BER CAF? ?5"
    assert layout(320, 240) is not None and layout(240, 128) is None  # too small for two lines: no text


def test_sound_is_a_silent_aac_track_as_long_as_the_video() -> None:
    data = make_mp4(1280, 720, 5, caption="x", sound=True)
    with av.open(io.BytesIO(data)) as container:
        (audio,) = container.streams.audio
        assert (audio.codec_context.name, audio.codec_context.sample_rate, audio.codec_context.channels) == (
            "aac",
            48000,
            1,
        )
        samples = 0
        for frame in container.decode(audio):
            assert not any(any(bytes(plane)) for plane in frame.planes), "silence: every sample 0.0"
            samples += frame.samples
    assert abs(samples / 48000 - 5) < 1024 / 48000
    assert mp4_info(data) == Mp4Info(1280, 720, 5.0, 120, 24.0)
    silent = make_mp4(1280, 720, 5, caption="x")
    with av.open(io.BytesIO(silent)) as container:
        assert not container.streams.audio


def test_moov_last_and_padded_layout(tmp_path: Path) -> None:
    front = make_mp4(1280, 720, 3, caption="boat", sound=True)
    last = make_mp4(1280, 720, 3, caption="boat", sound=True, moov_last=True)
    assert last.index(b"moov") > last.index(b"mdat") and front.index(b"moov") < front.index(b"mdat")
    head, padding, tail = media.mp4_parts(1280, 720, 3, caption="boat", sound=True, moov_last=True, mdat_padding=2**20)
    path = tmp_path / "padded.mp4"
    with path.open("wb") as f:
        f.write(head)
        f.seek(padding, io.SEEK_CUR)
        f.write(tail)
    assert path.stat().st_size == len(last) + 2**20
    for data in (front, last, path.read_bytes()):
        with av.open(io.BytesIO(data)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == 72
        assert mp4_info(data) == Mp4Info(1280, 720, 3.0, 72, 24.0)
