"""Byte streams beneath the line splitter: local files, gzip, a leading BOM, windows.

Every stream is a pull ``ByteReader`` whose ``read()`` returns at most about one block
(``BLOCK_SIZE``) and ``b""`` at the end, so nothing here holds more than a block or
two, whatever the input. S3 objects are another ``ByteReader`` (``s3io.ObjectReader``).
"""

from __future__ import annotations

import fcntl
import os
import select
import stat
import threading
import zlib
from pathlib import Path
from typing import Any, Protocol

import anyio

from dispatcher.errors import SegmentError

BLOCK_SIZE = 1 << 20
"""Bytes read per call, and the most inflated bytes made at once."""
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
POLL_MS = 200
"""How often a worker thread waiting on a pipe checks whether the read was given up."""


class ByteReader(Protocol):
    """A pull stream of bytes: ``read()`` returns ``b""`` at the end."""

    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class FileReader:
    """A local file, named pipe or stdin, read in blocks on a worker thread.

    The event loop never waits on the file: a slow pipe stalls this source only. A
    pipe is polled with a timeout rather than read blindly, so a read given up (the
    source cancelled) frees its thread within ``POLL_MS`` instead of blocking it (and
    interpreter exit) until the writer sends more. A named pipe is opened
    non-blocking: opening never waits for a writer, reading does.
    """

    def __init__(self, fd: int, name: str, *, block_size: int = BLOCK_SIZE) -> None:
        self.name = name
        self._fd = fd
        self._block_size = block_size
        mode = os.fstat(fd).st_mode
        self._poll: Any = None  # select.poll for pipes, sockets and terminals
        if not stat.S_ISREG(mode):
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)
        if stat.S_ISFIFO(mode):
            _widen_pipe(fd, block_size)
        self.size = os.fstat(fd).st_size if stat.S_ISREG(mode) else None
        """The file's size (None for a pipe): with ``offset``, how far reading got."""
        self.offset = 0
        self._lock = threading.Lock()
        self._reading = False
        self._closing = False
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, block_size: int = BLOCK_SIZE) -> FileReader:
        """Open ``path`` (a file or named pipe); ``SegmentError`` if it cannot be."""

        def _open() -> int:
            flags = os.O_RDONLY | os.O_CLOEXEC
            if stat.S_ISFIFO(os.stat(path).st_mode):
                flags |= os.O_NONBLOCK
            return os.open(path, flags)

        try:
            fd = await anyio.to_thread.run_sync(_open)
        except OSError as exc:
            raise SegmentError(f"cannot open segment {str(path)!r}: {exc.strerror}") from exc
        return cls(fd, str(path), block_size=block_size)

    @classmethod
    def stdin(cls, *, block_size: int = BLOCK_SIZE) -> FileReader:
        """Standard input, through a duplicate descriptor (closing it keeps fd 0)."""
        try:
            fd = os.dup(0)
        except OSError as exc:
            raise SegmentError(f"cannot read standard input: {exc.strerror}") from exc
        os.set_inheritable(fd, False)
        return cls(fd, "-", block_size=block_size)

    async def read(self) -> bytes:
        if self._closing:
            return b""
        block = await anyio.to_thread.run_sync(self._read_block, abandon_on_cancel=True)
        self.offset += len(block)
        return block

    def _read_block(self) -> bytes:
        """On the worker thread: the next block, ``b""`` at the end or once closed."""
        with self._lock:
            if self._closing:
                return b""
            self._reading = True
        try:
            return self._read_ready() if self._poll is not None else self._read_os()
        except OSError as exc:
            raise SegmentError(f"cannot read segment {self.name!r}: {exc.strerror}") from exc
        finally:
            with self._lock:
                self._reading = False
                if self._closing:
                    self._close_fd()

    def _read_os(self) -> bytes:
        return os.read(self._fd, self._block_size)

    def _read_ready(self) -> bytes:
        """A pipe's next bytes: waits (polling) for the first, then takes what is
        there up to a block, so a fast writer is not read 64 KiB at a time."""
        pieces: list[bytes] = []
        size = 0
        timeout = POLL_MS
        while size < self._block_size:
            if self._closing or not self._poll.poll(timeout):
                if pieces or self._closing:
                    break
                continue
            try:
                piece = os.read(self._fd, self._block_size - size)
            except BlockingIOError:
                continue  # a spurious wake-up of a non-blocking pipe
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
            timeout = 0  # more only if it is there already
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _close_fd(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    async def aclose(self) -> None:
        # A read given up may still be on its thread: it closes the fd when it returns,
        # so the number is never reused under it.
        with self._lock:
            self._closing = True
            if not self._reading:
                self._close_fd()


def _widen_pipe(fd: int, size: int) -> None:
    """Ask for a pipe buffer of ``size`` (Linux): a fast writer then hands over a block
    per wake-up instead of 64 KiB, which makes reading a pipe several times faster."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (AttributeError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default works too


class Prefixed:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: ByteReader) -> None:
        self._head = head
        self._rest = rest

    async def read(self) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return await self._rest.read()

    async def aclose(self) -> None:
        await self._rest.aclose()


async def _peek(stream: ByteReader, n: int) -> bytes:
    """At least ``n`` bytes from ``stream`` (fewer only at its end)."""
    head = b""
    while len(head) < n:
        chunk = await stream.read()
        if not chunk:
            break
        head += chunk
    return head


class Gunzip:
    """Inflates a gzip stream (members concatenated, zero padding between them allowed,
    as ``gzip.GzipFile`` reads them) with at most ``block_size`` bytes made per step,
    so a small compressed block never becomes a huge buffer."""

    def __init__(self, raw: ByteReader, name: str, *, head: bytes = b"",
                 block_size: int = BLOCK_SIZE) -> None:  # fmt: skip
        self._raw = raw
        self._name = name
        self._block_size = block_size
        self._d: Any = None  # the current member's decompressor; None between members
        self._pending = head

    async def read(self) -> bytes:
        while True:
            if self._d is None:
                data = self._pending.lstrip(b"\x00")
                if not data:
                    self._pending = await self._raw.read()
                    if not self._pending:
                        return b""
                    continue
                self._d, self._pending = zlib.decompressobj(wbits=31), b""
            elif self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            else:
                data = await self._raw.read()
                if not data:
                    # Output held back by the max_length cap would come out here; zlib
                    # reads a member's trailer only after its last byte is out, so
                    # nothing coming out means the stream really is cut short.
                    held: bytes = self._d.decompress(b"", self._block_size)
                    if held:
                        return held
                    raise SegmentError(f"{self._name}: gzip data ends early (truncated?)")
            try:
                out: bytes = self._d.decompress(data, self._block_size)
            except zlib.error as exc:
                raise SegmentError(f"{self._name}: corrupt gzip data: {exc}") from exc
            if self._d.eof:
                self._pending, self._d = self._d.unused_data, None
            if out:
                return out

    async def aclose(self) -> None:
        await self._raw.aclose()


async def decoded(
    raw: ByteReader, name: str, *, block_size: int = BLOCK_SIZE
) -> tuple[ByteReader, bool]:
    """``raw`` inflated if it starts with the gzip magic bytes; and whether it did."""
    head = await _peek(raw, len(GZIP_MAGIC))
    if head.startswith(GZIP_MAGIC):
        return Gunzip(raw, name, head=head, block_size=block_size), True
    return Prefixed(head, raw), False


async def without_bom(stream: ByteReader) -> tuple[ByteReader, int]:
    """``stream`` without a leading UTF-8 BOM; and how many bytes were dropped."""
    head = await _peek(stream, len(BOM))
    if head.startswith(BOM):
        return Prefixed(head[len(BOM) :], stream), len(BOM)
    return Prefixed(head, stream), 0


class Window:
    """The bytes ``[start, end)`` of a stream that can only be read from its start."""

    def __init__(self, inner: ByteReader, start: int, end: int) -> None:
        self._inner = inner
        self._pos = 0
        self._start = start
        self._end = end

    async def read(self) -> bytes:
        while self._pos < self._end:
            chunk = await self._inner.read()
            if not chunk:
                break
            begin = self._pos
            self._pos += len(chunk)
            if self._pos > self._start:
                return chunk[max(self._start - begin, 0) : self._end - begin]
        await self._inner.aclose()  # no need to read (or inflate) the rest
        return b""

    async def aclose(self) -> None:
        await self._inner.aclose()


__all__ = [
    "BLOCK_SIZE",
    "BOM",
    "GZIP_MAGIC",
    "ByteReader",
    "FileReader",
    "Gunzip",
    "Prefixed",
    "Window",
    "decoded",
    "without_bom",
]
