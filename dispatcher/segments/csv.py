"""Pinpoint import CSV: dot-notation headers, repeated columns for multi-valued attributes.

``Demographic.Platform`` sets a nested field, ``Attributes.X`` / ``User.UserAttributes.X``
hold string lists (a repeated header column adds a value), ``Metrics.X`` and the
location coordinates are numbers, and an empty cell means "no value". A row whose cell
count differs from the header's is INVALID; it never shifts values into other columns.

**Record boundaries: one physical line is one CSV record.** Lines end at ``\\r\\n``,
``\\r`` or ``\\n``. Pinpoint's import rules allow no line breaks in values, so a quote
is never allowed to carry a record onto the next line: a line whose quoting is
malformed (an unclosed quote, ``"Bob"by``) or whose cell passes ``csv``'s field size
limit (131,072 characters) is one INVALID record on its own, and the next line is read
as the next record. So one bad byte can never swallow the rest of the file, and any
line start is a record start (shards are cut at lines). Quotes otherwise follow
RFC 4180: a value holding a comma or a quote is quoted, its quotes doubled.

The first physical line is the header (a UTF-8 BOM before it is dropped). ``Line`` is
the physical line number minus one: the header is not counted, blank lines (nothing
before the terminator) are not records but keep their numbers. Invalid UTF-8 makes
only its own row INVALID.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dispatcher.errors import SegmentError
from dispatcher.model import Record
from dispatcher.segments.jsonl import generated_id
from dispatcher.segments.lines import Line, Overlong, over_limit
from dispatcher.segments.streams import BOM

LIST_PREFIXES = ("Attributes.", "User.UserAttributes.")
NUMBER_COLUMNS = ("Metrics.", "Location.Latitude", "Location.Longitude")

Setter = Callable[[dict[str, Any], str], str | None]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def column_setter(header: str) -> Setter:
    """Compile one header cell into a function that stores a cell in a definition."""
    parts = header.split(".")
    if not header or any(not p for p in parts):
        raise SegmentError(f"CSV header has an empty or malformed column name {header!r}")
    *parents, leaf = parts
    as_list = header.startswith(LIST_PREFIXES)
    as_number = header.startswith(NUMBER_COLUMNS)

    def setter(definition: dict[str, Any], cell: str) -> str | None:
        node = definition
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        if as_list:
            node.setdefault(leaf, []).append(cell)
        elif as_number:
            value = _number(cell)
            if value is None:
                return f"{header} must be a number, got {cell!r}"
            node[leaf] = value
        else:
            node[leaf] = cell
        return None

    return setter


def parse_row(line_no: int, row: list[str], header: list[str], setters: list[Setter]) -> Record:
    """One CSV row (cells decoded with ``surrogateescape``) as a Record."""
    try:
        "".join(row).encode()
    except UnicodeEncodeError:
        return Record(line_no, None, None, "row is not valid UTF-8")
    if len(row) != len(header):
        return Record(line_no, None, None, f"row has {len(row)} cells, header has {len(header)}")
    definition: dict[str, Any] = {}
    endpoint_id: str | None = None
    for name, setter, cell in zip(header, setters, row, strict=True):
        if cell == "":
            continue
        if name == "Id":
            endpoint_id = cell
            continue
        error = setter(definition, cell)
        if error:
            return Record(line_no, endpoint_id, None, error)
    if endpoint_id is None:
        endpoint_id = generated_id(definition, ",".join(row).encode())
    return Record(line_no, endpoint_id, definition)


def _decode(raw: bytes) -> str:
    # surrogateescape keeps a bad byte from failing more than its own row.
    return raw.decode("utf-8", "surrogateescape")


def parse_line(text: str) -> list[str] | str:
    """One line's cells, or why it is malformed. Never reads past the line."""
    try:
        return next(csv.reader((text,), strict=True))
    except csv.Error as exc:
        if str(exc) == "unexpected end of data":
            return "malformed CSV: a quoted value is not closed on its line"
        return f"malformed CSV: {exc}"


def parse_lines(texts: list[str]) -> Iterator[list[str] | str]:
    """``parse_line`` of each text, in order, from one ``csv.reader`` pass.

    The reader may carry a record over lines (an unclosed quote): ``line_num`` shows
    it, and those lines are parsed again one by one, so each fails alone. Rows are
    made as they are used, never a list of them (young objects slow the GC down).
    """
    reader = csv.reader(texts, strict=True)
    done = 0
    while done < len(texts):
        try:
            row: list[str] | None = next(reader)
        except csv.Error:
            row = None
        end = reader.line_num
        if row is not None and end == done + 1:
            yield row
        else:
            for text in texts[done:end]:
                yield parse_line(text)
        done = end


_BLANK = (b"\n", b"\r\n", b"\r")


def is_record(line: Line) -> bool:
    """Whether a physical line (not the header) is a record: blank lines are not."""
    if isinstance(line, Overlong):
        return True
    return len(line) > 2 or line not in _BLANK


class CsvHeader:
    """The header row, compiled: column names and a setter per column."""

    def __init__(self, name: str, raw: bytes) -> None:
        row = parse_line(_decode(raw.removeprefix(BOM)))
        if isinstance(row, str):
            raise SegmentError(f"{name}: unreadable CSV header: {row}")
        self.columns = [h.strip() for h in row]
        try:
            self.setters = [column_setter(h) for h in self.columns]
        except SegmentError as exc:
            raise SegmentError(f"{name}: {exc}") from exc
        self.raw = raw


class CsvBuilder:
    """Turns one stream's lines into Records.

    Without ``header`` the first line fed is the header and the first data line gets
    ``Line`` ``first_line``; with it (a shard after its object's header), the first line
    fed is a data line with ``Line`` ``first_line``. ``records`` counts every record
    seen (those before ``start_line`` included); ``lines``, the data lines seen.
    """

    def __init__(self, name: str, first_line: int, *, header: bytes | None = None,
                 start_line: int = 1, max_bytes: int) -> None:  # fmt: skip
        self._name = name
        self._max_bytes = max_bytes
        self._header = CsvHeader(name, header) if header is not None else None
        self._next = first_line
        self._first_line = first_line
        self._start_line = start_line
        self._too_long = over_limit(max_bytes)
        self.records = 0

    @property
    def lines(self) -> int:
        return self._next - self._first_line

    def feed(self, lines: Sequence[Line]) -> list[Record]:
        if self._header is None and lines:
            first, lines = lines[0], lines[1:]
            if isinstance(first, Overlong):
                raise SegmentError(f"{self._name}: the CSV header is over the "
                                   f"{self._max_bytes}-byte limit")  # fmt: skip
            self._header = CsvHeader(self._name, first)
        out: list[Record] = []
        # The lines to parse (in order, up to an Overlong) and their Line numbers.
        numbers: list[int] = []
        texts: list[str] = []
        n = self._next
        start_line = self._start_line
        records = 0
        for raw in lines:
            # The hot loop: is_record() and the decoding inlined.
            if type(raw) is bytes:
                if len(raw) > 2 or raw not in _BLANK:
                    records += 1
                    if n >= start_line:
                        numbers.append(n)
                        texts.append(raw.decode("utf-8", "surrogateescape"))
            else:
                records += 1
                if n >= start_line:
                    self._parse(numbers, texts, out)
                    out.append(Record(n, None, None, self._too_long))
            n += 1
        self._next = n
        self.records += records
        self._parse(numbers, texts, out)
        return out

    def _parse(self, numbers: list[int], texts: list[str], out: list[Record]) -> None:
        if not texts:
            return
        header = self._header
        assert header is not None
        columns, setters = header.columns, header.setters
        for n, row in zip(numbers, parse_lines(texts), strict=True):
            if isinstance(row, str):
                out.append(Record(n, None, None, row))
            else:
                out.append(parse_row(n, row, columns, setters))
        numbers.clear()
        texts.clear()


__all__ = [
    "CsvBuilder",
    "CsvHeader",
    "Setter",
    "column_setter",
    "is_record",
    "parse_line",
    "parse_row",
]
