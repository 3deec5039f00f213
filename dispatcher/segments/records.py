"""The shared half of every source: bytes -> lines -> Records -> batches.

Whatever the bytes come from (a local file, a pipe, stdin, an S3 object or a shard of
one), they go through the same stages::

    ByteReader -> decoded() (gzip by magic bytes) -> without_bom() -> LineSplitter
               -> JsonlBuilder / CsvBuilder -> Batcher -> list[Record]

so every source makes exactly the same Records of the same bytes. Each stage holds at
most a block or one bounded line; nothing grows with the input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol

import anyio

from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.segments.csv import CsvBuilder
from dispatcher.segments.jsonl import JsonlBuilder
from dispatcher.segments.lines import Line, LineSplitter
from dispatcher.segments.streams import BLOCK_SIZE, ByteReader, decoded, without_bom

FORMATS = ("jsonl", "csv")
BATCH_SIZE = 1024


class SegmentSource(Protocol):
    """A segment that can be read, from its start or from a given line on."""

    name: str

    def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]: ...


def detect_format(name: str) -> str:
    """The format implied by a file name: ``.csv[.gz]`` is CSV, anything else JSON lines.

    Pinpoint exports are gzip-compressed JSON lines (``*.gz``), so an unknown or bare
    ``.gz`` extension means JSON lines.
    """
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return "csv" if lower.endswith(".csv") else "jsonl"


def check_format(fmt: str | None) -> str | None:
    """``fmt`` if it is a known format (or None: from the name), else a ``ConfigError``."""
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown segment format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def check_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise ConfigError(f"'batch_size' must be > 0, got {batch_size}")
    return batch_size


class RecordBuilder(Protocol):
    """Turns one stream's physical lines into Records."""

    records: int
    """Records seen, including those before ``start_line``."""

    @property
    def lines(self) -> int:
        """Lines this stream adds to the global count (a CSV header not counted)."""

    def feed(self, lines: Sequence[Line]) -> list[Record]: ...


def record_builder(
    fmt: str, name: str, first_line: int, *, max_bytes: int,
    header: bytes | None = None, start_line: int = 1,
) -> RecordBuilder:  # fmt: skip
    """The builder for ``fmt``; ``header`` is a CSV shard's header (see ``CsvBuilder``)."""
    if fmt == "csv":
        return CsvBuilder(name, first_line, header=header, start_line=start_line,
                          max_bytes=max_bytes)  # fmt: skip
    return JsonlBuilder(first_line, start_line=start_line, max_bytes=max_bytes)


async def text_stream(
    raw: ByteReader, name: str, *, block_size: int = BLOCK_SIZE
) -> tuple[ByteReader, bool, int]:
    """A whole object's or file's bytes ready to split: inflated if gzip, a leading BOM
    dropped; and whether it was gzip, and how many BOM bytes were dropped."""
    stream, gzip = await decoded(raw, name, block_size=block_size)
    stream, bom = await without_bom(stream)
    return stream, gzip, bom


def lines_added(fmt: str, lines: int, bom: int) -> int:
    """The lines an object adds to a prefix's global ``Line`` count, given the lines its
    builder (or planner) saw after a dropped BOM of ``bom`` bytes.

    A JSON-lines object holding a BOM and nothing else has always counted as one
    (blank) line; kept so, because ``Line`` identifies records across runs.
    """
    if fmt == "jsonl" and bom and not lines:
        return 1
    return lines


async def lines_of(stream: ByteReader, *, fmt: str, max_bytes: int) -> AsyncIterator[list[Line]]:
    """The stream's physical lines, a list per block read (lists may be empty)."""
    splitter = LineSplitter(universal=fmt == "csv", max_bytes=max_bytes)
    while True:
        block = await stream.read()
        if not block:
            break
        yield splitter.feed(block)
    yield splitter.end()


async def build_records(
    stream: ByteReader, builder: RecordBuilder, *, fmt: str, max_bytes: int, batch_size: int
) -> AsyncIterator[list[Record]]:
    """Lists of at most ``batch_size`` Records (the caller joins them into batches).

    Lines go to the parser ``batch_size`` at a time: a 1 MiB block holds ~3,000-20,000
    lines, and as many live Records at once would make the garbage collector's passes
    (and the whole read) markedly slower.
    """
    async for lines in lines_of(stream, fmt=fmt, max_bytes=max_bytes):
        for i in range(0, len(lines), batch_size):
            records = builder.feed(lines[i : i + batch_size])
            if records:
                yield records


class Batcher:
    """Gathers records into batches of exactly ``batch_size`` (the last one smaller)."""

    def __init__(self, batch_size: int) -> None:
        self._size = batch_size
        self._batch: list[Record] = []

    def add(self, records: list[Record]) -> Iterator[list[Record]]:
        size = self._size
        if not self._batch and len(records) == size:
            yield records  # the usual case: a slice of batch_size lines, no blank among them
            return
        i = 0
        while i < len(records):
            take = size - len(self._batch)
            self._batch.extend(records[i : i + take])
            i += take
            if len(self._batch) >= size:
                batch, self._batch = self._batch, []
                yield batch

    def rest(self) -> list[Record]:
        batch, self._batch = self._batch, []
        return batch


async def batched(
    parts: AsyncIterator[list[Record]], batcher: Batcher
) -> AsyncIterator[list[Record]]:
    """``parts`` regrouped by ``batcher`` (its rest is left for the caller to take).

    A checkpoint after each batch keeps the event loop turning even when the consumer
    never awaits and the bytes come from a page-cached file.
    """
    async for records in parts:
        for batch in batcher.add(records):
            yield batch
            await anyio.lowlevel.checkpoint()


__all__ = [
    "BATCH_SIZE",
    "FORMATS",
    "Batcher",
    "RecordBuilder",
    "SegmentSource",
    "batched",
    "build_records",
    "check_batch_size",
    "check_format",
    "detect_format",
    "lines_added",
    "lines_of",
    "record_builder",
    "text_stream",
]
