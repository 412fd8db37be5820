"""Write a file (a downloaded video, a poster, a sidecar) so that its final path only ever holds
a complete, checked file; and resolve where it goes (a local path or object storage).

The bytes are counted against the expected length and checked as they pass (an MP4 must start
with ``ftyp`` and must not end inside a box: :class:`~kling_provider.video.mp4.Mp4StreamCheck`)
before anything appears under the final name:

* local disks: a hidden sibling (``.<name>.part-<random>``), fsynced, then ``os.replace``;
* S3: a multipart upload straight to the final key, completed only after the checks and aborted
  on any failure. S3 shows nothing under a key until ``CompleteMultipartUpload``, and this writes
  the bytes once (a part object + rename is a second, server-side copy of the whole video);
* other object stores: a hidden part object, then a rename (copy + delete).

A crash at any point leaves at most a hidden part file (or, on S3, an incomplete multipart
upload, which a bucket lifecycle rule removes: docs/reliability.md), never a truncated video under
the name downstream tasks read; the next successful save of the same output removes leftover part
files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from airflow.sdk import ObjectStoragePath

from kling_provider.exceptions import KlingServerError
from kling_provider.video.mp4 import Mp4StreamCheck

_CHUNK = 1024 * 1024
#: Part size for object stores, chosen for memory (figures: bench/README.md, "Figures behind the code").
_PART_SIZE = 8 * 1024 * 1024
#: Stores whose uncommitted writes (``open(..., autocommit=False)`` until ``commit()``) are proven
#: invisible, by tests against a real S3 API. fsspec's base file class makes ``commit()`` and
#: ``discard()`` no-ops, so a store that ignored ``autocommit=False`` would publish a partial
#: object and ``discard()`` would leave it there: every other store keeps the part + rename.
_STAGED_PROTOCOLS = frozenset({"s3", "s3a"})
#: Object stores keep modification times to the second: a part file counts as stale only when it
#: was last written this much before the current download began.
_MTIME_SLACK = 2.0


class _Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class ContentCheck(Protocol):
    """Sees every chunk written; :meth:`problem` says why the whole is not what it should be."""

    def feed(self, chunk: bytes, /) -> None: ...

    def problem(self) -> str | None: ...


class HeaderCheck:
    """A file type told by its first bytes: ``HeaderCheck((b"\\xff\\xd8\\xff",), "a JPEG image")``."""

    def __init__(self, magics: tuple[bytes, ...], what: str) -> None:
        self.magics = magics
        self.what = what
        self._head = b""

    def feed(self, chunk: bytes) -> None:
        if len(self._head) < 16:
            self._head += chunk[: 16 - len(self._head)]

    def problem(self) -> str | None:
        if any(self._head.startswith(magic) for magic in self.magics):
            return None
        return f"not {self.what}: starts with {self._head[:16]!r}"


def is_mp4_header(head: bytes) -> bool:
    """ISO base media files start with a box whose type is ``ftyp`` (ISO/IEC 14496-12, 4.3)."""
    return len(head) >= 8 and head[4:8] == b"ftyp"


def resolve_destination(destination: str | os.PathLike[str] | ObjectStoragePath, conn_id: str | None = None) -> Any:
    """A local ``Path`` for plain paths and ``file://`` URIs, an ``ObjectStoragePath`` for the rest."""
    if isinstance(destination, os.PathLike) and not hasattr(destination, "protocol"):
        return Path(destination)
    text = str(destination)
    if text.startswith("file://"):  # percent-decoded: destination_uri() encodes (Path.as_uri)
        return Path(unquote(text[len("file://") :]))
    if "://" not in text:
        return Path(text)
    if hasattr(destination, "protocol"):
        return destination

    return ObjectStoragePath(text, conn_id=conn_id)


def destination_uri(destination: Any) -> str:
    """The URI downstream tasks and asset events name the file by.

    ``str(ObjectStoragePath)`` embeds the connection id as user info (``s3://aws_default@bucket/key``);
    that is not where the object is, and as an Asset URI it would never match ``s3://bucket/key``.
    """
    if _is_local(destination):
        return destination.resolve().as_uri()
    text = str(destination)
    conn_id = getattr(destination, "conn_id", None)
    if conn_id is None:  # Airflow 3.0's ObjectStoragePath keeps it in storage_options only
        conn_id = (getattr(destination, "storage_options", None) or {}).get("conn_id")
    protocol = getattr(destination, "protocol", None)
    if conn_id and protocol and text.startswith(prefix := f"{protocol}://{conn_id}@"):
        return f"{protocol}://{text[len(prefix) :]}"
    return text


class VerifiedWriter:
    """Stream chunks to a staging place; :meth:`commit` checks them and publishes them.

    ``check`` sees every chunk (default: an MP4 video, :class:`Mp4StreamCheck`).
    """

    def __init__(self, destination: Any, expected_size: int | None, check: ContentCheck | None = None) -> None:
        self.destination = destination
        self.expected_size = expected_size
        self.check: ContentCheck = check if check is not None else Mp4StreamCheck()
        self.part = destination.with_name(f".{destination.name}.part-{uuid.uuid4().hex[:12]}")
        self.staged = _stages_in_place(destination)
        self.written = 0
        self._started = time.time()
        self._upload: Any = None  # the open multipart upload, on S3
        self._lock_fd: int | None = None  # held on a local part file while this writer lives

    def write_all(self, chunks: Iterable[bytes]) -> int:
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        if self.staged:
            self._write_staged(chunks)
            return self.written
        try:
            with self._open_part() as handle:
                if _is_local(self.destination):
                    self._hold_part()
                self._copy(chunks, handle)
                if hasattr(handle, "flush"):
                    handle.flush()
                if _is_local(self.destination):
                    os.fsync(handle.fileno())
        except BaseException:
            self.discard()
            raise
        return self.written

    def _write_staged(self, chunks: Iterable[bytes]) -> None:
        """Upload the parts to the final key; the upload stays open (invisible) until commit.

        Opened on the filesystem, not through ``ObjectStoragePath.open``: its lineage wrapper
        runs for every chunk written and would name the connection, not the object.
        """
        fs = self.destination.fs
        upload = fs.open(self.destination.path, "wb", block_size=_PART_SIZE, autocommit=False)
        # fsspec also queues the file on the filesystem's transaction, which Airflow shares across
        # the process: whoever ends a transaction there would commit or discard it. It is ours.
        with contextlib.suppress(ValueError):
            fs.transaction.files.remove(upload)
        self._upload = upload
        try:
            self._copy(chunks, upload)
            upload.close()  # sends the last part; nothing is visible before commit()
        except BaseException:
            self.discard()
            raise

    def _hold_part(self) -> None:
        """Lock the local part file until commit or discard. The kernel drops the lock when the
        process dies, which is how a later attempt tells a killed writer's leftover from a live one."""
        fd = os.open(self.part, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd

    def _release_part(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _open_part(self) -> Any:
        if isinstance(self.part, Path):
            return self.part.open("wb")
        return self.part.open("wb", block_size=_PART_SIZE)

    def _copy(self, chunks: Iterable[bytes], handle: _Writable) -> None:
        for chunk in chunks:
            if not chunk:
                continue
            self.check.feed(chunk)
            handle.write(chunk)
            self.written += len(chunk)
            if self.expected_size is not None and self.written > self.expected_size:
                raise KlingServerError(f"download sent more than the announced {self.expected_size} bytes; discarded")

    def commit(self) -> None:
        """Verify, then publish atomically; on a failed check nothing is published."""
        try:
            if self.expected_size is not None and self.written != self.expected_size:
                raise KlingServerError(f"download incomplete: got {self.written} of {self.expected_size} bytes")
            problem = self.check.problem()
            if problem is not None:
                raise KlingServerError(f"downloaded file is {problem}")
            if self._upload is not None:
                self._upload.commit()  # CompleteMultipartUpload: the whole object appears at once
                self._upload = None
            elif _is_local(self.destination):
                os.replace(self.part, self.destination)
                _fsync_dir(self.destination.parent)
            else:
                self.part.rename(self.destination)
        except BaseException:
            self.discard()
            raise
        self._release_part()
        self._remove_stale_parts()

    def _remove_stale_parts(self) -> None:
        """Part files of this destination that an earlier attempt left: a killed process (SIGKILL,
        OOM, lost node) never reaches :meth:`discard`. A writer still at work is left alone: on a
        local disk it holds its part file's lock (dropped by the kernel when it dies); on object
        stores, which have no locks, only parts untouched since this download began are removed.
        Best effort: the video is saved. (On S3 the part objects of releases that renamed; killed
        multipart uploads are invisible and left to the bucket's lifecycle rule.)"""
        prefix = f".{self.destination.name}.part-"
        local = _is_local(self.destination)
        with contextlib.suppress(Exception):  # listing or stat may be unsupported by a store
            for sibling in list(self.destination.parent.iterdir()):
                if not sibling.name.startswith(prefix) or sibling.name == self.part.name:
                    continue
                with contextlib.suppress(Exception):
                    mtime = float(sibling.stat().st_mtime)
                    # Local mtimes are exact; a part created after this download began is never
                    # taken (its writer may not have locked it yet).
                    abandoned = (
                        mtime < self._started and _unlocked(sibling)
                        if local
                        else (mtime < self._started - _MTIME_SLACK)
                    )
                    if abandoned:
                        sibling.unlink()

    def discard(self) -> None:
        """Throw away what was written; never raises (the caller is already handling an error)."""
        self._release_part()
        upload, self._upload = self._upload, None
        if upload is not None:
            try:
                with contextlib.suppress(Exception):  # an upload left open is the lifecycle rule's
                    upload.discard()  # AbortMultipartUpload
            finally:
                # Closed for good: a later close() (the garbage collector's included) would flush,
                # and on a file whose upload never started that starts a new one.
                upload.closed = True
            return
        if self.staged:
            return
        try:
            if self.part.exists():
                self.part.unlink()
        except OSError:
            pass


def write_file_atomically(destination: Any, data: bytes, check: ContentCheck, conn_id: str | None = None) -> str:
    """Write ``data`` (a small file: a poster frame, a contact sheet) to a local path or
    object-storage URI the way videos are written: nothing under the final name until complete
    and checked. Returns the URI it is known by (:func:`destination_uri`)."""
    target = resolve_destination(destination, conn_id)
    writer = VerifiedWriter(target, len(data), check)
    writer.write_all([data])
    writer.commit()
    return str(destination_uri(target))


def write_small_file(destination: Any, data: bytes) -> None:
    """Replace a small file (a sidecar) whole: a reader finds the old content or the new, never part.

    Local disks: a hidden sibling, fsynced, then ``os.replace``. S3: one ``PutObject`` (all or
    nothing). Other object stores: a hidden part object, then a rename.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if _stages_in_place(destination):
        destination.fs.pipe_file(destination.path, data)
        return
    part = destination.with_name(f".{destination.name}.part-{uuid.uuid4().hex[:12]}")
    try:
        if _is_local(destination):
            with part.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(part, destination)
            _fsync_dir(destination.parent)
        else:
            part.write_bytes(data)
            part.rename(destination)
    except BaseException:
        with contextlib.suppress(Exception):
            part.unlink()
        raise


def read_small_file(path: Any, limit: int) -> bytes | None:
    """The whole file if it exists and holds at most ``limit`` bytes; else None."""
    _forget_cached_listing(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return bytes(data) if len(data) <= limit else None


def unwritable_reason(path: Any) -> str | None:
    """Why a local destination can never be written, or None: checked before anything is paid
    for, so a video is not bought only to find no place for it. The folders still to be made must
    hang off a folder this process may write in. (An object store's permissions show only when
    writing; it is not checked.)"""
    if not _is_local(path):
        return None
    ancestor = Path(os.path.abspath(path)).parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to write in {ancestor}"
    return None


def file_size(path: Any) -> int | None:
    """The size of a file, or None when there is none (a directory is not a file)."""
    try:
        if _is_local(path):
            return path.stat().st_size if path.is_file() else None
        _forget_cached_listing(path)
        info = path.fs.info(path.path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(info["size"]) if info.get("type") == "file" and info.get("size") is not None else None


def read_head(path: Any, size: int = 16) -> bytes:
    """The first bytes of a file (an MP4 header check)."""
    with path.open("rb") as handle:
        return bytes(handle.read(size))


def _forget_cached_listing(path: Any) -> None:
    """fsspec stores cache directory listings per process: another process (or this one, through
    another filesystem object) may have written since."""
    if not _is_local(path):
        with contextlib.suppress(Exception):
            path.fs.invalidate_cache(path.path)


def remove_file(path: Any) -> None:
    """Delete a file if it is there."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _unlocked(part: Path) -> bool:
    """No live writer holds this local part file's lock (see :meth:`VerifiedWriter._hold_part`)."""
    fd = os.open(part, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: a writer is at work
        return False
    finally:
        os.close(fd)  # also lets go of the probe's own lock
    return True


def _stages_in_place(destination: Any) -> bool:
    """Whether the store can hold the bytes under the final name unseen until committed."""
    return not _is_local(destination) and getattr(destination, "protocol", None) in _STAGED_PROTOCOLS


def _is_local(path: Any) -> bool:
    """A plain local path. (With universal-pathlib 0.2, as Airflow 3.0 was released with, an
    ObjectStoragePath subclasses ``pathlib.Path``: only its ``protocol`` tells it apart.)"""
    return isinstance(path, Path) and not hasattr(path, "protocol")


#: Public name, for the readers of saved files (kling_provider.video).
is_local = _is_local


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
