"""Pinpoint endpoint records as JSON lines (import format and export ``.gz`` parts)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson

from dispatcher.model import Record
from dispatcher.segments._io import open_binary

BOM = b"\xef\xbb\xbf"


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


async def read_jsonl(
    path: Path, *, batch_size: int, start_line: int = 1
) -> AsyncIterator[list[Record]]:
    """Yield batches of Records; blank lines are not records but keep their numbers."""
    with open_binary(path) as f:
        batch: list[Record] = []
        for line_no, raw in enumerate(f, 1):
            if line_no == 1 and raw.startswith(BOM):
                raw = raw[3:]
            if line_no < start_line or not raw.strip():
                continue
            batch.append(parse_line(line_no, raw))
            if len(batch) >= batch_size:
                yield batch
                batch = []
                # Local reads are quick; yielding here keeps the event loop responsive.
                await anyio.lowlevel.checkpoint()
        if batch:
            yield batch
