"""Local segments: a file, a named pipe, or standard input (``-``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from dispatcher.model import Record
from dispatcher.segments.lines import DEFAULT_MAX_RECORD_BYTES, check_max_record_bytes
from dispatcher.segments.records import (
    BATCH_SIZE,
    Batcher,
    batched,
    build_records,
    check_batch_size,
    check_format,
    detect_format,
    record_builder,
    text_stream,
)
from dispatcher.segments.streams import BLOCK_SIZE, FileReader

STDIN = "-"


class FileSource:
    """A local file or named pipe, plain or gzip-compressed (detected from the content,
    not the name), or standard input when ``path`` is ``"-"``; implements
    ``SegmentSource``.

    Reads happen on a worker thread, a block at a time. A pipe or stdin can be read
    once: calling ``batches()`` again reads on from where the last call stopped.
    """

    def __init__(
        self, path: Path | str, fmt: str | None = None, *, batch_size: int = BATCH_SIZE,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, block_size: int = BLOCK_SIZE,
    ) -> None:  # fmt: skip
        self.stdin = str(path) == STDIN and not isinstance(path, Path)
        self.path = Path(path)
        self.name = STDIN if self.stdin else str(path)
        self.format = check_format(fmt) or detect_format("" if self.stdin else self.path.name)
        self.batch_size = check_batch_size(batch_size)
        self.max_record_bytes = check_max_record_bytes(max_record_bytes)
        self.block_size = block_size
        self._raw: FileReader | None = None

    def progress(self) -> tuple[int, int] | None:
        """(bytes read, file size) while a regular file is read (a gzip file: its
        compressed bytes), for the percent and ETA of the progress line."""
        raw = self._raw
        return (raw.offset, raw.size) if raw is not None and raw.size else None

    def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        return self._batches(start_line)

    async def _batches(self, start_line: int) -> AsyncIterator[list[Record]]:
        if self.stdin:
            raw = FileReader.stdin(block_size=self.block_size)
        else:
            raw = await FileReader.open(self.path, block_size=self.block_size)
        self._raw = raw
        try:
            stream, _, _ = await text_stream(raw, self.name, block_size=self.block_size)
            builder = record_builder(self.format, self.name, 1, start_line=start_line,
                                     max_bytes=self.max_record_bytes)  # fmt: skip
            batcher = Batcher(self.batch_size)
            parts = build_records(stream, builder, fmt=self.format, max_bytes=self.max_record_bytes,
                                  batch_size=self.batch_size)  # fmt: skip
            async for batch in batched(parts, batcher):
                yield batch
            rest = batcher.rest()
            if rest:
                yield rest
        finally:
            await raw.aclose()


__all__ = ["STDIN", "FileSource"]
