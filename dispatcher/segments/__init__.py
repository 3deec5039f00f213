"""Segment sources: streams of ``Record`` batches read from JSON lines or Pinpoint CSV.

Every physical record of the source becomes exactly one ``Record``: unreadable ones
carry an ``error`` instead of a definition, so the outcome log accounts for them too.
Memory does not grow with the segment: sources are read in bounded batches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.segments.csv import read_csv
from dispatcher.segments.jsonl import read_jsonl

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


class FileSource:
    """A local file, plain or gzip-compressed (detected from the content, not the name)."""

    def __init__(self, path: Path, fmt: str | None = None, *, batch_size: int = BATCH_SIZE):
        self.path = path
        self.name = str(path)
        self.format = fmt or detect_format(path.name)
        if self.format not in FORMATS:
            raise ConfigError(f"unknown segment format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.batch_size = batch_size

    def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        reader = read_csv if self.format == "csv" else read_jsonl
        return reader(self.path, batch_size=self.batch_size, start_line=start_line)


def open_source(spec: str, fmt: str | None = None, *, clients: Any = None) -> SegmentSource:
    """Open a segment source: a local path (file or named pipe) or ``s3://bucket/key``
    (or a prefix of objects), read with ``clients`` (``dispatcher.aws.AwsClients``)."""
    if spec.startswith("s3://"):
        from dispatcher.segments.s3 import S3Source

        if clients is None:
            raise ConfigError("an s3:// segment needs AWS clients")
        return S3Source(spec, clients, fmt=fmt)
    path = Path(spec)
    # Named pipes are welcome: a generator can stream a segment that is never stored.
    if not path.exists() or path.is_dir():
        raise ConfigError(f"segment source {spec!r} does not exist or is not a file")
    return FileSource(path, fmt)


__all__ = ["FORMATS", "FileSource", "SegmentSource", "detect_format", "open_source"]
