"""An independent model of a segment's physical records, for property tests.

Written from the documented rules, with none of the reader's code: split the (inflated)
bytes with ``re``, drop one leading BOM, and call a line a record unless it is blank
(JSON lines: ASCII whitespace only; CSV: empty). A CSV's first line is its header and
``Line`` is the physical line number minus one.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from dispatcher.model import Record
from dispatcher.segments.lines import over_limit

BOM = b"\xef\xbb\xbf"
_UNIVERSAL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Expected:
    line: int
    content: bytes
    """The line's bytes, terminator not included."""
    over: bool
    """Longer than the limit: the Record must say so."""


def physical_lines(data: bytes, fmt: str) -> list[bytes]:
    """The lines without terminators (JSON lines end at \\n only; a \\r before it is
    part of the terminator, as for the limit)."""
    data = data.removeprefix(BOM)
    if fmt == "csv":
        parts = _UNIVERSAL.split(data)
    else:
        parts = data.split(b"\n")
        parts = [p[:-1] if p.endswith(b"\r") else p for p in parts[:-1]] + parts[-1:]
    if parts[-1] == b"":
        parts.pop()  # the data ended with a terminator (or was empty)
    return parts


def line_count(data: bytes, fmt: str) -> int:
    """Lines an object adds to a prefix's global count: its CSV header not counted, and
    a JSON-lines object that is only a BOM counting one blank line (as it always has)."""
    n = len(physical_lines(data, fmt))
    if fmt == "csv":
        return max(n - 1, 0)
    return 1 if n == 0 and data == BOM else n


def _raw_jsonl_lines(data: bytes) -> list[bytes]:
    """JSON lines as split at \\n only, each without its \\n (the blank test needs the
    \\r that ``physical_lines`` treats as terminator)."""
    parts = data.removeprefix(BOM).split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return parts


def expected_records(data: bytes, fmt: str, max_bytes: int) -> list[Expected]:
    """Every record the reader must produce, in order."""
    lines = physical_lines(data, fmt)
    if fmt == "csv":
        return [
            Expected(i, line, len(line) > max_bytes)
            for i, line in enumerate(lines[1:], 1)
            if line  # an empty line is blank
        ]
    raw = _raw_jsonl_lines(data)
    return [
        Expected(i, line, len(line) > max_bytes)
        for i, (line, whole) in enumerate(zip(lines, raw, strict=True), 1)
        if whole.strip()  # ASCII whitespace only is blank, however long
    ]


def csv_malformed(content: bytes) -> bool:
    """Whether one CSV line alone is malformed (Python's csv, strict, one line only)."""
    text = content.decode("utf-8", "surrogateescape")
    try:
        next(csv.reader([text], strict=True))
    except csv.Error:
        return True
    return False


def check_records(records: list[Record], data: bytes, fmt: str, max_bytes: int) -> None:
    """The reader's Records against the model: one per physical record, with its true
    line number, in order; an over-long one says so, a malformed CSV line is INVALID."""
    expected = expected_records(data, fmt, max_bytes)
    got = [(r.line, r.error) for r in records]
    assert [line for line, _ in got] == [e.line for e in expected]
    for (line, error), e in zip(got, expected, strict=True):
        if e.over:
            assert error == over_limit(max_bytes), (line, error)
        else:
            assert error != over_limit(max_bytes), (line, error)
            if fmt == "csv" and csv_malformed(e.content):
                assert error is not None and error.startswith("malformed CSV"), (line, error)
