"""Pinpoint import CSV: dot-notation headers, repeated columns for multi-valued attributes.

``Demographic.Platform`` sets a nested field, ``Attributes.X`` / ``User.UserAttributes.X``
hold string lists (a repeated header column adds a value), ``Metrics.X`` and the
location coordinates are numbers, and an empty cell means "no value". A row whose cell
count differs from the header's is INVALID; it never shifts values into other columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio

from dispatcher.errors import SegmentError
from dispatcher.model import Record
from dispatcher.segments._io import open_binary
from dispatcher.segments.jsonl import generated_id

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


async def read_csv(
    path: Path, *, batch_size: int, start_line: int = 1
) -> AsyncIterator[list[Record]]:
    """Yield batches of Records. ``Line`` is the row's line, the header not counted."""
    with open_binary(path) as raw:
        # surrogateescape keeps one bad byte from ending the file: that row alone is INVALID.
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise SegmentError(f"{path}: unreadable CSV header: {exc}") from exc
        if header is None:
            return
        header = [h.strip() for h in header]
        setters = [column_setter(h) for h in header]
        batch: list[Record] = []
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:
                # A broken quote: csv cannot resynchronise, so the rest is one bad record.
                batch.append(Record(reader.line_num - 1, None, None, f"malformed CSV: {exc}"))
                break
            if row is None:
                break
            line_no = reader.line_num - 1
            if not row or line_no < start_line:
                continue
            batch.append(parse_row(line_no, row, header, setters))
            if len(batch) >= batch_size:
                yield batch
                batch = []
                await anyio.lowlevel.checkpoint()
        if batch:
            yield batch


__all__ = ["read_csv"]
