"""Segment sources: streams of ``Record`` batches read from JSON lines or Pinpoint CSV.

Every physical record of the source becomes exactly one ``Record``: unreadable ones
(malformed JSON or CSV, invalid UTF-8, longer than ``max_record_bytes``) carry an
``error`` instead of a definition, so the outcome log accounts for them too, and
reading goes on with the next record. Only a source that cannot be read at all (no
such file, access denied, corrupt gzip, an unreadable CSV header) raises
``SegmentError``.

Memory is bounded by configuration, not input: sources are read in blocks, a line over
``max_record_bytes`` (default 1 MiB, at most 64 MiB) is discarded without being held,
and Records come out in bounded batches.

Modules, in the order bytes flow through them:

* ``files`` (local file, named pipe, stdin) / ``s3`` + ``s3io`` (objects, prefixes,
  ranged ETag-pinned reads) / ``shards`` (fleet shards of an S3 segment): byte sources;
* ``streams``: gzip (by magic bytes), BOM, windows; ``lines``: the bounded splitter;
* ``jsonl`` / ``csv``: record builders; ``records``: the pipeline shared by all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dispatcher.errors import ConfigError
from dispatcher.segments.files import STDIN, FileSource
from dispatcher.segments.lines import (
    DEFAULT_MAX_RECORD_BYTES,
    MAX_MAX_RECORD_BYTES,
    MIN_MAX_RECORD_BYTES,
)
from dispatcher.segments.records import BATCH_SIZE, FORMATS, SegmentSource, detect_format


def open_source(
    spec: str, fmt: str | None = None, *, clients: Any = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> SegmentSource:  # fmt: skip
    """Open a segment source: ``-`` (standard input), a local path (file or named
    pipe) or ``s3://bucket/key`` (or a prefix of objects), read with ``clients``
    (``dispatcher.aws.AwsClients``). ``fmt`` defaults to the name's (``.csv[.gz]`` is
    CSV, else JSON lines; stdin: JSON lines)."""
    if spec == STDIN:
        return FileSource(STDIN, fmt, max_record_bytes=max_record_bytes)
    if spec.startswith("s3://"):
        from dispatcher.segments.s3 import S3Source

        if clients is None:
            raise ConfigError("an s3:// segment needs AWS clients")
        return S3Source(spec, clients, fmt=fmt, max_record_bytes=max_record_bytes)
    path = Path(spec)
    # Named pipes are welcome: a generator can stream a segment that is never stored.
    if not path.exists() or path.is_dir():
        raise ConfigError(f"segment source {spec!r} does not exist or is not a file")
    return FileSource(path, fmt, max_record_bytes=max_record_bytes)


__all__ = [
    "BATCH_SIZE",
    "DEFAULT_MAX_RECORD_BYTES",
    "FORMATS",
    "MAX_MAX_RECORD_BYTES",
    "MIN_MAX_RECORD_BYTES",
    "STDIN",
    "FileSource",
    "SegmentSource",
    "detect_format",
    "open_source",
]
