"""Shard planning for the fleet: a segment in S3 split into jobs that workers read alone.

``plan_shards`` reads the segment once (streaming, as ``S3Source`` does) and cuts it
every ``target_records`` records, on record boundaries, never across objects:

* a plain object is cut into byte ranges; a worker reads its shard with one ranged GET;
* a gzip object has no random access: its shards are ranges of the *inflated* bytes, and
  a worker inflates the object from its start, skips to the shard and stops at its end;
* a CSV shard carries its object's header, so a worker needs no other part of the file.

A CSV record is one physical line (see ``segments.csv``), so a cut after any line is a
cut between records, and planning needs no CSV parsing beyond the header. A line over
``max_record_bytes`` is counted from its size alone: planning holds no line whole.

Every shard carries the ETag its object had when planned: a worker reads that version
(``If-Match``) or fails, never another one. The concatenation of all shards' records
is exactly ``S3Source(url).batches()``: the same lines, ids, definitions and errors.

A ``Shard`` travels in an SQS message as ``to_json()``; see ``Shard.to_json``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, SegmentError
from dispatcher.model import Record
from dispatcher.segments.csv import CsvHeader
from dispatcher.segments.csv import is_record as is_csv_record
from dispatcher.segments.jsonl import is_record as is_jsonl_record
from dispatcher.segments.lines import (
    DEFAULT_MAX_RECORD_BYTES,
    Overlong,
    check_max_record_bytes,
)
from dispatcher.segments.records import (
    BATCH_SIZE,
    FORMATS,
    Batcher,
    batched,
    build_records,
    check_batch_size,
    lines_added,
    lines_of,
    record_builder,
    text_stream,
)
from dispatcher.segments.s3 import list_objects, object_format
from dispatcher.segments.s3io import CHUNK_SIZE, ObjectReader, S3Object
from dispatcher.segments.streams import BOM, ByteReader, Window, decoded, without_bom

DEFAULT_TARGET_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class Shard:
    """One worker's part of a segment: a record-aligned byte range of one object.

    ``start``/``end`` are offsets in the object's bytes, or in its inflated bytes when
    ``gzip`` is true. ``first_line`` is the global ``Line`` of the range's first line and
    ``last_line`` that of its last record: every record of the shard has a ``Line`` in
    ``[first_line, last_line]``, and no other shard's records do. (Blank lines make
    ``last_line - first_line + 1`` larger than ``records``.)
    ``header`` is the raw header of a CSV object (``None`` for JSON lines).
    """

    index: int
    bucket: str
    key: str
    etag: str
    format: str
    gzip: bool
    start: int
    end: int
    first_line: int
    last_line: int
    records: int
    header: bytes | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_json(self) -> dict[str, Any]:
        """The shard as a small JSON object, e.g.::

            {"Index": 3, "Bucket": "b", "Key": "exports/part-0001.csv", "ETag": "\\"9b2c...\\"",
             "Format": "csv", "Gzip": false, "Bytes": [52110, 104370], "FirstLine": 1501,
             "LastLine": 2003, "Records": 500, "Header": "Id,ChannelType,Address\\r\\n"}

        ``Header`` is left out for JSON lines, and becomes ``HeaderBase64`` when the
        header bytes are not valid UTF-8.
        """
        data: dict[str, Any] = {
            "Index": self.index,
            "Bucket": self.bucket,
            "Key": self.key,
            "ETag": self.etag,
            "Format": self.format,
            "Gzip": self.gzip,
            "Bytes": [self.start, self.end],
            "FirstLine": self.first_line,
            "LastLine": self.last_line,
            "Records": self.records,
        }
        if self.header is not None:
            try:
                data["Header"] = self.header.decode("utf-8")
            except UnicodeDecodeError:
                data["HeaderBase64"] = base64.b64encode(self.header).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | bytes | str) -> Shard:
        """Read ``to_json()`` back (a mapping, or its JSON text); ``SegmentError`` if malformed."""
        try:
            if isinstance(data, (bytes, str)):
                data = orjson.loads(data)
            if not isinstance(data, Mapping):
                raise TypeError("expected a JSON object")
            start, end = data["Bytes"]
            header: bytes | None = None
            if "Header" in data:
                header = _str(data, "Header").encode("utf-8")
            elif "HeaderBase64" in data:
                header = base64.b64decode(_str(data, "HeaderBase64"), validate=True)
            gzip = data["Gzip"]
            if not isinstance(gzip, bool):
                raise TypeError("Gzip must be true or false")
            shard = cls(
                index=_int(data, "Index"), bucket=_str(data, "Bucket"), key=_str(data, "Key"),
                etag=_str(data, "ETag"), format=_str(data, "Format"), gzip=gzip,
                start=_int({"Bytes": start}, "Bytes"), end=_int({"Bytes": end}, "Bytes"),
                first_line=_int(data, "FirstLine"), last_line=_int(data, "LastLine"),
                records=_int(data, "Records"), header=header,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise SegmentError(f"malformed shard: {exc!r}") from exc
        if shard.format not in FORMATS:
            raise SegmentError(f"malformed shard: unknown Format {shard.format!r}")
        if (
            not 0 <= shard.start <= shard.end
            or shard.first_line < 1
            or shard.records < 0
            or shard.last_line < shard.first_line - (shard.records == 0)
        ):
            raise SegmentError(f"malformed shard: bad Bytes/Lines/Records in {data!r}")
        if (shard.format == "csv") != (shard.header is not None):
            raise SegmentError("malformed shard: a CSV shard needs a Header, JSON lines none")
        return shard


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} must be an integer")
    return value


# -- planning ---------------------------------------------------------------------------------


class _Cuts:
    """Collects one object's shards as records are counted."""

    def __init__(self, obj: S3Object, fmt: str, target: int, first_index: int) -> None:
        self.obj = obj
        self.fmt = fmt
        self.target = target
        self.next_index = first_index
        self.gzip = False
        self.header: bytes | None = None
        self.shards: list[Shard] = []
        self._start = 0
        self._first_line = 0
        self._last_line = 0
        self._count = 0

    def begin(self, start: int, first_line: int) -> None:
        self._start, self._first_line, self._count = start, first_line, 0

    def record(self, line: int, end: int) -> None:
        """Record ``line`` ended at byte ``end``; cut there if the shard is full. The
        next shard starts on the following line."""
        self._count += 1
        self._last_line = line
        if self._count >= self.target:
            self._emit(end)
            self.begin(end, line + 1)

    def finish(self, end: int) -> None:
        if self._count:
            self._emit(end)

    def _emit(self, end: int) -> None:
        o = self.obj
        self.shards.append(Shard(
            self.next_index, o.bucket, o.key, o.etag, self.fmt, self.gzip,
            self._start, end, self._first_line, self._last_line, self._count, self.header,
        ))  # fmt: skip
        self.next_index += 1


async def _plan_object(
    stream: ByteReader, cuts: _Cuts, base: int, *, bom: int, max_bytes: int
) -> int:
    """Cut one object after whole records; returns the lines it adds to the global
    count (a CSV header not counted). ``bom``: bytes dropped before ``stream``."""
    is_csv = cuts.fmt == "csv"
    is_record = is_csv_record if is_csv else is_jsonl_record
    need_header = is_csv
    pos = bom  # offsets are in the object's (inflated) bytes, BOM included
    line = base  # the global Line of the last line seen
    cuts.begin(0, base + 1)
    async for lines in lines_of(stream, fmt=cuts.fmt, max_bytes=max_bytes):
        for raw in lines:
            pos += raw.size if isinstance(raw, Overlong) else len(raw)
            if need_header:
                need_header = False
                if isinstance(raw, Overlong):
                    raise SegmentError(f"{cuts.obj.url}: the CSV header is over the "
                                       f"{max_bytes}-byte limit")  # fmt: skip
                cuts.header = BOM[:bom] + raw
                CsvHeader(cuts.obj.url, cuts.header)  # an unreadable header fails now
                cuts.begin(pos, base + 1)
                continue
            line += 1
            if is_record(raw):
                cuts.record(line, pos)
    cuts.finish(pos)
    return lines_added(cuts.fmt, line - base, bom)


async def plan_shards(
    source_url: str, clients: AwsClients, *, target_records: int = DEFAULT_TARGET_RECORDS,
    fmt: str | None = None, chunk_size: int = CHUNK_SIZE,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> list[Shard]:  # fmt: skip
    """Read the segment at ``source_url`` once and cut it into shards of about
    ``target_records`` records each (fewer at the end of each object).

    Objects without records (blank lines only, a CSV header only) get no shard.
    ``max_record_bytes`` bounds the planner's memory only: a shard holds the same
    records whatever limit its reader uses.
    """
    if target_records < 1:
        raise ConfigError(f"'target_records' must be > 0, got {target_records}")
    check_max_record_bytes(max_record_bytes)
    objects = await list_objects(source_url, clients)
    s3 = await clients.client("s3")
    shards: list[Shard] = []
    base = 0
    for obj in objects:
        raw = ObjectReader(s3, obj, chunk_size=chunk_size)
        cuts = _Cuts(obj, object_format(obj.key, fmt), target_records, len(shards))
        try:
            stream, cuts.gzip, bom = await text_stream(raw, obj.url, block_size=chunk_size)
            base += await _plan_object(stream, cuts, base, bom=bom, max_bytes=max_record_bytes)
        finally:
            await raw.aclose()
        shards.extend(cuts.shards)
    return shards


# -- reading one shard ------------------------------------------------------------------------


class ShardSource:
    """Exactly one shard's records; implements ``SegmentSource``.

    A plain object is read with one ranged GET (``Range: bytes=start-(end-1)``); a gzip
    one is inflated from its start up to the shard's end. The record count is checked
    against the plan: a mismatch means the plan and the reader disagree, and is a
    ``SegmentError`` rather than a silently different run.
    """

    def __init__(
        self, shard: Shard, clients: AwsClients, *, batch_size: int = BATCH_SIZE,
        chunk_size: int = CHUNK_SIZE, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:  # fmt: skip
        self.shard = shard
        self.clients = clients
        self.name = f"{shard.url}#shard-{shard.index}"
        self.batch_size = check_batch_size(batch_size)
        self.chunk_size = chunk_size
        self.max_record_bytes = check_max_record_bytes(max_record_bytes)

    def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        return self._batches(start_line)

    async def _open(self, raw: ObjectReader) -> ByteReader:
        """The shard's bytes: a BOM dropped only where the object starts."""
        sh = self.shard
        stream: ByteReader = raw
        if sh.gzip:
            stream, gzip = await decoded(raw, sh.url, block_size=self.chunk_size)
            if not gzip:
                raise SegmentError(f"{self.name}: the object is no longer gzip-compressed")
            stream = Window(stream, sh.start, sh.end)
        if sh.start == 0:
            stream, _ = await without_bom(stream)
        return stream

    async def _batches(self, start_line: int) -> AsyncIterator[list[Record]]:
        sh = self.shard
        if sh.end <= sh.start or start_line > sh.last_line:
            return  # nothing to read: no GET at all
        max_bytes = self.max_record_bytes
        builder = record_builder(sh.format, sh.url, sh.first_line, header=sh.header,
                                 start_line=start_line, max_bytes=max_bytes)  # fmt: skip
        batcher = Batcher(self.batch_size)
        s3 = await self.clients.client("s3")
        obj = S3Object(sh.bucket, sh.key, -1, sh.etag)  # the size is not needed
        if sh.gzip:
            raw = ObjectReader(s3, obj, chunk_size=self.chunk_size)
        else:
            raw = ObjectReader(s3, obj, start=sh.start, end=sh.end, chunk_size=self.chunk_size)
        try:
            stream = await self._open(raw)
            parts = build_records(stream, builder, fmt=sh.format, max_bytes=max_bytes,
                                  batch_size=self.batch_size)  # fmt: skip
            async for batch in batched(parts, batcher):
                yield batch
        finally:
            await raw.aclose()
        if builder.records != sh.records:
            raise SegmentError(
                f"{self.name}: read {builder.records} records, the plan says {sh.records}"
            )
        rest = batcher.rest()
        if rest:
            yield rest


__all__ = ["DEFAULT_TARGET_RECORDS", "Shard", "ShardSource", "plan_shards"]
