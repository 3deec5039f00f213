"""Opening segment files: gzip is recognised by its magic bytes, not by the name."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO

from dispatcher.errors import SegmentError

GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for streaming reads, decompressing gzip transparently."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SegmentError(f"cannot open segment {str(path)!r}: {exc.strerror}") from exc
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw
