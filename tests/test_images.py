"""Image checks before upload: real files from Pillow, files that lie, and hostile bytes."""

from __future__ import annotations

import io
import pickle
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kling_provider.exceptions import KlingValidationError
from kling_provider.images import MAX_IMAGE_BYTES, ImageInfo, inspect_image, validate_image
from kling_provider.testing.media import make_jpeg, make_mp4, make_png


def _pillow(mode: str, size: tuple[int, int], fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt, **kwargs)
    return out.getvalue()


def _validate(data: bytes, field: str = "image_start", size: int | None = None) -> ImageInfo:
    return validate_image(io.BytesIO(data), size, field)


def _error(data: bytes, field: str = "image_start", size: int | None = None) -> str:
    with pytest.raises(KlingValidationError) as info:
        _validate(data, field, size)
    assert info.value.param == field
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"{field}: ")
    return message


def _png_header(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG signature, IHDR and a tiny IDAT: as far as the header goes, a valid PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int, sof: int = 0xC0, before_sof: bytes = b"") -> bytes:
    """SOI, optional segments, a frame header with marker ``sof``, then EOI: a JPEG's header."""
    frame = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + before_sof + struct.pack(">BBH", 0xFF, sof, 2 + len(frame)) + frame + b"\xff\xd9"


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


class _Unseekable(io.RawIOBase):
    """A socket-like stream: no seeking, and reads that return at most ``step`` bytes."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data, self._pos, self._step = data, 0, step
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        self.read_bytes += n
        return n


class _Counting(io.BytesIO):
    """A seekable stream that counts the bytes actually read."""

    read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.read_bytes += len(data)
        return data


# --- real files that must be accepted ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (_pillow("RGB", (1280, 720), "JPEG"), "jpeg"),
        (_pillow("RGB", (1280, 720), "JPEG", progressive=True), "jpeg"),  # SOF2
        (_pillow("RGB", (1280, 720), "JPEG", quality=95, subsampling=0), "jpeg"),
        (_pillow("CMYK", (1280, 720), "JPEG"), "jpeg"),
        (_pillow("L", (1280, 720), "JPEG"), "jpeg"),
        (_pillow("RGB", (1280, 720), "JPEG", exif=b"Exif\0\0" + bytes(65000)), "jpeg"),
        (_pillow("RGB", (1280, 720), "JPEG", icc_profile=bytes(300_000)), "jpeg"),  # APP2 x5 before SOF
        (_pillow("RGB", (1280, 720), "PNG"), "png"),
        (_pillow("RGBA", (1280, 720), "PNG"), "png"),
        (_pillow("I;16", (1280, 720), "PNG"), "png"),  # 16-bit greyscale
        (_pillow("P", (1280, 720), "PNG"), "png"),  # palette
        (_pillow("1", (1280, 720), "PNG"), "png"),  # 1-bit
        (_pillow("LA", (720, 1280), "PNG"), "png"),
        (make_png(720, 1280), "png"),
        (make_jpeg(720, 1280), "jpeg"),
    ],
)
def test_accepts_real_jpeg_and_png_files(data: bytes, fmt: str) -> None:
    info = _validate(data)
    assert info.format == fmt
    assert info.mime_type == f"image/{fmt}"
    assert (info.width, info.height) == Image.open(io.BytesIO(data)).size


def test_format_comes_from_content_not_file_name(tmp_path: Path) -> None:
    liar = tmp_path / "photo.jpg"
    liar.write_bytes(_pillow("RGB", (800, 600), "PNG"))
    with liar.open("rb") as f:
        assert validate_image(f, liar.stat().st_size, "image_start").format == "png"

    gif = tmp_path / "frame.png"
    gif.write_bytes(_pillow("RGB", (800, 600), "GIF"))
    with gif.open("rb") as f, pytest.raises(KlingValidationError, match=r"looks like GIF"):
        validate_image(f, gif.stat().st_size, "image_end")


def test_big_segments_before_the_frame_header_are_skipped_not_read() -> None:
    comments = b"".join(_segment(0xFE, bytes([i]) * 65533) for i in range(40))  # 2.6 MB of COM
    data = _jpeg_header(1024, 768, before_sof=comments)
    stream = _Counting(data)
    assert inspect_image(stream) == ImageInfo("jpeg", 1024, 768, "image/jpeg")
    assert stream.read_bytes < 1024  # seeks over the segments

    unseekable = _Unseekable(data, step=4096)
    assert inspect_image(unseekable) == ImageInfo("jpeg", 1024, 768, "image/jpeg")  # reads through them
    assert unseekable.read_bytes < len(data)


def test_non_seekable_streams_with_short_reads() -> None:
    for data in (_pillow("RGB", (640, 480), "JPEG", exif=b"Exif\0\0" + bytes(30000)), make_png(640, 480)):
        assert validate_image(_Unseekable(data, step=1), len(data), "image_start").width == 640
        assert validate_image(_Unseekable(data, step=5), None, "image_start").height == 480


def test_a_seekable_stream_is_left_where_it_was() -> None:
    data = _pillow("RGB", (800, 600), "JPEG")
    stream = io.BytesIO(b"prefix" + data)
    stream.seek(6)
    assert validate_image(stream, None, "image_start").format == "jpeg"
    assert stream.tell() == 6
    assert stream.read() == data

    stream.seek(6)
    with pytest.raises(KlingValidationError):
        validate_image(stream, None, "image_start", max_bytes=len(data) - 1)
    assert stream.tell() == 6


# --- what must be rejected, and how the message reads -----------------------------------------


def _heif(brand: bytes, compatible: bytes) -> bytes:
    ftyp = struct.pack(">I4s4sI", 16 + len(compatible), b"ftyp", brand, 0) + compatible
    return ftyp + bytes(64)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (_pillow("RGB", (800, 600), "GIF"), "GIF"),
        (_pillow("RGB", (800, 600), "WEBP"), "WEBP"),
        (_pillow("RGB", (800, 600), "BMP"), "BMP"),
        (_pillow("RGB", (800, 600), "TIFF"), "TIFF"),
        (_pillow("RGB", (800, 600), "PDF"), "PDF"),
        (_pillow("RGB", (800, 600), "AVIF"), "AVIF"),
        (_pillow("RGB", (800, 600), "ICO"), "ICO"),
        (_pillow("RGB", (800, 600), "JPEG2000"), "JPEG 2000"),
        (_heif(b"heic", b"mif1heic"), "HEIC"),
        (_heif(b"mif1", b"mif1miafMA1B"), "HEIC"),
        (_heif(b"avif", b"avifmif1miaf"), "AVIF"),
        (make_mp4(1280, 720, 1), "MP4 video"),
        (_heif(b"qt  ", b"qt  "), "QuickTime MOV video"),
        (b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page"),
        (b'{"error": "not found"}', "JSON"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
        (b"hello, I am a text file\n", "text"),
    ],
)
def test_names_the_format_it_found(data: bytes, name: str) -> None:
    assert _error(data) == f"image_start: must be a JPG or PNG image (the content looks like {name})"


def test_unknown_binary_and_empty_content() -> None:
    assert _error(bytes(range(200, 256)) * 3).endswith("(the content is not a recognised image format)")
    assert _error(b"", size=0) == "image_start: must be a JPG or PNG image (the file is empty)"
    assert _error(b"") == "image_start: must be a JPG or PNG image (the file is empty)"
    with pytest.raises(KlingValidationError, match="the file is empty"):
        inspect_image(_Unseekable(b""))


def test_size_limit() -> None:
    png = make_png(800, 600)
    assert _error(png, size=13_000_000) == "image_start: must be at most 10 MB (got 12.4 MB)"
    assert _error(png, size=MAX_IMAGE_BYTES + 1) == (
        "image_start: must be at most 10 MB (got 10,485,761 bytes, over the limit of 10,485,760 bytes)"
    )
    assert _validate(png, size=MAX_IMAGE_BYTES).format == "png"
    # Measured from a seekable stream when the size is not given (the PNG is padded after IEND).
    assert _validate(png + bytes(MAX_IMAGE_BYTES - len(png))).format == "png"
    assert "10,485,761 bytes" in _error(png + bytes(MAX_IMAGE_BYTES + 1 - len(png)))
    assert validate_image(io.BytesIO(png), 40_000_000, "image_start", max_bytes=50 * 1024 * 1024).width == 800


@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [
        (300, 300, True),
        (299, 300, False),
        (300, 299, False),
        (750, 300, True),  # exactly 2.5:1
        (300, 750, True),  # exactly 1:2.5
        (751, 300, False),
        (300, 751, False),
        (1001, 400, False),  # 2.5025:1
        (1000, 400, True),
        (3840, 2160, True),
    ],
)
def test_boundaries(width: int, height: int, ok: bool) -> None:
    for data in (make_png(width, height), make_jpeg(width, height)):
        if ok:
            assert (_validate(data).width, _validate(data).height) == (width, height)
        else:
            _error(data)


def test_rule_messages() -> None:
    assert _error(make_png(200, 800), "image_end") == (
        "image_end: width and height must be at least 300 px (got 200x800)"
    )
    assert _error(make_png(3000, 1000)) == (
        "image_start: aspect ratio must be between 1:2.5 and 2.5:1 (got 3000x1000, 3.00:1)"
    )
    assert _error(make_png(1000, 3000)).endswith("(got 1000x3000, 1:3.00)")
    # Just over the limit never prints as "2.50:1".
    assert _error(make_png(751, 300)).endswith("(got 751x300, 2.503:1)")
    assert _error(_png_header(100001, 40000)).endswith("(got 100001x40000, 2.50002:1)")


def test_decompression_bomb_is_judged_from_its_header_only() -> None:
    bomb = _png_header(100_000, 100_000)
    assert len(bomb) < 200
    start = time.perf_counter()
    assert _validate(bomb) == ImageInfo("png", 100_000, 100_000, "image/png")
    assert time.perf_counter() - start < 0.05
    assert "aspect ratio" in _error(_png_header(100_000, 1000))
    assert _validate(_jpeg_header(65535, 65535)).width == 65535


@pytest.mark.parametrize("sof", [m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)])
def test_every_frame_header_marker(sof: int) -> None:
    assert _validate(_jpeg_header(640, 480, sof=sof)) == ImageInfo("jpeg", 640, 480, "image/jpeg")


@pytest.mark.parametrize("marker", [0xC4, 0xC8, 0xCC])
def test_dht_jpg_and_dac_are_not_frame_headers(marker: int) -> None:
    # A segment whose bytes would read as a 100x100 frame if it were taken for one.
    decoy = _segment(marker, struct.pack(">BHHB", 8, 100, 100, 1) + b"\x01\x11\x00")
    assert _validate(_jpeg_header(640, 480, before_sof=decoy)).width == 640


def test_fill_bytes_and_stray_bytes_between_segments() -> None:
    data = b"\xff\xd8" + b"\xff\xff\xff" + _segment(0xE0, b"JFIF\0" + bytes(9))[1:]
    data += b"garbage\x00" + _jpeg_header(640, 480)[2:]
    assert _validate(data).height == 480


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xd8\xff\xd9", "ends before its frame header"),
        (b"\xff\xd8" + _segment(0xDA, bytes(10)), "image data starts before any frame header"),
        (_jpeg_header(640, 0), "DNL"),
        (_jpeg_header(0, 480), "corrupt"),
        (b"\xff\xd8\xff\xc0\x00\x05\x08\x01\x00", "too short"),
        (b"\xff\xd8\xff\xe0\x00\x01", "invalid length 1"),
        (b"\xff\xd8\x00\x00\x00\x00", "not followed by a marker"),
        (b"\xff\xd8", "not followed by a marker"),
        (b"\xff", "ends inside the JPEG signature"),
        (b"\x89PNG\r", "ends inside the PNG signature"),
        (b"\x89PNG\n\x1a\n" + bytes(40), "PNG signature is damaged"),
        (_png_header(800, 600)[:30], "ends inside the PNG header"),
        (_png_header(800, 600)[:8] + _png_header(800, 600)[33:], "first PNG chunk is 'IDAT', not IHDR"),
        (_png_header(800, 600)[:29] + b"\0\0\0\0" + _png_header(800, 600)[33:], "CRC"),
        (_png_header(0, 600), "impossible size"),
        (_png_header(800, 600, depth=3), "invalid colour type"),
        (_png_header(800, 600, colour=5), "invalid colour type"),
    ],
)
def test_truncated_and_corrupt_headers(data: bytes, reason: str) -> None:
    message = _error(data)
    assert message.startswith("image_start: is not a readable JPG/PNG image (")
    assert reason in message


@pytest.mark.parametrize(
    "data", [_pillow("RGB", (800, 600), "JPEG", exif=b"Exif\0\0" + bytes(5000)), make_png(800, 600)]
)
def test_every_truncation_of_the_header_is_a_validation_error(data: bytes) -> None:
    header_end = data.index(b"\xff\xc0") + 10 if data[:2] == b"\xff\xd8" else 33
    for cut in range(header_end):
        message = _error(data[:cut])
        assert "is not a readable JPG/PNG image" in message or "the file is empty" in message, (cut, message)
    assert _validate(data[:header_end]).width == 800  # the header is all that is read


def test_errors_survive_pickling() -> None:
    with pytest.raises(KlingValidationError) as info:
        _validate(make_png(100, 100), "image_end")
    again = pickle.loads(pickle.dumps(info.value))
    assert (str(again), again.param) == (str(info.value), "image_end")


def test_stream_errors_are_not_disguised() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        inspect_image(Broken())


# --- hostile input ----------------------------------------------------------------------------

_VALID = [
    _pillow("RGB", (800, 600), "JPEG", exif=b"Exif\0\0" + bytes(300)),
    _pillow("RGB", (800, 600), "JPEG", progressive=True),
    _pillow("P", (800, 600), "PNG"),
    _png_header(1000, 500),
    _jpeg_header(640, 480, before_sof=_segment(0xFE, b"comment")),
]


def _check(data: bytes, stream: io.RawIOBase | io.BytesIO, size: int | None) -> None:
    try:
        info = validate_image(stream, size, "image_start")  # type: ignore[arg-type]
    except KlingValidationError as exc:
        assert exc.param == "image_start"
        assert str(exc).startswith("image_start: ")
    else:
        assert info.format in ("png", "jpeg")
        assert info.width >= 300 and info.height >= 300


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), step=st.integers(1, 64), seekable=st.booleans(), known=st.booleans())
def test_random_bytes_only_ever_give_info_or_validation_error(
    data: bytes, step: int, seekable: bool, known: bool
) -> None:
    stream = io.BytesIO(data) if seekable else _Unseekable(data, step)
    _check(data, stream, len(data) if known else None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(_VALID),
    edits=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 800)),
    insert=st.one_of(st.none(), st.tuples(st.integers(0, 700), st.binary(min_size=1, max_size=8))),
    seekable=st.booleans(),
)
def test_mutated_headers_only_ever_give_info_or_validation_error(
    base: bytes,
    edits: list[tuple[int, int]],
    cut: int | None,
    insert: tuple[int, bytes] | None,
    seekable: bool,
) -> None:
    data = bytearray(base)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    if insert is not None:
        data[insert[0] : insert[0]] = insert[1]
    if cut is not None:
        del data[cut:]
    raw = bytes(data)
    _check(raw, io.BytesIO(raw) if seekable else _Unseekable(raw, 3), None)


@settings(max_examples=200, deadline=None)
@given(
    marker=st.integers(0, 255),
    length=st.integers(0, 0xFFFF),
    tail=st.binary(max_size=40),
)
def test_arbitrary_jpeg_segments_only_ever_give_info_or_validation_error(marker: int, length: int, tail: bytes) -> None:
    raw = b"\xff\xd8\xff" + bytes([marker]) + struct.pack(">H", length) + tail
    _check(raw, io.BytesIO(raw), None)
