"""A segment source narrowed to a segment definition.

Records outside the segment are dropped here, before admission, so they get no
outcome line: an export of 50 million endpoints can feed a segment of one million.
Unreadable records (``Record.error`` set) are kept: they can't be evaluated, and
dropping them would hide a damaged export. Records keep their physical ``line``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import anyio

from dispatcher.model import Record
from dispatcher.segments.definition._checks import Predicate
from dispatcher.segments.definition._compile import always
from dispatcher.segments.records import BATCH_SIZE, SegmentSource, check_batch_size

_FLUSH_BATCHES = 64


async def filter_batches(
    batches: AsyncIterator[list[Record]], predicate: Predicate, *,
    counts: SegmentCounts | None = None, batch_size: int = BATCH_SIZE,
) -> AsyncIterator[list[Record]]:  # fmt: skip
    """The records of ``batches`` in the segment, plus the unreadable ones, in order,
    in batches of at most ``batch_size`` (never an empty one).

    What one input batch keeps goes out at once when it is at least an eighth of
    ``batch_size``; smaller catches gather until they are. Holding kept records across
    many input batches (to fill whole batches) was measured to slow reading by more
    than evaluating the definition does: the few survivors among freed records scatter
    the allocator's memory. An eighth still spares the admission stage, which pays per
    batch (address claims, cap look-ups), from a flood of tiny batches.

    ``counts``, when given, is updated as records are read (live, for progress).
    """
    counts = counts if counts is not None else SegmentCounts()
    size = check_batch_size(batch_size)
    least = max(1, size // 8)
    # A very selective segment would hold its few records back while the scan goes on;
    # after this many records read, what has gathered goes out anyway.
    flush_after = _FLUSH_BATCHES * size
    pending: list[Record] = []
    unflushed = 0
    async for batch in batches:
        counts.scanned += len(batch)
        if predicate is always:
            kept = batch
        else:
            kept = []
            for r in batch:
                d, e = r.definition, r.endpoint_id
                # Unreadable records can't be evaluated: they stay, to get their outcome.
                if r.error is not None or d is None or e is None or predicate(d, e):
                    kept.append(r)
        counts.kept += len(kept)
        unflushed += len(batch)
        if pending:
            pending.extend(kept)
        else:
            pending = kept
        if len(pending) >= least or (pending and unflushed >= flush_after):
            for i in range(0, len(pending), size):
                yield pending[i : i + size]
            pending = []
            unflushed = 0
    for i in range(0, len(pending), size):
        yield pending[i : i + size]


class SegmentCounts:
    """``scanned``: records read from the source; ``kept``: those passed on (in the
    segment, or unreadable)."""

    __slots__ = ("kept", "scanned")

    def __init__(self) -> None:
        self.scanned = 0
        self.kept = 0

    def __repr__(self) -> str:
        return f"SegmentCounts(scanned={self.scanned}, kept={self.kept})"


class DefinedSource:
    """A ``SegmentSource`` yielding only ``source``'s records in the segment that
    ``predicate`` decides, plus its unreadable ones.

    ``counts.scanned`` is the records read by the latest ``batches()`` so far (from
    ``start_line`` on: a resumed run reads, and counts, only the rest of the source).
    Each call starts the counts afresh: a local-time run reads its segment once per
    wave, and ``Scanned`` is the records in the source, not the reads.
    """

    def __init__(self, source: SegmentSource, predicate: Predicate, *,
                 batch_size: int = BATCH_SIZE) -> None:  # fmt: skip
        self.source = source
        self.predicate = predicate
        self.name = source.name
        self.counts = SegmentCounts()
        self._batch_size = check_batch_size(batch_size)

    @property
    def scanned(self) -> int:
        return self.counts.scanned

    def progress(self) -> tuple[int, int] | None:
        """The wrapped source's (bytes read, size), when it knows them: the progress
        line's percent follows the scan, not the few records kept."""
        position = getattr(self.source, "progress", None)
        return position() if callable(position) else None

    async def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        self.counts = SegmentCounts()
        inner = self.source.batches(start_line=start_line)
        try:
            async for batch in filter_batches(inner, self.predicate, counts=self.counts,
                                              batch_size=self._batch_size):  # fmt: skip
                yield batch
        finally:
            # A consumer that stops early closes us; close the source's reader now (its
            # file or S3 stream), not whenever the garbage collector gets to it.
            if isinstance(inner, AsyncGenerator):
                with anyio.CancelScope(shield=True):
                    await inner.aclose()

    def __repr__(self) -> str:
        counts = self.counts
        return f"DefinedSource({self.name!r}, scanned={counts.scanned}, kept={counts.kept})"


__all__ = ["DefinedSource", "SegmentCounts", "filter_batches"]
