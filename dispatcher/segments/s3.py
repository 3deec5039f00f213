"""Segments in Amazon S3: one object, or every object under a prefix (a Pinpoint export).

``s3://bucket/key`` names one object; ``s3://bucket/prefix/`` (or a key that does not
exist but is a "folder") names every object under it, in key order, subfolders
included. Zero-byte "folder" objects and hidden markers (``_SUCCESS``, ``.keep``) are
skipped. Each object's format comes from its name (``.csv[.gz]`` is CSV, anything else
JSON lines) unless one is given; gzip is recognised by its magic bytes.

Objects are **streamed**: the body is read in ``chunk_size`` pieces, gzip is inflated
incrementally with bounded output, and lines are split across chunk boundaries, so
memory does not grow with the object. A body that breaks off mid-stream is resumed
with a ranged GET from the current offset, pinned to the listed ETag (``If-Match``).

Records come out exactly as the local readers make them (``parse_line``,
``column_setter``, ``parse_row``). ``Line`` is global across the objects of a prefix:
the nth line of their concatenation, each CSV header not counted, so one ``Line``
identifies one record of a multi-object source. Each object is a file of its own: a
UTF-8 BOM is dropped at the start of every object, and every CSV object has a header.
"""

from __future__ import annotations

import csv
import re
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
import anyio
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, SegmentError
from dispatcher.model import Record
from dispatcher.segments import BATCH_SIZE, FORMATS, detect_format
from dispatcher.segments._io import GZIP_MAGIC
from dispatcher.segments.csv import Setter, column_setter, parse_row
from dispatcher.segments.jsonl import BOM, parse_line

T = TypeVar("T")

CHUNK_SIZE = 1 << 20
"""Bytes asked of the HTTP body per read, and the most inflated bytes made at once."""
STREAM_ATTEMPTS = 4
"""Failed attempts in a row to get (or resume) one object before giving up."""
RESUME_PROGRESS = 1 << 20
"""Bytes that must arrive after a failure before the failures no longer count as in a row
(so a connection that always breaks after a few bytes cannot loop for ever)."""
RETRY_DELAY = 0.2
"""First back-off in seconds between attempts; doubles after each failure."""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    BotoConnectionError,  # connect errors and time-outs
    HTTPClientError,  # read time-outs, connection closed, body stream errors
    IncompleteReadError,  # the body ended before its Content-Length
    aiohttp.ClientPayloadError,
    TimeoutError,
)
TRANSIENT_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
     "ThrottlingException"}
)  # fmt: skip

_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "the object does not exist",
    "404": "not found",
    "NotFound": "not found",
    "AccessDenied": "access denied",
    "403": "access denied",
    "AllAccessDisabled": "access denied",
    "InvalidAccessKeyId": "the access key is not valid",
    "SignatureDoesNotMatch": "the request signature does not match (check the secret key)",
    "ExpiredToken": "the credentials have expired",
    "PreconditionFailed": "the object has changed since it was listed: its ETag differs",
    "InvalidRange": "the byte range is past the end of the object",
    "PermanentRedirect": "the bucket is in another region",
}


# -- URLs, errors ------------------------------------------------------------------------


def is_s3_url(spec: str) -> bool:
    """Whether ``spec`` names an S3 location rather than a local path."""
    return spec.startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
    if not is_s3_url(url):
        raise ConfigError(
            f"{url!r} is not an S3 URL; expected s3://bucket/key or s3://bucket/prefix/"
        )
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"{url!r} has no bucket name; expected s3://bucket/key")
    return bucket, key


def error_code(exc: ClientError) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchBucket``, ``403``...)."""
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def describe_s3_error(url: str, exc: BaseException) -> str:
    """A one-line message naming the location, what went wrong and the S3 error code."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        reason = _REASONS.get(code) or exc.response.get("Error", {}).get("Message") or "failed"
        return f"{url}: {reason} ({code})"
    if isinstance(exc, BotoCoreError):
        return f"{url}: {exc}"
    return f"{url}: {type(exc).__name__}: {exc}"


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: network trouble, throttling, 5xx."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or error_code(exc) in TRANSIENT_CODES
    return isinstance(exc, TRANSIENT_ERRORS)


async def backoff(failures: int) -> None:
    """Sleep before attempt ``failures + 1``."""
    await anyio.sleep(RETRY_DELAY * 2 ** (failures - 1))


S3_ERRORS: tuple[type[BaseException], ...] = (
    ClientError,
    BotoCoreError,
    aiohttp.ClientError,
    TimeoutError,
)
"""What an S3 call can raise: callers map these to the dispatcher's own errors."""


async def retrying(operation: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
    """``await operation(**kwargs)``, transient errors retried with jittered backoff
    (``STREAM_ATTEMPTS`` attempts in all); the last error is re-raised as it is."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(STREAM_ATTEMPTS),
        wait=wait_random_exponential(multiplier=RETRY_DELAY, max=5.0),
        reraise=True,
    ):
        with attempt:
            return await operation(**kwargs)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


# -- listing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Object:
    """One listed object: where it is, how big, and which version (ETag) was listed."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_data_key(key: str) -> bool:
    """Whether a listed key holds segment data (not a folder or a ``_SUCCESS`` marker)."""
    if key.endswith("/"):
        return False
    base = key.rsplit("/", 1)[-1]
    return not base.startswith(("_", "."))


async def _call(url: str, operation: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
    """One S3 call with the transient errors retried; others become ``SegmentError``."""
    try:
        return await retrying(operation, **kwargs)
    except S3_ERRORS as exc:
        raise SegmentError(describe_s3_error(url, exc)) from exc


async def _list_prefix(s3: Any, bucket: str, prefix: str) -> list[S3Object]:
    url = f"s3://{bucket}/{prefix}"
    objects: list[S3Object] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = await _call(url, s3.list_objects_v2, **kwargs)
        for item in page.get("Contents", ()):
            objects.append(S3Object(bucket, item["Key"], int(item["Size"]), item.get("ETag", "")))
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
    return objects


async def list_objects(url: str, clients: AwsClients) -> list[S3Object]:
    """The data objects a segment URL names, in key order.

    A URL ending in ``/`` (or naming only a bucket) is a prefix. Any other URL is one
    object; if no such object exists, it is read as the prefix ``key/``. A location
    with nothing at all under it is a ``SegmentError``; one holding only markers or
    empty objects is an empty segment.
    """
    bucket, key = parse_s3_url(url)
    s3 = await clients.client("s3")
    if key and not key.endswith("/"):
        try:
            head = await retrying(s3.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise SegmentError(describe_s3_error(url, exc)) from exc
        except S3_ERRORS as exc:
            raise SegmentError(describe_s3_error(url, exc)) from exc
        else:
            return [S3Object(bucket, key, int(head["ContentLength"]), head.get("ETag", ""))]
        key += "/"
    listed = await _list_prefix(s3, bucket, key)
    if not listed:
        raise SegmentError(f"{url}: no such object, and no objects under it")
    listed.sort(key=lambda o: o.key)
    return [o for o in listed if o.size > 0 and is_data_key(o.key)]


def object_format(key: str, fmt: str | None) -> str:
    """The format to read an object in: ``fmt`` if given, else from the key's extension."""
    if fmt is None:
        return detect_format(key)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown segment format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


# -- byte streams ----------------------------------------------------------------------------


class ByteReader(Protocol):
    """A pull stream of bytes: ``read()`` returns ``b""`` at the end."""

    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class ObjectReader:
    """The bytes ``[start, end)`` of one object (``end=None``: to its end), resumed
    after transient failures with a ranged GET from the current offset.

    ``get_object`` is pinned to the listed ETag (``If-Match``), so a resumed or ranged
    read never mixes two versions of an object.
    """

    def __init__(
        self, s3: Any, obj: S3Object, *, start: int = 0, end: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:  # fmt: skip
        self._s3 = s3
        self._obj = obj
        self._pos = start
        self._end = end
        self._chunk_size = chunk_size
        self._body: Any = None
        self._failures = 0
        self._since_failure = 0
        self._done = False
        self.requests = 0
        """GET requests made (the first and every resume)."""

    async def read(self) -> bytes:
        while not self._done and (self._end is None or self._pos < self._end):
            if self._body is None:
                self._body = await self._open()
                if self._body is None:
                    break
            size = (
                self._chunk_size
                if self._end is None
                else min(self._chunk_size, self._end - self._pos)
            )
            try:
                chunk: bytes = await self._body.read(size)
            except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
                await self._failed(exc)
                continue
            if not chunk:
                if self._end is None:
                    break  # the end of the object: aiobotocore checked Content-Length
                await self._failed(IncompleteReadError(
                    actual_bytes=self._pos, expected_bytes=self._end))  # fmt: skip
                continue
            self._pos += len(chunk)
            self._since_failure += len(chunk)
            if self._since_failure >= RESUME_PROGRESS:
                self._failures = 0
            return chunk
        self._done = True
        await self.aclose()
        return b""

    async def _open(self) -> Any:
        while True:
            kwargs: dict[str, Any] = {"Bucket": self._obj.bucket, "Key": self._obj.key}
            if self._obj.etag:
                kwargs["IfMatch"] = self._obj.etag
            if self._end is not None:
                kwargs["Range"] = f"bytes={self._pos}-{self._end - 1}"
            elif self._pos > 0:
                kwargs["Range"] = f"bytes={self._pos}-"
            self.requests += 1
            try:
                response = await self._s3.get_object(**kwargs)
            except ClientError as exc:
                if self._end is None and self._pos > 0 and error_code(exc) == "InvalidRange":
                    return None  # resumed exactly at the end of the object
                await self._failed(exc)
                continue
            except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
                await self._failed(exc)
                continue
            return response["Body"]

    async def _failed(self, exc: BaseException) -> None:
        await self.aclose()
        self._failures += 1
        self._since_failure = 0
        if not is_transient(exc) or self._failures >= STREAM_ATTEMPTS:
            raise SegmentError(describe_s3_error(self._obj.url, exc)) from exc
        await backoff(self._failures)

    async def aclose(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()


class _Prefixed:
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


class Gunzip:
    """Inflates a gzip stream (members concatenated, zero padding between them allowed,
    as ``gzip.GzipFile`` reads them) with at most ``chunk_size`` bytes made per step,
    so a small compressed chunk never becomes a huge buffer."""

    def __init__(self, raw: ByteReader, url: str, *, head: bytes = b"",
                 chunk_size: int = CHUNK_SIZE) -> None:  # fmt: skip
        self._raw = raw
        self._url = url
        self._chunk_size = chunk_size
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
                    # nothing coming out means the object really is cut short.
                    held: bytes = self._d.decompress(b"", self._chunk_size)
                    if held:
                        return held
                    raise SegmentError(f"{self._url}: gzip data ends early (truncated object?)")
            try:
                out: bytes = self._d.decompress(data, self._chunk_size)
            except zlib.error as exc:
                raise SegmentError(f"{self._url}: corrupt gzip data: {exc}") from exc
            if self._d.eof:
                self._pending, self._d = self._d.unused_data, None
            if out:
                return out

    async def aclose(self) -> None:
        await self._raw.aclose()


async def decoded(
    raw: ByteReader, url: str, *, chunk_size: int = CHUNK_SIZE
) -> tuple[ByteReader, bool]:
    """``raw`` inflated if it starts with the gzip magic bytes; and whether it did."""
    head = b""
    while len(head) < len(GZIP_MAGIC):
        chunk = await raw.read()
        if not chunk:
            break
        head += chunk
    if head.startswith(GZIP_MAGIC):
        return Gunzip(raw, url, head=head, chunk_size=chunk_size), True
    return _Prefixed(head, raw), False


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


# -- lines ----------------------------------------------------------------------------------

_UNIVERSAL_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")


class LineSplitter:
    """Splits a byte stream into lines, terminators kept, across chunk boundaries.

    JSON lines split at ``\\n`` only, as iterating over a binary file does. CSV splits
    at ``\\r\\n``, ``\\r`` and ``\\n``, as ``TextIOWrapper(newline="")`` does for the
    local reader; both bytes are ASCII, so splitting before decoding is the same.
    """

    def __init__(self, *, universal: bool) -> None:
        self._universal = universal
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        # Search only the new bytes (and a held-back \r): a long line stays linear.
        search_from = max(len(buf) - 1, 0)
        buf += data
        end = len(buf)
        if self._universal:
            if end and buf[end - 1] == 0x0D:
                end -= 1  # maybe the first half of \r\n: wait for the next byte
            cut = max(buf.rfind(b"\n", search_from, end), buf.rfind(b"\r", search_from, end)) + 1
        else:
            cut = buf.rfind(b"\n", search_from, end) + 1
        if cut == 0:
            return []
        head = bytes(buf[:cut])
        del buf[:cut]
        return self._split(head)

    def end(self) -> list[bytes]:
        """The last lines, the final one possibly without a terminator."""
        rest, self._buf = bytes(self._buf), bytearray()
        if not rest:
            return []
        lines = self._split(rest)
        consumed = sum(map(len, lines))
        if consumed < len(rest):
            lines.append(rest[consumed:])
        return lines

    def _split(self, head: bytes) -> list[bytes]:
        if self._universal:
            return _UNIVERSAL_LINE.findall(head)
        parts = head.split(b"\n")
        tail = parts.pop()
        lines = [p + b"\n" for p in parts]
        if tail:
            lines.append(tail)
        return lines


async def read_lines(stream: ByteReader, *, universal: bool) -> AsyncIterator[list[bytes]]:
    """The stream's lines, a list per chunk read (lists may be empty)."""
    splitter = LineSplitter(universal=universal)
    while True:
        chunk = await stream.read()
        if not chunk:
            break
        yield splitter.feed(chunk)
    yield splitter.end()


# -- CSV rows from pushed lines -------------------------------------------------------------


class _NeedMore(Exception):
    """Raised through ``csv.reader`` when a record continues past the lines fed so far."""


class _Feeder:
    """The line iterator behind ``csv.reader``: it never blocks, it asks for more."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque()
        self.taken: list[str] = []
        self.eof = False

    def __iter__(self) -> _Feeder:
        return self

    def __next__(self) -> str:
        if self.lines:
            line = self.lines.popleft()
            self.taken.append(line)
            return line
        if self.eof:
            raise StopIteration
        raise _NeedMore


CsvEvent = tuple[int, list[str] | None, str | None]
"""``(physical lines consumed so far, row, error)`` for one CSV record."""


class CsvRows:
    """One CSV object's records from lines pushed in as they arrive.

    The records are what the local reader's ``csv.reader(strict=True)`` makes of the
    same text, because the same reader parses them: when a quoted field continues past
    the lines available, the attempt is abandoned (``csv.reader`` starts every record
    afresh) and replayed once more lines are in. The first record is the header.
    After a malformed record the rest of the object is not records, as locally.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._feeder = _Feeder()
        self._reader = csv.reader(self._feeder, strict=True)
        self._decode_first = True
        self._header_raw: list[bytes] = []
        self.fed = 0
        """Physical lines pushed in so far, header included."""
        self.consumed = 0
        """Physical lines of finished records (and the header)."""
        self.header: list[str] | None = None
        self.setters: list[Setter] = []
        self.header_lines = 0
        self.header_raw = b""
        """The header's bytes as they are in the object (a BOM included)."""
        self.stopped = False

    def feed(self, lines: list[bytes]) -> list[CsvEvent]:
        if not lines:
            return []
        self.fed += len(lines)
        if self.stopped:
            return []
        if self.header is None:
            self._header_raw.extend(lines)
        decoded = self._feeder.lines
        if self._decode_first:
            # utf-8-sig drops a BOM at the start of the object only, as TextIOWrapper does.
            self._decode_first = False
            decoded.append(lines[0].decode("utf-8-sig", "surrogateescape"))
            lines = lines[1:]
        decoded.extend(line.decode("utf-8", "surrogateescape") for line in lines)
        return list(self._records())

    def end(self) -> list[CsvEvent]:
        self._feeder.eof = True
        return [] if self.stopped else list(self._records())

    def _records(self) -> Iterator[CsvEvent]:
        feeder = self._feeder
        while not self.stopped:
            feeder.taken.clear()
            try:
                row = next(self._reader)
            except _NeedMore:
                feeder.lines.extendleft(reversed(feeder.taken))
                return
            except StopIteration:
                self.stopped = True
                return
            except csv.Error as exc:
                self.consumed += len(feeder.taken)
                if self.header is None:
                    raise SegmentError(f"{self._url}: unreadable CSV header: {exc}") from exc
                self.stopped = True
                feeder.lines.clear()
                yield self.consumed, None, f"malformed CSV: {exc}"
                return
            self.consumed += len(feeder.taken)
            if self.header is None:
                self._set_header(row)
                continue
            yield self.consumed, row, None

    def _set_header(self, row: list[str]) -> None:
        self.header = [h.strip() for h in row]
        try:
            self.setters = [column_setter(h) for h in self.header]
        except SegmentError as exc:
            raise SegmentError(f"{self._url}: {exc}") from exc
        self.header_lines = self.consumed
        self.header_raw = b"".join(self._header_raw[: self.consumed])
        self._header_raw = []


# -- records ----------------------------------------------------------------------------------


class RecordBuilder(Protocol):
    """Turns one object's (or shard's) lines into Records."""

    records: int
    """Records seen, including those before ``start_line``."""

    @property
    def lines(self) -> int:
        """Lines this object adds to the global count (a CSV header not counted)."""

    def feed(self, lines: list[bytes]) -> list[Record]: ...

    def end(self) -> list[Record]: ...


class JsonlBuilder:
    """JSON lines: blank lines are not records but keep their numbers, as locally."""

    def __init__(self, first_line: int, *, at_object_start: bool, start_line: int = 1) -> None:
        self._next = first_line
        self._first_line = first_line
        self._strip_bom = at_object_start
        self._start_line = start_line
        self.records = 0

    @property
    def lines(self) -> int:
        return self._next - self._first_line

    def feed(self, lines: list[bytes]) -> list[Record]:
        out: list[Record] = []
        n = self._next
        start_line = self._start_line
        for raw in lines:
            if self._strip_bom:
                self._strip_bom = False
                if raw.startswith(BOM):
                    raw = raw[len(BOM) :]
            if raw.strip():
                self.records += 1
                if n >= start_line:
                    out.append(parse_line(n, raw))
            n += 1
        self._next = n
        return out

    def end(self) -> list[Record]:
        return []


class CsvBuilder:
    """Pinpoint CSV: ``Line`` is the physical line minus one (the header), as locally.

    ``header`` (the header's raw bytes) is given for a shard that starts after it; the
    first line fed then gets ``first_line``. Without it, the header is read from the
    stream and the object's first data line gets ``first_line + header lines - 1``.
    """

    def __init__(self, url: str, first_line: int, *, header: bytes | None = None,
                 start_line: int = 1) -> None:  # fmt: skip
        self._rows = CsvRows(url)
        self._start_line = start_line
        self.records = 0
        if header is not None:
            splitter = LineSplitter(universal=True)
            head_lines = splitter.feed(header) + splitter.end()
            self._rows.feed(head_lines)
            if self._rows.header is None or self._rows.consumed != len(head_lines):
                raise SegmentError(f"{url}: the shard's CSV header is not one complete record")
            # Line = _base + physical line: the first line after the header is first_line.
            self._base = first_line - len(head_lines) - 1
            self._fed_before = len(head_lines)
        else:
            # The local reader's Line is the physical line minus one (the header).
            self._base = first_line - 2
            self._fed_before = 0

    @property
    def lines(self) -> int:
        fed = self._rows.fed - self._fed_before
        if self._fed_before:
            return fed
        return max(fed - 1, 0)

    def feed(self, lines: list[bytes]) -> list[Record]:
        return self._records(self._rows.feed(lines))

    def end(self) -> list[Record]:
        return self._records(self._rows.end())

    def _records(self, events: list[CsvEvent]) -> list[Record]:
        out: list[Record] = []
        rows = self._rows
        header = rows.header or []
        for phys, row, error in events:
            if row is not None and not row:
                continue  # a blank line: not a record, as locally
            self.records += 1
            line = self._base + phys
            if line < self._start_line:
                continue
            if error is not None:
                out.append(Record(line, None, None, error))
            else:
                assert row is not None
                out.append(parse_row(line, row, header, rows.setters))
        return out


def record_builder(
    fmt: str, url: str, first_line: int, *, at_object_start: bool = True,
    header: bytes | None = None, start_line: int = 1,
) -> RecordBuilder:  # fmt: skip
    if fmt == "csv":
        return CsvBuilder(url, first_line, header=header, start_line=start_line)
    return JsonlBuilder(first_line, at_object_start=at_object_start, start_line=start_line)


async def build_records(
    stream: ByteReader, builder: RecordBuilder, *, universal: bool, batch_size: int
) -> AsyncIterator[list[Record]]:
    """Lists of at most ``batch_size`` Records (the caller joins them into batches).

    Lines go to the parser ``batch_size`` at a time: a 1 MiB chunk holds ~20,000 lines,
    and as many live Records at once would make the garbage collector's passes (and the
    whole read) about twice as slow.
    """
    async for lines in read_lines(stream, universal=universal):
        for i in range(0, len(lines), batch_size):
            records = builder.feed(lines[i : i + batch_size])
            if records:
                yield records
    records = builder.end()
    for i in range(0, len(records), batch_size):
        yield records[i : i + batch_size]


class Batcher:
    """Gathers records into batches of exactly ``batch_size`` (the last one smaller)."""

    def __init__(self, batch_size: int) -> None:
        self._size = batch_size
        self._batch: list[Record] = []

    def add(self, records: list[Record]) -> Iterator[list[Record]]:
        batch = self._batch
        for r in records:
            batch.append(r)
            if len(batch) >= self._size:
                yield batch
                batch = self._batch = []

    def rest(self) -> list[Record]:
        batch, self._batch = self._batch, []
        return batch


# -- the source ------------------------------------------------------------------------------


class S3Source:
    """A segment in S3 (one object or a prefix), streamed; implements ``SegmentSource``."""

    def __init__(
        self, url: str, clients: AwsClients, fmt: str | None = None, *,
        batch_size: int = BATCH_SIZE, chunk_size: int = CHUNK_SIZE,
    ) -> None:  # fmt: skip
        parse_s3_url(url)
        if fmt is not None:
            object_format("", fmt)
        if batch_size < 1:
            raise ConfigError(f"'batch_size' must be > 0, got {batch_size}")
        if chunk_size < 1:
            raise ConfigError(f"'chunk_size' must be > 0, got {chunk_size}")
        self.url = url
        self.name = url
        self.format = fmt
        self.clients = clients
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self._objects: list[S3Object] | None = None

    async def objects(self) -> list[S3Object]:
        """The objects read, listed once (call it early to fail before any work)."""
        if self._objects is None:
            self._objects = await list_objects(self.url, self.clients)
        return self._objects

    def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        return self._batches(start_line)

    async def _batches(self, start_line: int) -> AsyncIterator[list[Record]]:
        s3 = await self.clients.client("s3")
        batcher = Batcher(self.batch_size)
        base = 0
        for obj in await self.objects():
            fmt = object_format(obj.key, self.format)
            raw = ObjectReader(s3, obj, chunk_size=self.chunk_size)
            stream, _ = await decoded(raw, obj.url, chunk_size=self.chunk_size)
            builder = record_builder(fmt, obj.url, base + 1, start_line=start_line)
            try:
                async for records in build_records(
                    stream, builder, universal=fmt == "csv", batch_size=self.batch_size
                ):
                    for batch in batcher.add(records):
                        yield batch
            finally:
                await stream.aclose()
            base += builder.lines
        rest = batcher.rest()
        if rest:
            yield rest


__all__ = [
    "CHUNK_SIZE",
    "S3Object",
    "S3Source",
    "describe_s3_error",
    "is_s3_url",
    "list_objects",
    "parse_s3_url",
]
