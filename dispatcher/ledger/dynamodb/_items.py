"""The table's items: keys, attribute values, and what DynamoDB bills for an item.

One table, string keys ``pk`` (HASH) and ``sk`` (RANGE), no index::

    item          pk                            sk                 attributes
    run           R#{run}                       RUN                info (JSON), attempt,
                                                                   summary, v
    shard         R#{run}                       S#{shard id}       w, n, t0, ts, t1, c, h
    outcome block B#{run}#{block % 16:02d}      {block:010d}       v, c (per status),
                                                                   d (zlib of the lines)
    line page     L#{run}#{page % 16:02d}       {page:010d}        v, m (claimed), s (sent),
                                                                   k (last write tokens)
    send claim    C#{run}#{crc32(id) % 32:02d}  i:{endpoint id}    e, l, sn, tk, s
    send          E#i:{endpoint id}             r:{run}            t (sent_at), c (campaign)

(block = line // 256, page = line // 2048.) Write units are what this layout saves:
DynamoDB bills a write by the size of the item it replaces or makes, so an outcome
block is written once when its lines are in, as one compressed blob, and a line page
is a pair of compressed bitmaps that stays under 1 KB (one write unit) whatever it
holds. Blocks and pages are spread over 16 partitions each, so the consecutive lines
of a shard do not all load one partition.
"""

from __future__ import annotations

import base64
import hashlib
import math
import zlib
from decimal import Decimal
from typing import Any

FORMAT_VERSION = 2
"""Items of format 1 (per-line outcome maps, tallies, address claims) are not read."""

BLOCK_LINES = 256
"""Lines per outcome block: a compressed block of typical outcomes is a few KB."""
PAGE_LINES = 2048
"""Lines per claim page: two 256-byte bitmaps, compressed, stay under 1 KB."""
BLOCK_PARTITIONS = 16
PAGE_PARTITIONS = 16
CLAIM_PARTITIONS = 32
MAX_RAW_ID = 512
MAX_REASON = 4000
MAX_BLOCK = 10**10 - 1
MAX_ITEM = 400 * 1024
"""DynamoDB's item size limit."""
WRITE_UNIT = 1024
"""Bytes of item per write unit (standard table class)."""

Item = dict[str, Any]
"""An item in DynamoDB's wire format: ``{"name": {"S": "value"}, ...}``."""


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int | float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def b(value: bytes) -> dict[str, bytes]:
    return {"B": value}


def str_of(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def int_of(item: Item, name: str) -> int:
    return int(item[name]["N"])


def bytes_of(item: Item, name: str) -> bytes:
    """A binary attribute (empty when absent); botocore hands back bytes."""
    value = item.get(name)
    if value is None:
        return b""
    raw = value["B"]
    return raw if isinstance(raw, bytes) else base64.b64decode(raw)


def id_key(endpoint_id: str) -> str:
    """A key for an endpoint id: the id itself, or its digest when too long for a key."""
    raw = endpoint_id.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_RAW_ID:
        return "i:" + endpoint_id
    return "h:" + hashlib.sha256(raw).hexdigest()


def run_key(run_id: str, sk: str) -> Item:
    return {"pk": s(f"R#{run_id}"), "sk": s(sk)}


def block_key(run_id: str, block: int) -> Item:
    return {"pk": s(f"B#{run_id}#{block % BLOCK_PARTITIONS:02d}"), "sk": s(f"{block:010d}")}


def block_partition(run_id: str, partition: int) -> str:
    return f"B#{run_id}#{partition:02d}"


def page_key(run_id: str, page: int) -> Item:
    return {"pk": s(f"L#{run_id}#{page % PAGE_PARTITIONS:02d}"), "sk": s(f"{page:010d}")}


def page_partition(run_id: str, partition: int) -> str:
    return f"L#{run_id}#{partition:02d}"


def claim_key(run_id: str, endpoint_id: str) -> Item:
    bucket = zlib.crc32(endpoint_id.encode("utf-8", "surrogatepass")) % CLAIM_PARTITIONS
    return {"pk": s(f"C#{run_id}#{bucket:02d}"), "sk": s(id_key(endpoint_id))}


def claim_partition(run_id: str, partition: int) -> str:
    return f"C#{run_id}#{partition:02d}"


def send_key(endpoint_id: str, run_id: str) -> Item:
    return {"pk": s("E#" + id_key(endpoint_id)), "sk": s("r:" + run_id)}


def sort_number(item: Item) -> int:
    """The block or page number of a block or page item."""
    return int(item["sk"]["S"])


# -- what DynamoDB bills ----------------------------------------------------------------------


def item_size(item: Item) -> int:
    """An item's size as DynamoDB counts it: attribute names plus values (UTF-8 strings,
    raw binary, numbers by their significant digits, 3 bytes per list or map plus 1 per
    element)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, v), = value.items()  # fmt: skip
    if kind == "S":
        return len(str(v).encode("utf-8", "surrogatepass"))
    if kind == "N":
        return _number_size(str(v))
    if kind == "B":
        return len(v if isinstance(v, bytes) else base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_value_size(x) + 1 for x in v)
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(_number_size(x) for x in v)
    if kind == "BS":
        return sum(len(x if isinstance(x, bytes) else base64.b64decode(x)) for x in v)
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    return 1 + math.ceil(len(digits) / 2)


def write_units(size: int) -> int:
    """Write units for one item write of ``size`` bytes (at least one)."""
    return max(1, math.ceil(size / WRITE_UNIT))
