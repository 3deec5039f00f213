"""Pinpoint endpoint records as JSON lines (import format and export ``.gz`` parts).

One physical line (ending at ``\\n``) is one record; a line of ASCII whitespace only is
blank: not a record, but it keeps its number. A line that is not a JSON object, not
UTF-8, or over the ``max_record_bytes`` limit is a Record with ``error`` set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

from dispatcher.model import Record
from dispatcher.segments.lines import Line, Overlong, over_limit


def generated_id(definition: dict[str, object], raw: bytes) -> str:
    """A stable id for a record without ``Id``: from ChannelType+Address, else the bytes.

    The same endpoint gets the same id in every run over the same data, so resume,
    retries and per-endpoint caps keep working for segments that carry no ids.
    """
    ct, addr = definition.get("ChannelType"), definition.get("Address")
    if isinstance(ct, str) and isinstance(addr, str) and addr:
        raw = f"{ct}\x1f{addr}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def parse_line(line_no: int, raw: bytes) -> Record:
    """Decode one JSON line into a Record (with ``error`` set when it is unusable)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Record(line_no, None, None, f"malformed JSON: {exc.msg} at character {exc.pos}")
    if not isinstance(value, dict):
        return Record(line_no, None, None, f"expected a JSON object, got {type_name(value)}")
    endpoint_id = value.pop("Id", None)
    if endpoint_id is None:
        return Record(line_no, generated_id(value, raw), value)
    if not isinstance(endpoint_id, str) or not endpoint_id:
        return Record(line_no, None, value, "Id must be a non-empty string")
    return Record(line_no, endpoint_id, value)


def type_name(value: object) -> str:
    """JSON's name for a decoded value's type, for error messages."""
    return {
        dict: "an object", list: "an array", str: "a string", int: "a number",
        float: "a number", bool: "a boolean", type(None): "null",
    }.get(type(value), type(value).__name__)  # fmt: skip


def is_record(line: Line) -> bool:
    """Whether a physical line is a record (shard planning counts with this)."""
    if isinstance(line, Overlong):
        return not line.blank
    return not line.isspace()


class JsonlBuilder:
    """Turns one stream's lines into Records; ``Line`` is ``first_line`` + index.

    ``records`` counts every record seen, those before ``start_line`` (not built)
    included; ``lines`` is the physical lines seen.
    """

    def __init__(self, first_line: int, *, start_line: int = 1, max_bytes: int) -> None:
        self._next = first_line
        self._first_line = first_line
        self._start_line = start_line
        self._too_long = over_limit(max_bytes)
        self.records = 0

    @property
    def lines(self) -> int:
        return self._next - self._first_line

    def feed(self, lines: Sequence[Line]) -> list[Record]:
        out: list[Record] = []
        n = self._next
        start_line = self._start_line
        records = 0
        for raw in lines:
            # The hot loop: is_record() inlined.
            if isinstance(raw, bytes):
                if not raw.isspace():
                    records += 1
                    if n >= start_line:
                        out.append(parse_line(n, raw))
            elif not raw.blank:
                records += 1
                if n >= start_line:
                    out.append(Record(n, None, None, self._too_long))
            n += 1
        self._next = n
        self.records += records
        return out


__all__ = ["JsonlBuilder", "generated_id", "is_record", "parse_line", "type_name"]
