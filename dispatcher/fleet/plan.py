"""What ``submit`` learns by reading the whole segment once, in order, before the jobs go.

Two things only the whole segment knows, decided here once so that workers need no
shared state (and no ledger write) for them:

* **duplicate addresses**, in segment order: the same eligibility checks as one-machine
  run (``Eligibility``: INVALID, OPT_OUT, INACTIVE, UNSUPPORTED_CHANNEL, then the
  ChannelType+Address seen on an earlier accepted line), so a fleet run decides
  DUPLICATE_ADDRESS exactly as ``dispatcher run`` does, whichever worker runs what;
* **shared endpoint ids**: lines whose endpoint id appears on another line too. Every
  other line's id is unique in the segment, so its send can be claimed by line, in a
  page of line bits that many claims share (``DynamoLedger.claim_lines``); a shared id
  is claimed by id, so two lines with one id are still never both sent.

With a segment definition (``[segment] definition``), a third: the lines **outside the
segment**, evaluated here once with the run's start as now. They are passed over before
the other two are decided, as ``dispatcher run`` drops them before admission, so the
fleet's duplicates and shared ids are those among the segment's records only.

Memory: ~12 bytes per distinct address and ~21 per distinct endpoint id (flat tables of
64-bit fingerprints; a fingerprint collision can only make a line look like a duplicate
or a shared id, never hide one), plus a bit per line.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace

from dispatcher.aws import AwsClients
from dispatcher.eligibility import Eligibility
from dispatcher.fleet.jobs import LineBits
from dispatcher.model import Status
from dispatcher.segments.definition import Predicate
from dispatcher.segments.shards import Shard, ShardSource

_MASK64 = (1 << 64) - 1


class FirstLines:
    """64-bit fingerprint -> the first line that had it, in 256 flat open-addressing
    tables (``array``), so ten million ids cost ~210 MB rather than a dict's ~1 GB."""

    _PARTS = 256
    _INITIAL = 1024  # slots per part; a power of two

    def __init__(self) -> None:
        self._keys = [array("Q", bytes(8 * self._INITIAL)) for _ in range(self._PARTS)]
        self._lines = [array("I", bytes(4 * self._INITIAL)) for _ in range(self._PARTS)]
        self._counts = [0] * self._PARTS

    def setdefault(self, key: object, line: int) -> int:
        """The first line stored for ``key``; ``line`` is stored if there is none."""
        h = hash(key) & _MASK64 or 1  # 0 marks an empty slot
        part = h & 0xFF
        keys = self._keys[part]
        mask = len(keys) - 1
        i = (h >> 8) & mask
        while True:
            slot = keys[i]
            if slot == 0:
                break
            if slot == h:
                return int(self._lines[part][i])
            i = (i + 1) & mask
        keys[i] = h
        self._lines[part][i] = line
        self._counts[part] += 1
        if self._counts[part] * 4 > len(keys) * 3:  # keep load <= 0.75
            self._grow(part)
        return line

    def _grow(self, part: int) -> None:
        old_keys, old_lines = self._keys[part], self._lines[part]
        keys = array("Q", bytes(16 * len(old_keys)))
        lines = array("I", bytes(8 * len(old_keys)))
        mask = len(keys) - 1
        for h, line in zip(old_keys, old_lines, strict=True):
            if h:
                i = (h >> 8) & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i], lines[i] = h, line
        self._keys[part], self._lines[part] = keys, lines


class _Marks:
    """Lines marked per shard, a bit each (allocated on a shard's first mark)."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = shards
        self.bits: dict[int, bytearray] = {}

    def add(self, k: int, line: int) -> None:
        first = self.shards[k].first_line
        bits = self.bits.get(k)
        if bits is None:
            bits = self.bits[k] = bytearray((self.shards[k].last_line - first) // 8 + 1)
        i = line - first
        bits[i >> 3] |= 1 << (i & 7)

    def of(self, k: int) -> LineBits:
        return LineBits(self.shards[k].first_line, bytes(self.bits.get(k, b"")))


def _objects(shards: Sequence[Shard]) -> Iterator[tuple[int, Shard]]:
    """Per object, the index of its first shard and one shard spanning all of them:
    read once, in order (a gzip object shard by shard would be inflated again from
    its start for each)."""
    start = 0
    while start < len(shards):
        end = start
        while end + 1 < len(shards) and shards[end + 1].key == shards[start].key and (
                shards[end + 1].bucket == shards[start].bucket):  # fmt: skip
            end += 1
        first, last = shards[start], shards[end]
        whole = replace(first, end=last.end, last_line=last.last_line,
                        records=sum(s.records for s in shards[start : end + 1]))  # fmt: skip
        yield start, whole
        start = end + 1


async def shard_facts(
    shards: Sequence[Shard], clients: AwsClients, *, channels: Collection[str],
    max_record_bytes: int, in_segment: Predicate | None = None,
) -> list[tuple[LineBits, LineBits, LineBits]]:  # fmt: skip
    """Per shard: (its DUPLICATE_ADDRESS lines, its lines with a shared endpoint id, its
    lines outside the segment ``in_segment`` decides; none without it).

    Reads every shard's records (the objects the plan pinned by ETag; a record count
    that differs from the plan is a ``SegmentError``).
    """
    eligibility = Eligibility(channels)
    ids = FirstLines()
    starts = [s.first_line for s in shards]
    duplicates, shared, outside = _Marks(shards), _Marks(shards), _Marks(shards)
    for k, whole in _objects(shards):
        source = ShardSource(whole, clients, max_record_bytes=max_record_bytes)
        async for batch in source.batches():
            for record in batch:
                line = record.line
                while line > shards[k].last_line:
                    k += 1
                d, e = record.definition, record.endpoint_id
                # As DefinedSource: an unreadable record can't be evaluated, and stays.
                if in_segment is not None and d is not None and e is not None and (
                        record.error is None and not in_segment(d, e)):  # fmt: skip
                    outside.add(k, line)
                    continue
                outcome = eligibility.check(record)
                if outcome is not None and outcome.status is Status.DUPLICATE_ADDRESS:
                    duplicates.add(k, line)
                if record.endpoint_id is None:
                    continue  # never sent: nothing to claim
                first = ids.setdefault(record.endpoint_id, line)
                if first != line:
                    shared.add(k, line)
                    shared.add(bisect_right(starts, first) - 1, first)
    return [(duplicates.of(k), shared.of(k), outside.of(k)) for k in range(len(shards))]
