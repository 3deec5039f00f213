"""Chunking: eligible records grouped into hook events of at most 50 endpoints.

A chunk holds endpoints of one treatment only, because an event carries one
``TreatmentId`` and one ``MessageConfiguration``. An endpoint id already in the open
chunk closes it first: an event's ``Endpoints`` map cannot hold an id twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dispatcher.model import Record

MAX_CHUNK = 50
"""Pinpoint's limit: each event data payload contains up to 50 endpoints."""


@dataclass(slots=True)
class Chunk:
    """Up to 50 records of one treatment, keyed by endpoint id, in segment order."""

    treatment: str
    records: dict[str, Record] = field(default_factory=dict)


class Chunker:
    """Accumulates records per treatment and hands out full chunks."""

    def __init__(self, size: int = MAX_CHUNK) -> None:
        if not 1 <= size <= MAX_CHUNK:
            raise ValueError(f"chunk size must be between 1 and {MAX_CHUNK}, got {size}")
        self.size = size
        self._open: dict[str, Chunk] = {}

    def add(self, record: Record) -> Chunk | None:
        """Add a record; return the treatment's previous chunk if this one closed it.

        A chunk closes when the next record finds it full or already holding its id, so
        one call never has two chunks to hand out.
        """
        # Admission guarantees an id and a treatment for every record it lets through.
        assert record.endpoint_id is not None and record.treatment is not None
        treatment = record.treatment
        chunk = self._open.get(treatment)
        closed: Chunk | None = None
        if chunk is not None and (
            len(chunk.records) >= self.size or record.endpoint_id in chunk.records
        ):
            closed, chunk = chunk, None
        if chunk is None:
            chunk = self._open[treatment] = Chunk(treatment)
        chunk.records[record.endpoint_id] = record
        return closed

    def flush(self) -> Iterator[Chunk]:
        """The partial chunks left at the end of the segment."""
        chunks, self._open = list(self._open.values()), {}
        yield from chunks
