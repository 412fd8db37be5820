"""Read an MP4's own metadata by seeking from box to box (ISO/IEC 14496-12), standard library only.

A saved video may be 1 GiB and live in object storage, and ``moov`` (the metadata) may come
before or after ``mdat`` (the pictures). :func:`read_video_info` reads box headers (8 or 16
bytes each), seeks over every payload it does not need, and reads only the few small boxes that
say what the video is: ``tkhd``, ``mdhd``, ``hdlr``, the first ``stsd`` entry, ``stts`` and the
``stsz`` header. On S3 that is a handful of ranged reads (:func:`read_video_info_at` opens the
object with a small block size), never the whole object.

:class:`Mp4StreamCheck` is the same idea for bytes going past once (a download): it follows the
top-level box headers across chunks and says whether the file ended inside a box (truncated).
"""

from __future__ import annotations

import io
import struct
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

__all__ = ["Mp4StreamCheck", "NotAnMp4Error", "VideoInfo", "read_video_info", "read_video_info_at"]

#: Bytes fetched per ranged read when the video is in object storage: box headers and the small
#: boxes read here fit in one or two such reads (s3fs's default, 50 MiB, would fetch that much
#: for the first 8 bytes).
READ_BLOCK = 64 * 1024
#: Leaf boxes are read whole only up to this size: ``stts`` of a variable-frame-rate video can be
#: long, and its frame rate then comes from the sample count instead.
_MAX_LEAF = 1024 * 1024
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex"})
_LEAVES = frozenset({b"mvhd", b"mehd", b"tkhd", b"mdhd", b"hdlr", b"stsd", b"stts", b"stsz", b"stz2", b"stco", b"co64"})
#: Of these only the start is read: the sample count (stsz, stz2), the chunk count (stco, co64).
_HEADS = {b"stsz": 12, b"stz2": 12, b"stco": 8, b"co64": 8}
#: Sample entry four-character codes, by the name ffprobe gives the codec.
_CODECS = {
    b"avc1": "h264",
    b"avc3": "h264",
    b"hvc1": "hevc",
    b"hev1": "hevc",
    b"av01": "av1",
    b"vp09": "vp9",
    b"vp08": "vp8",
    b"mp4v": "mpeg4",
    b"mp4a": "aac",
}


class NotAnMp4Error(ValueError):
    """The bytes are not a complete, readable MP4 video (truncated, damaged, or something else)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself (its first video track, and whether it has sound)."""

    duration_s: float
    width: int
    height: int
    #: Frames per second; None when the file does not say (no samples).
    fps: float | None
    #: ``h264``, ``hevc``, ``av1``...: ffprobe's name for the sample entry, else its four letters.
    codec: str
    has_audio: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_video_info(f: BinaryIO) -> VideoInfo:
    """The metadata of the MP4 in a seekable binary file, read by seeking (see the module doc).

    Raises :class:`NotAnMp4Error` naming what is wrong when the file is not a complete MP4 with
    a video track (a box running past the end of the file is a truncated download).
    """
    try:
        return _read(f)
    except struct.error as err:
        raise NotAnMp4Error(f"not a readable MP4 file: a box is too short ({err})") from None


def read_video_info_at(location: Any, conn_id: str | None = None) -> VideoInfo:
    """:func:`read_video_info` of a local path, ``file://`` URI (as the XCom's ``output_uri``)
    or object-storage URI/path.

    Object storage is read with ranged requests of :data:`READ_BLOCK` bytes.
    """
    from kling_provider.storage import is_local, resolve_destination  # it imports this module

    path = resolve_destination(location, conn_id)
    if is_local(path):
        with open(path, "rb") as f:
            return read_video_info(f)
    with path.fs.open(path.path, "rb", block_size=READ_BLOCK, cache_type="readahead") as f:
        return read_video_info(f)


# -- reading -----------------------------------------------------------------------------------


def _read(f: BinaryIO) -> VideoInfo:
    size = f.seek(0, io.SEEK_END)
    top = _children(f, 0, size, size, top=True)
    if not top or top[0][0] not in (b"ftyp", b"styp"):
        head = _exact(f, 0, min(size, 16), size)
        raise NotAnMp4Error(f"not an MP4 file (no 'ftyp' box first): starts with {head!r}")
    moov = next(((s, e) for kind, s, e in top if kind == b"moov"), None)
    if moov is None:
        raise NotAnMp4Error("not a readable MP4 file: no 'moov' box (the metadata), so an incomplete file")
    if not any(kind in (b"mdat", b"moof") for kind, _, _ in top):
        raise NotAnMp4Error("not a readable MP4 file: no 'mdat' box (the pictures), so an incomplete file")
    movie: dict[bytes, bytes] = {}
    video: dict[bytes, bytes] | None = None
    has_audio = False
    for kind, start, end in _children(f, *moov, size):
        if kind in (b"mvhd", b"mvex"):
            _collect(f, kind, start, end, size, movie)
        elif kind == b"trak":
            track: dict[bytes, bytes] = {}
            _collect(f, kind, start, end, size, track)
            handler = track.get(b"hdlr", b"")[8:12]
            if handler == b"vide" and video is None:
                video = track
            elif handler == b"soun":
                has_audio = True
    if video is None:
        raise NotAnMp4Error("the MP4 file has no video track")
    last_chunk = _last_chunk_offset(f, video, size)
    if last_chunk is not None and last_chunk >= size:
        raise NotAnMp4Error(
            f"truncated MP4: the video's last chunk is at offset {last_chunk}, the file has {size} bytes"
        )
    return _video_info(video, movie, has_audio)


def _last_chunk_offset(f: BinaryIO, track: dict[bytes, bytes], size: int) -> int | None:
    """Where the track's last chunk of samples starts (one more small read), or None."""
    for kind, width, fmt in ((b"stco", 4, ">I"), (b"co64", 8, ">Q")):
        head = track.get(kind)
        if head is not None and len(head) == 8 + 8:  # the header and where the table starts
            count, table = struct.unpack(">I", head[4:8])[0], struct.unpack(">Q", head[8:16])[0]
            if not count:
                return None
            at = table + (count - 1) * width
            return int(struct.unpack(fmt, _exact(f, at, at + width, size))[0])
    return None


def _video_info(track: dict[bytes, bytes], movie: dict[bytes, bytes], has_audio: bool) -> VideoInfo:
    for needed in (b"tkhd", b"mdhd", b"stsd"):
        if needed not in track:
            raise NotAnMp4Error(f"not a readable MP4 file: the video track has no '{needed.decode()}' box")
    tkhd, mdhd, stsd = track[b"tkhd"], track[b"mdhd"], track[b"stsd"]
    width, height = (v >> 16 for v in struct.unpack(">II", tkhd[-8:]))
    a, b, _, c, d = struct.unpack(">5i", tkhd[-44:-24])  # the matrix's a, b, u, c, d
    entry = stsd[8:] if struct.unpack(">I", stsd[4:8])[0] else b""
    fourcc = entry[4:8]
    if (not width or not height) and len(entry) >= 8 + 32:
        width, height = struct.unpack(">HH", entry[8 + 24 : 8 + 28])
    if a == 0 and d == 0 and b and c:  # rotated by 90 or 270 degrees: shown the other way round
        width, height = height, width
    timescale, duration = _timescale_duration(mdhd)
    if not duration:  # fragmented: the movie's own duration, or the fragments' total (mehd)
        duration, timescale = _movie_duration(movie, timescale)
    duration_s = duration / timescale if timescale else 0.0
    samples = _sample_count(track)
    deltas = _stts_deltas(track.get(b"stts", b""))
    if deltas is not None and len(set(deltas)) == 1 and deltas[0] and timescale:
        fps: float | None = timescale / deltas[0]
    elif samples and duration_s:
        fps = samples / duration_s
    else:
        fps = None
    codec = _CODECS.get(fourcc) or fourcc.decode("latin-1").strip() or "unknown"
    return VideoInfo(
        duration_s=round(duration_s, 6),
        width=width,
        height=height,
        fps=None if fps is None else round(fps, 6),
        codec=codec,
        has_audio=has_audio,
    )


def _timescale_duration(full_box: bytes) -> tuple[int, int]:
    """(timescale, duration) of an ``mdhd`` or ``mvhd`` payload, version 0 or 1."""
    if full_box[0] == 1:
        timescale, duration = struct.unpack(">IQ", full_box[20:32])
        return timescale, 0 if duration == (1 << 64) - 1 else duration
    timescale, duration = struct.unpack(">II", full_box[12:20])
    return timescale, 0 if duration == 0xFFFFFFFF else duration


def _movie_duration(movie: dict[bytes, bytes], track_timescale: int) -> tuple[int, int]:
    """(duration, timescale) from ``mvhd``, else from ``mehd`` (fragment duration, movie units)."""
    if b"mvhd" not in movie:
        return 0, track_timescale
    timescale, duration = _timescale_duration(movie[b"mvhd"])
    if not duration and b"mehd" in movie:
        mehd = movie[b"mehd"]
        duration = struct.unpack(">Q", mehd[4:12])[0] if mehd[0] == 1 else struct.unpack(">I", mehd[4:8])[0]
    return duration, timescale


def _sample_count(track: dict[bytes, bytes]) -> int:
    for kind in (b"stsz", b"stz2"):
        if kind in track:
            return int(struct.unpack(">I", track[kind][8:12])[0])
    return 0


def _stts_deltas(stts: bytes) -> list[int] | None:
    """The sample durations listed in ``stts``, or None when absent or too long to have been read."""
    if len(stts) < 8:
        return None
    count = struct.unpack(">I", stts[4:8])[0]
    if len(stts) < 8 + 8 * count:
        return None
    return [struct.unpack(">I", stts[8 + 8 * i + 4 : 8 + 8 * i + 8])[0] for i in range(count)]


def _collect(f: BinaryIO, kind: bytes, start: int, end: int, size: int, found: dict[bytes, bytes]) -> None:
    """The payloads of the wanted leaf boxes in one container (first of each kind)."""
    if kind in _LEAVES:
        if kind not in found:
            # Long tables: stsz's and stco's headers say all needed, stts is read while small.
            found[kind] = _exact(f, start, min(end, start + _HEADS.get(kind, _MAX_LEAF)), size)
            if kind in (b"stco", b"co64"):  # and where its table starts, for _last_chunk_offset
                found[kind] += struct.pack(">Q", start + 8)
        return
    if kind in _CONTAINERS:
        for child, s, e in _children(f, start, end, size):
            _collect(f, child, s, e, size, found)


def _children(f: BinaryIO, start: int, end: int, size: int, *, top: bool = False) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes from ``start`` to ``end``, by seeking."""
    found: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        box_size, kind = struct.unpack(">I4s", _exact(f, pos, pos + 8, size))
        header = 8
        if box_size == 1:
            box_size, header = struct.unpack(">Q", _exact(f, pos + 8, pos + 16, size))[0], 16
        elif box_size == 0:  # runs to the end of its container
            box_size = end - pos
        if box_size < header:
            raise NotAnMp4Error(f"not a readable MP4 file: box {_name(kind)} at offset {pos} has size {box_size}")
        if pos + box_size > end:
            where = "the file" if top else "its parent box"
            raise NotAnMp4Error(
                f"truncated MP4: box {_name(kind)} at offset {pos} needs {box_size} bytes but {where} ends "
                f"at offset {end}"
            )
        found.append((kind, pos + header, pos + box_size))
        pos += box_size
    if top and pos != end:
        raise NotAnMp4Error(f"truncated MP4: {end - pos} stray bytes at the end of the file (offset {pos})")
    return found


def _exact(f: BinaryIO, start: int, end: int, size: int) -> bytes:
    if end > size:
        raise NotAnMp4Error(f"truncated MP4: needs bytes up to offset {end}, the file has {size}")
    f.seek(start)
    data = f.read(end - start)
    if len(data) != end - start:
        raise NotAnMp4Error(f"truncated MP4: read {len(data)} of {end - start} bytes at offset {start}")
    return bytes(data)


def _name(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))


# -- streaming ---------------------------------------------------------------------------------


class Mp4StreamCheck:
    """Follows the top-level boxes of an MP4 going past once, chunk by chunk, in O(1) memory.

    :meth:`problem` says what is wrong when the bytes do not start with ``ftyp``, end inside a
    box, or lack ``moov`` or ``mdat`` (a truncated transfer whose length nobody announced, or a
    truncated object served with a matching length), or None.
    """

    def __init__(self) -> None:
        self.offset = 0  # bytes seen
        self._next_box = 0  # offset of the next top-level box header
        self._header = b""  # the part of that header seen so far
        self._first = b""
        self._box: tuple[bytes, int, int] | None = None  # (type, start, end) of the box being passed
        self._to_end = False  # a box of size 0: runs to the end of the file
        self._kinds: set[bytes] = set()  # top-level box types seen

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        end = self.offset + len(view)
        if len(self._first) < 8:
            self._first += bytes(view[: 8 - len(self._first)])
        while not self._to_end and self._next_box < end:
            header = self._header
            while len(header) < (want := 16 if header[:4] == b"\x00\x00\x00\x01" else 8):
                at = self._next_box + len(header) - self.offset  # where the missing bytes start
                if at >= len(view):
                    break
                header += bytes(view[at : at + want - len(header)])
            self._header = header
            if len(header) < want:
                break
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                size = struct.unpack(">Q", header[8:16])[0]
            start = self._next_box
            self._kinds.add(kind)
            if size == 0 or size < len(header):
                # 0: the last box, running to the end; less than its header: malformed.
                self._box = (kind, start, -1 if size == 0 else -2)
                self._to_end = True
                break
            self._box = (kind, start, start + size)
            self._next_box = start + size
            self._header = b""
        self.offset = end

    def problem(self) -> str | None:
        """Why the bytes seen are not a complete MP4's box sequence, or None."""
        if len(self._first) < 8 or self._first[4:8] != b"ftyp":
            return f"not an MP4 video (no 'ftyp' header): starts with {self._first[:16]!r}"
        if self._box is not None and self._box[2] == -2:
            return f"not a readable MP4: box {_name(self._box[0])} at offset {self._box[1]} has an impossible size"
        if not self._to_end and self._header:
            return f"truncated MP4: the file ends inside a box header at offset {self._next_box}"
        if not self._to_end and self._next_box > self.offset and self._box is not None:
            kind, start, box_end = self._box
            return (
                f"truncated MP4: box {_name(kind)} at offset {start} needs {box_end - start} bytes but the file "
                f"ends at offset {self.offset}"
            )
        for needed, what in ((b"moov", "the metadata"), (b"mdat", "the pictures")):
            if needed not in self._kinds and not (needed == b"mdat" and b"moof" in self._kinds):
                return f"an incomplete MP4: it ends at offset {self.offset} without a {needed.decode()!r} box ({what})"
        return None
