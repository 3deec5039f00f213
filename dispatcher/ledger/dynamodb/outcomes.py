"""Outcomes: one item per block of 256 consecutive lines, written when the block is in.

A block item holds its lines' outcomes as one zlib-compressed blob of columns (line,
attempt, status, endpoint id, reason, channel, treatment), its count per status, and a
version. Writes are read-modify-write under the version (``v``): the writer merges its
lines into what is stored, line by line, by one rule -- a later attempt replaces an
outcome; within one attempt the first recorder wins, except that SUCCESS (the worker
that sent) beats a failure (a duplicate worker that found the claim in doubt) -- and
puts the block back on condition that the version did not move. A failed condition
returns the stored block, and the merge is done again on it. Counts live in the same
item as the lines they count, so they are exact whatever writers race or die.

Outcomes are buffered and a block is written once its lines are in (or on ``flush``):
a block is billed by its whole size each time it is written, so writing it once is
what makes outcomes cost ~0.03 write units each. Buffered outcomes are not durable; the
ledger's callers make what must survive a crash durable otherwise (a claim's flush, or
the sent bits of a line page, see ``pages``).
"""

from __future__ import annotations

import heapq
import zlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher.errors import DynamoLedgerError
from dispatcher.ledger.base import LineSet
from dispatcher.ledger.dynamodb._items import (
    BLOCK_LINES,
    BLOCK_PARTITIONS,
    MAX_BLOCK,
    MAX_ITEM,
    MAX_REASON,
    Item,
    b,
    block_key,
    block_partition,
    bytes_of,
    int_of,
    item_size,
    n,
    s,
    sort_number,
)
from dispatcher.ledger.dynamodb._table import ConditionFailed, Cursor, Table
from dispatcher.model import Outcome, Status

FLUSH_OUTCOMES = 8192
"""Buffered outcomes that make the ledger write its fullest blocks."""
KNOWN_BLOCKS = 64
"""Blocks whose stored version a ledger remembers (its own last writes)."""

Row = tuple[int, Outcome]
"""An outcome with the run attempt that recorded it."""


def supersedes(attempt: int, status: str, old_attempt: int, old_status: str) -> bool:
    """Does an outcome replace the stored one? A later attempt does; within one attempt
    the first recorder wins, except that SUCCESS (the worker that sent) beats a failure
    (a duplicate worker that found the claim in doubt, or failed its hook)."""
    if attempt != old_attempt:
        return attempt > old_attempt
    return status == Status.SUCCESS and old_status != Status.SUCCESS


def _clip(reason: str | None, limit: int) -> str | None:
    return reason if reason is None or len(reason) <= limit else reason[: limit - 1] + "…"


def encode_lines(rows: dict[int, Row], *, reason_limit: int = MAX_REASON) -> bytes:
    """A block's lines as one compressed blob of columns (repetitive columns -- status,
    channel, treatment -- compress to almost nothing)."""
    lines = sorted(rows)
    outcomes = [rows[line][1] for line in lines]
    columns = {
        "l": lines,
        "a": [rows[line][0] for line in lines],
        "s": [o.status.value for o in outcomes],
        "e": [o.endpoint_id for o in outcomes],
        "r": [_clip(o.reason, reason_limit) for o in outcomes],
        "c": [o.channel_type for o in outcomes],
        "t": [o.treatment_id for o in outcomes],
    }
    return zlib.compress(orjson.dumps(columns), 6)


def decode_lines(blob: bytes) -> dict[int, Row]:
    if not blob:
        return {}
    c = orjson.loads(zlib.decompress(blob))
    return {
        line: (attempt, Outcome(line, eid, Status(status), reason, channel, treatment))
        for line, attempt, status, eid, reason, channel, treatment in zip(
            c["l"], c["a"], c["s"], c["e"], c["r"], c["c"], c["t"], strict=True
        )
    }


@dataclass(slots=True)
class _Stored:
    """A block as last seen: its version (0: no item) and lines."""

    version: int = 0
    rows: dict[int, Row] = field(default_factory=dict)

    @classmethod
    def of(cls, item: Item | None) -> _Stored:
        if not item:
            return cls()
        return cls(int_of(item, "v"), decode_lines(bytes_of(item, "d")))


class Outcomes:
    """The outcome blocks of every run in the table, and this ledger's unwritten ones."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.pending: dict[tuple[str, int], dict[int, Row]] = {}
        self.pending_count = 0
        self._known: OrderedDict[tuple[str, int], _Stored] = OrderedDict()

    # -- writes ------------------------------------------------------------------------
    def add(self, run_id: str, attempt: int, outcomes: Iterable[Outcome]) -> list[int]:
        """Buffer outcomes (a later record of a line replaces or yields to an earlier one
        exactly as the table would); returns the blocks that are now complete."""
        touched: set[int] = set()
        for o in outcomes:
            block = o.line // BLOCK_LINES
            rows = self.pending.setdefault((run_id, block), {})
            held = rows.get(o.line)
            if held is None:
                self.pending_count += 1
            elif not supersedes(attempt, o.status, held[0], held[1].status):
                continue
            rows[o.line] = (attempt, o)
            touched.add(block)
        complete = []
        for block in touched:
            known = self._known.get((run_id, block))
            stored = len(known.rows) if known else 0
            # Lines count from 1: block 0 has one line fewer.
            if len(self.pending[(run_id, block)]) + stored >= BLOCK_LINES - (block == 0):
                complete.append(block)
        return complete

    def take(self, run_id: str, blocks: Iterable[int]) -> list[tuple[str, int, dict[int, Row]]]:
        """Remove those blocks from the buffer, for writing."""
        taken = []
        for block in blocks:
            rows = self.pending.pop((run_id, block), None)
            if rows:
                self.pending_count -= len(rows)
                taken.append((run_id, block, rows))
        return taken

    def take_all(self) -> list[tuple[str, int, dict[int, Row]]]:
        taken = [(run_id, block, rows) for (run_id, block), rows in self.pending.items()]
        self.pending, self.pending_count = {}, 0
        return taken

    def take_fullest(self) -> list[tuple[str, int, dict[int, Row]]]:
        """The fuller half of the buffered blocks (the buffer is over its bound)."""
        ranked = sorted(self.pending, key=lambda k: len(self.pending[k]), reverse=True)
        chosen = ranked[: max(1, len(ranked) // 2)]
        taken = []
        for run_id, block in chosen:
            taken.extend(self.take(run_id, [block]))
        return taken

    def restore(self, taken: Iterable[tuple[str, int, dict[int, Row]]]) -> None:
        """Put back blocks whose write failed, under rows buffered since."""
        for run_id, block, rows in taken:
            current = self.pending.setdefault((run_id, block), {})
            for line, row in rows.items():
                held = current.get(line)
                if held is None:
                    current[line] = row
                    self.pending_count += 1
                elif supersedes(row[0], row[1].status, held[0], held[1].status):
                    current[line] = row

    async def write(self, taken: list[tuple[str, int, dict[int, Row]]]) -> None:
        """Write blocks taken from the buffer; on failure they go back into it."""
        try:
            await self.table.each(lambda t: self._write_block(*t), taken)
        except BaseException:
            self.restore(taken)
            raise

    async def _write_block(self, run_id: str, block: int, rows: dict[int, Row]) -> None:
        """Merge ``rows`` into the stored block and put it back, conditioned on its
        version; a failed condition returns the block, and the merge is done again."""
        key = block_key(run_id, block)
        stored = self._known.get((run_id, block)) or _Stored()
        for _ in range(self.table.attempts * 4):
            merged = dict(stored.rows)
            changed = False
            for line, (attempt, o) in rows.items():
                held = merged.get(line)
                if held is None or supersedes(attempt, o.status, held[0], held[1].status):
                    merged[line] = (attempt, o)
                    changed = True
            if not changed:
                break  # duplicates of what is stored (a redelivery, a lost answer)
            item = self._item(key, stored.version + 1, merged)
            condition = "attribute_not_exists(pk)" if stored.version == 0 else "v = :v"
            values = None if stored.version == 0 else {":v": n(stored.version)}
            try:
                await self.table.put(item, condition, values)
            except ConditionFailed as exc:
                stored = _Stored.of(exc.item or await self.table.get(key))
                continue
            stored = _Stored(stored.version + 1, merged)
            break
        else:
            raise DynamoLedgerError(f"block {block} of run {run_id} kept changing; gave up",
                                    operation="PutItem")  # fmt: skip
        self._remember((run_id, block), stored)

    @staticmethod
    def _item(key: Item, version: int, rows: dict[int, Row]) -> Item:
        counts = Counter(o.status.value for _, o in rows.values())
        item = {**key, "v": n(version), "c": {"M": {k: n(v) for k, v in sorted(counts.items())}}}
        # Reasons are clipped harder only when a block of long, varied reasons would not
        # fit DynamoDB's 400 KB item.
        for limit in (MAX_REASON, 200, 0):
            item["d"] = b(encode_lines(rows, reason_limit=max(limit, 1)))
            if item_size(item) <= MAX_ITEM - 1024:
                return item
        raise DynamoLedgerError(f"outcome block {key['sk']['S']} does not fit an item "
                                "(endpoint ids too long)", operation="PutItem")  # fmt: skip

    def _remember(self, key: tuple[str, int], stored: _Stored) -> None:
        self._known[key] = stored
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_BLOCKS:
            self._known.popitem(last=False)

    # -- reads -------------------------------------------------------------------------
    async def blocks(self, run_id: str, lines: tuple[int, int] | None) -> AsyncIterator[Item]:
        """The stored blocks over ``lines`` (inclusive; None: all), in block order: a
        shard's range by key (one BatchGetItem), else the 16 partitions' Queries merged."""
        if lines is not None and few_blocks(lines):
            first, last = max(lines[0], 0) // BLOCK_LINES, max(lines[1], 0) // BLOCK_LINES
            keys = [block_key(run_id, blk) for blk in range(first, last + 1)]
            for item in sorted(await self.table.batch_get(keys), key=sort_number):
                yield item
            return
        cursors = [Cursor(self.table, self.table.query_request(**partition_query(run_id, p, lines)))
                   for p in range(BLOCK_PARTITIONS)]  # fmt: skip
        heap: list[tuple[int, int]] = []
        for i, cursor in enumerate(cursors):
            if await cursor.fill():
                heap.append((sort_number(cursor.buffer[0]), i))
        heapq.heapify(heap)
        while heap:
            _, i = heapq.heappop(heap)
            cursor = cursors[i]
            yield cursor.buffer.popleft()
            if await cursor.fill():
                heapq.heappush(heap, (sort_number(cursor.buffer[0]), i))

    async def lines_with_status(
        self, run_id: str, statuses: Iterable[str] | None, lines: tuple[int, int] | None
    ) -> LineSet:
        wanted = None if statuses is None else frozenset(statuses)
        first, last = lines or (0, MAX_BLOCK * BLOCK_LINES)
        found = LineSet()
        if first > last:
            return found
        async for item in self.blocks(run_id, lines):
            for line, (_, o) in decode_lines(bytes_of(item, "d")).items():
                if first <= line <= last and (wanted is None or o.status in wanted):
                    found.add(line)
        return found

    async def outcomes(
        self, run_id: str, lines: tuple[int, int] | None
    ) -> AsyncIterator[list[Outcome]]:
        first, last = lines or (0, MAX_BLOCK * BLOCK_LINES)
        if first > last:
            return
        batch: list[Outcome] = []
        async for item in self.blocks(run_id, lines):
            rows = decode_lines(bytes_of(item, "d"))
            batch.extend(rows[line][1] for line in sorted(rows) if first <= line <= last)
            if len(batch) >= 2000:
                yield batch
                batch = []
        if batch:
            yield batch

    async def counts(self, run_id: str) -> dict[str, int]:
        """Outcomes by status: the counts every block keeps beside its lines."""
        totals: Counter[str] = Counter()

        async def scan(partition: int) -> None:
            async for item in self.table.query_items(
                KeyConditionExpression="pk = :pk", ProjectionExpression="c",
                ExpressionAttributeValues={":pk": s(block_partition(run_id, partition))},
            ):  # fmt: skip
                for status, value in item.get("c", {}).get("M", {}).items():
                    totals[status] += int(value["N"])

        await self.table.each(scan, range(BLOCK_PARTITIONS))
        return {status: count for status, count in sorted(totals.items()) if count}

    async def succeeded(self, run_id: str, lines: Iterable[int]) -> set[int]:
        """Those of ``lines`` whose outcome is SUCCESS, stored or buffered here."""
        wanted = set(lines)
        found: set[int] = set()
        for line in wanted:
            row = self.pending.get((run_id, line // BLOCK_LINES), {}).get(line)
            if row is not None and row[1].status is Status.SUCCESS:
                found.add(line)
        rest = sorted({line // BLOCK_LINES for line in wanted - found})
        if rest:
            for item in await self.table.batch_get([block_key(run_id, blk) for blk in rest]):
                for line, (_, o) in decode_lines(bytes_of(item, "d")).items():
                    if line in wanted and o.status is Status.SUCCESS:
                        found.add(line)
        return found


def few_blocks(lines: tuple[int, int]) -> bool:
    """Whether a line range is small enough (a shard) to read its blocks by key."""
    return lines[1] // BLOCK_LINES - lines[0] // BLOCK_LINES < 1600


def partition_query(run_id: str, partition: int, lines: tuple[int, int] | None) -> dict[str, Any]:
    """A Query of one block partition, over the blocks of ``lines`` if given."""
    values = {":pk": s(block_partition(run_id, partition))}
    condition = "pk = :pk"
    if lines is not None:
        low = min(max(lines[0], 0) // BLOCK_LINES, MAX_BLOCK)
        high = min(max(lines[1], 0) // BLOCK_LINES, MAX_BLOCK)
        condition += " AND sk BETWEEN :low AND :high"
        values[":low"], values[":high"] = s(f"{low:010d}"), s(f"{high:010d}")
    return {"KeyConditionExpression": condition, "ExpressionAttributeValues": values}
