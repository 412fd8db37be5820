"""Check an image against EvoLink's rules before uploading it.

EvoLink takes ``image_start``, ``image_end`` and element reference images only as JPG/JPEG or
PNG, at most 10 MB, both sides at least 300 px, aspect ratio from 1:2.5 to 2.5:1. A bad image
is found out only after the task was created, and the task can be billed, so we check first.

The format comes from the content, never the file name. Only headers are read: the PNG
signature and IHDR chunk, or the JPEG markers up to the frame header (SOFn), walking the
segments before it by their lengths (a camera's EXIF block can be tens of kilobytes), seeking
over them when the stream can seek. No pixel is ever decoded, so a "decompression bomb" costs
nothing, and whatever the bytes are, the only error raised is ``KlingValidationError``.

EXIF orientation is ignored on purpose: a 90-degree rotation swaps width and height, and both
rules (the shorter side, and a ratio range that is symmetric) give the same answer either way.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Literal

from kling_provider.exceptions import KlingValidationError

__all__ = [
    "MAX_ASPECT_RATIO",
    "MAX_IMAGE_BYTES",
    "MIN_IMAGE_SIDE",
    "ImageInfo",
    "inspect_image",
    "validate_image",
]

#: EvoLink's "10MB". The exact definition is not documented; 10 MiB is what "MB" means in the
#: Kling documents that give the limit in bytes, and the larger reading rejects fewer good files.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_SIDE = 300
#: Width:height at most 2.5:1 and at least 1:2.5, both ends included; kept as 5/2 for exact
#: integer comparisons.
MAX_ASPECT_RATIO = (5, 2)

# How far to look for a JPEG frame header on a stream that cannot seek (it must be read).
_SCAN_LIMIT = 64 * 1024 * 1024
_SKIP_CHUNK = 64 * 1024
_HEAD = 64  # enough bytes to tell every format named below

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Allowed bit depths per PNG colour type (PNG spec, 11.2.2 IHDR).
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# Frame header markers SOF0..SOF15 (ITU-T T.81, table B.1); C4 (DHT), C8 (JPG) and CC (DAC)
# share the range but are not frame headers.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0..7 and SOI (B.1.1.3); the rest carry one.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says about it."""

    format: Literal["png", "jpeg"]
    width: int
    height: int
    mime_type: str


class _CorruptHeader(Exception):
    """The header is truncated or corrupt; the message says how."""


class _NotJpegOrPng(Exception):
    """The content is something else; the message describes what."""


class _Reader:
    """Reads a stream forward in exact amounts, counting what it consumed, and skips by seeking
    when the stream allows it (a short read is retried: raw and socket streams may return
    less than asked)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending = b""
        self.consumed = 0
        try:
            self._seekable = bool(stream.seekable())
        except (AttributeError, OSError, ValueError):
            self._seekable = False

    def read_up_to(self, n: int) -> bytes:
        parts = [self._pending[:n]]
        self._pending = self._pending[n:]
        got = len(parts[0])
        while got < n:
            chunk = self._stream.read(n - got)
            if not chunk:  # b"" at the end; None from a non-blocking stream with nothing ready
                break
            parts.append(bytes(chunk))
            got += len(chunk)
        data = b"".join(parts)
        self.consumed += len(data)
        return data

    def read(self, n: int, what: str) -> bytes:
        data = self.read_up_to(n)
        if len(data) < n:
            raise _CorruptHeader(f"the file ends inside {what}")
        return data

    def skip_to_ff(self) -> None:
        """Moves to the next 0xFF byte. Normally that is the very next byte, so the first read is
        two bytes (a marker); through garbage, reads grow to 64 KB rather than going byte by byte."""
        chunk = 2
        while True:
            if not self._pending:
                if self.consumed > _SCAN_LIMIT:
                    raise _CorruptHeader(f"no JPEG frame header in the first {_SCAN_LIMIT // (1024 * 1024)} MB")
                self._pending = bytes(self._stream.read(chunk) or b"")
                chunk = min(chunk * 4, _SKIP_CHUNK)
                if not self._pending:
                    raise _CorruptHeader("the file ends inside the JPEG header")
            idx = self._pending.find(b"\xff")
            if idx >= 0:
                self._pending = self._pending[idx:]
                self.consumed += idx
                return
            self.consumed += len(self._pending)
            self._pending = b""

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending
        self.consumed -= len(data)

    def skip(self, n: int, what: str) -> None:
        if self.consumed + n > _SCAN_LIMIT:
            raise _CorruptHeader(f"no JPEG frame header in the first {_SCAN_LIMIT // (1024 * 1024)} MB")
        from_pending = min(n, len(self._pending))
        self._pending = self._pending[from_pending:]
        self.consumed += from_pending
        left = n - from_pending
        if left and self._seekable:
            try:
                self._stream.seek(left, io.SEEK_CUR)
            except (OSError, ValueError):
                self._seekable = False
            else:
                self.consumed += left
                return
        while left:
            self.read(min(left, _SKIP_CHUNK), what)
            left -= min(left, _SKIP_CHUNK)


def inspect_image(stream: BinaryIO, *, field: str = "image") -> ImageInfo:
    """Format and pixel size of the JPG or PNG image at the stream's current position, read from
    its header alone; ``KlingValidationError`` if it is anything else or unreadable.

    The stream is left where it was when it can seek (so the same stream can then be uploaded),
    and somewhere past the header otherwise. ``OSError`` from the stream itself propagates: it is
    a problem with the file system or the network, not with the image.
    """
    start = _tell(stream)
    try:
        return _inspect(_Reader(stream))
    except _NotJpegOrPng as exc:
        raise KlingValidationError(f"{field}: must be a JPG or PNG image ({exc})", param=field) from None
    except _CorruptHeader as exc:
        raise KlingValidationError(f"{field}: is not a readable JPG/PNG image ({exc})", param=field) from None
    except (struct.error, IndexError, OverflowError) as exc:
        # The parser checks lengths before it unpacks, so this is a safety net, not a path.
        raise KlingValidationError(
            f"{field}: is not a readable JPG/PNG image (corrupt header: {exc.__class__.__name__})", param=field
        ) from None
    finally:
        _seek(stream, start)


def validate_image(stream: BinaryIO, size: int | None, field: str, *, max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    """The ``ImageInfo`` of an image that meets EvoLink's rules, or ``KlingValidationError``
    (``param=field``) naming the field and the broken rule.

    ``size`` is the byte count when the caller knows it (a file's stat, a Content-Length);
    ``None`` measures a seekable stream from its current position. A stream that can neither
    seek nor has a known size cannot have its size checked here: whoever uploads it must.
    ``max_bytes`` exists because one model (kling-v3-turbo image-to-video) documents 50 MB.
    """
    if size is None:
        size = _remaining(stream)
    if size is not None and size > max_bytes:
        raise KlingValidationError(
            f"{field}: must be at most {_mb(max_bytes)} (got {_size_text(size, max_bytes)})", param=field
        )
    if size == 0:
        raise KlingValidationError(f"{field}: must be a JPG or PNG image (the file is empty)", param=field)
    info = inspect_image(stream, field=field)
    w, h = info.width, info.height
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        raise KlingValidationError(
            f"{field}: width and height must be at least {MIN_IMAGE_SIDE} px (got {w}x{h})", param=field
        )
    num, den = MAX_ASPECT_RATIO
    if w * den > h * num or h * den > w * num:
        raise KlingValidationError(
            f"{field}: aspect ratio must be between 1:2.5 and 2.5:1 (got {w}x{h}, {_ratio_text(w, h)})",
            param=field,
        )
    return info


# ---------------------------------------------------------------------------------------------


def _inspect(reader: _Reader) -> ImageInfo:
    head = reader.read_up_to(_HEAD)
    if head.startswith(_PNG_SIGNATURE):
        reader.unread(head[len(_PNG_SIGNATURE) :])
        return _png(reader)
    if head.startswith(b"\xff\xd8\xff"):
        reader.unread(head[2:])
        return _jpeg(reader)
    if head and _PNG_SIGNATURE.startswith(head):
        raise _CorruptHeader("the file ends inside the PNG signature")
    if head.startswith(b"\x89PNG"):
        # Typically CR LF rewritten by a text-mode transfer, which the signature exists to catch.
        raise _CorruptHeader("the PNG signature is damaged (was the file transferred as text?)")
    if head.startswith(b"\xff\xd8"):
        raise _CorruptHeader("the JPEG start-of-image marker is not followed by a marker")
    if head == b"\xff":
        raise _CorruptHeader("the file ends inside the JPEG signature")
    raise _NotJpegOrPng(_describe(head))


def _png(reader: _Reader) -> ImageInfo:
    """The IHDR chunk, which the PNG spec (5.6) requires to come first, CRC-checked."""
    chunk = reader.read(8 + 13 + 4, "the PNG header (IHDR)")
    length, kind = struct.unpack(">I4s", chunk[:8])
    if kind != b"IHDR":
        raise _CorruptHeader(f"the first PNG chunk is {_printable(kind)}, not IHDR")
    if length != 13:
        raise _CorruptHeader(f"the PNG IHDR chunk has length {length}, not 13")
    data, (crc,) = chunk[8:21], struct.unpack(">I", chunk[21:25])
    if zlib.crc32(kind + data) != crc:
        raise _CorruptHeader("the PNG IHDR chunk fails its CRC check")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data)
    if not (0 < width < 1 << 31 and 0 < height < 1 << 31):
        raise _CorruptHeader(f"the PNG header gives an impossible size {width}x{height}")
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise _CorruptHeader("the PNG header has invalid colour type, bit depth or method fields")
    return ImageInfo(format="png", width=width, height=height, mime_type="image/png")


def _jpeg(reader: _Reader) -> ImageInfo:
    """Walks the marker segments after SOI (T.81 B.1.1, B.2) to the first frame header.

    Like libjpeg and Pillow, bytes that are not a marker are skipped over (with a warning in
    those libraries); fill bytes 0xFF before a marker are allowed by B.1.1.2.
    """
    while True:
        reader.skip_to_ff()
        marker = reader.read(2, "the JPEG header")[1]
        while marker == 0xFF:
            marker = reader.read(1, "the JPEG header")[0]
        if marker == 0x00 or marker in _JPEG_STANDALONE:  # stuffed zero, or no length field
            continue
        if marker == 0xD9:
            raise _CorruptHeader("the JPEG ends before its frame header")
        if marker == 0xDA:
            raise _CorruptHeader("the JPEG image data starts before any frame header")
        (length,) = struct.unpack(">H", reader.read(2, "a JPEG segment length"))
        if length < 2:
            raise _CorruptHeader(f"a JPEG segment (marker 0x{marker:02X}) has an invalid length {length}")
        if marker not in _JPEG_SOF:
            reader.skip(length - 2, f"a JPEG segment (marker 0x{marker:02X})")
            continue
        if length < 8:
            raise _CorruptHeader(f"the JPEG frame header is too short ({length} bytes)")
        _, height, width, components = struct.unpack(">BHHB", reader.read(6, "the JPEG frame header"))
        if height == 0:
            raise _CorruptHeader("the JPEG height is left to a DNL marker, which is not supported")
        if width == 0 or components == 0:
            raise _CorruptHeader(f"the JPEG frame header is corrupt ({width}x{height}, {components} components)")
        return ImageInfo(format="jpeg", width=width, height=height, mime_type="image/jpeg")


# (prefix, offset, name) for recognising what a file is when it is not JPG/PNG.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"II+\x00", 0, "TIFF"),
    (b"MM\x00+", 0, "TIFF"),
    (b"%PDF-", 0, "PDF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "JPEG XL"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"8BPS", 0, "PSD"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"\x1a\x45\xdf\xa3", 0, "WebM/Matroska video"),
    (b"PK\x03\x04", 0, "ZIP"),
    (b"\x1f\x8b", 0, "gzip"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}


def _describe(head: bytes) -> str:
    """Best-effort name of what ``head`` starts, for the error message."""
    if not head:
        return "the file is empty"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = {b"WEBP": "WEBP", b"AVI ": "AVI video", b"WAVE": "WAV audio"}.get(head[8:12])
        if kind:
            return f"the content looks like {kind}"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        size = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, size - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "the content looks like AVIF"
        if brands & _HEIF_BRANDS:
            return "the content looks like HEIC"
        if b"qt  " in brands:
            return "the content looks like QuickTime MOV video"
        return "the content looks like MP4 video"
    if head.startswith(b"BM") and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "the content looks like BMP"
    for prefix, offset, name in _SIGNATURES:
        if head[offset : offset + len(prefix)] == prefix:
            return f"the content looks like {name}"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "the content looks like an HTML page"
    if b"<svg" in text:
        return "the content looks like SVG"
    if text.startswith(b"<?xml"):
        return "the content looks like XML"
    if text.startswith((b"{", b"[")):
        return "the content looks like JSON"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and all(c.isprintable() or c in "\t\r\n" for c in decoded):
        return "the content looks like text"
    return "the content is not a recognised image format"


def _printable(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))


def _tell(stream: BinaryIO) -> int | None:
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _seek(stream: BinaryIO, pos: int | None) -> None:
    if pos is not None:
        with contextlib.suppress(OSError, ValueError):
            stream.seek(pos)


def _remaining(stream: BinaryIO) -> int | None:
    """Bytes from the current position to the end, for a stream that can seek."""
    pos = _tell(stream)
    if pos is None:
        return None
    try:
        end = stream.seek(0, io.SEEK_END)
    except (OSError, ValueError):
        return None
    finally:
        _seek(stream, pos)
    return max(end - pos, 0)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


def _size_text(size: int, limit: int) -> str:
    """``12.4 MB``, or the exact byte count when one decimal would not show it is over."""
    text = f"{size / (1024 * 1024):.1f} MB"
    if float(text.split()[0]) * 1024 * 1024 <= limit:
        return f"{size:,} bytes, over the limit of {limit:,} bytes"
    return text


def _ratio_text(w: int, h: int) -> str:
    """``3.00:1`` or ``1:3.00``, with more decimals when two would round onto the limit."""
    wide = w >= h
    ratio = w / h if wide else h / w
    for digits in range(2, 8):
        text = f"{ratio:.{digits}f}"
        if float(text) > 2.5:
            break
    return f"{text}:1" if wide else f"1:{text}"
