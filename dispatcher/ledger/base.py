"""The run ledger: what makes a run durable, resumable and at-most-once.

A ledger records, per run:
- the run itself (config, segment, attempt number, state);
- each record's terminal outcome, by line (the latest attempt wins);
- each send *claim*, by endpoint id, taken durably **before** the provider call.

A claim is what prevents duplicates. Before a batch goes to a sender, its endpoints are
claimed; an endpoint already claimed in this run is never sent again. When a send
provably failed (throttled, refused, 5xx) the claim is released, so ``retry`` may try
again; when its fate is unknown (a time-out after the request left, a crash between
claim and result) the claim stays and the endpoint ends "in doubt", never re-sent.
The outbox channel can settle doubt by reading its own file (``reconcile``).

Two implementations share this interface: SQLite in the output directory (default) and
DynamoDB for a fleet of workers (conditional writes do what a transaction does here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from dispatcher.model import Outcome


class Claim(Enum):
    """The answer to a send claim."""

    GRANTED = "GRANTED"
    """Nobody claimed this endpoint in this run: send it."""
    IN_DOUBT = "IN_DOUBT"
    """An earlier attempt may have sent it: do not send."""
    SENT = "SENT"
    """An earlier attempt sent it."""
    OTHER_LINE = "OTHER_LINE"
    """Another record of the segment with the same endpoint id holds the claim."""


@dataclass(slots=True)
class RunInfo:
    """What a ledger knows about a run."""

    run_id: str
    config: str
    segment: str
    campaign_id: str
    application_id: str
    started_at: str
    attempt: int = 1
    state: str = "RUNNING"
    """RUNNING, INTERRUPTED (stopped or killed; resumable) or FINISHED."""
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, Any] = field(default_factory=dict)
    """``segment`` and ``campaign`` as recorded when the run started (see ``fingerprint``)."""


class LineSet:
    """A set of line numbers as a bitmap: 10 million lines cost 1.25 MB."""

    __slots__ = ("_bits", "count")

    def __init__(self, lines: Iterable[int] = ()) -> None:
        self._bits = bytearray()
        self.count = 0
        for line in lines:
            self.add(line)

    def add(self, line: int) -> None:
        byte, bit = divmod(line, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if not self._bits[byte] >> bit & 1:
            self._bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, int):
            return False
        byte, bit = divmod(line, 8)
        return byte < len(self._bits) and bool(self._bits[byte] >> bit & 1)

    def __len__(self) -> int:
        return self.count

    def lines(self) -> Iterator[int]:
        """The lines in the set, in order."""
        for byte, bits in enumerate(self._bits):
            if bits:
                for bit in range(8):
                    if bits >> bit & 1:
                        yield byte * 8 + bit


@dataclass(slots=True)
class SendClaim:
    """One endpoint about to be sent."""

    endpoint_id: str
    line: int
    sender: str


class Ledger(Protocol):
    """Durable run state. Every method may be called from the event loop."""

    async def start_run(self, run: RunInfo) -> None:
        """Create the run (or bump its attempt when it exists and is resumed)."""

    async def get_run(self, run_id: str) -> RunInfo | None: ...

    async def finish_run(
        self, run_id: str, *, finished_at: str, summary: dict[str, Any]
    ) -> None: ...

    async def lines_with_status(
        self, run_id: str, statuses: Iterable[str] | None = None
    ) -> LineSet:
        """Lines with a recorded outcome (``statuses`` narrows to those)."""

    async def claim(self, run_id: str, claims: Sequence[SendClaim]) -> list[Claim]:
        """Durably claim endpoints before sending them; one answer per claim, in order."""

    async def record(
        self,
        run_id: str,
        outcomes: Sequence[Outcome],
        *,
        release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Record terminal outcomes; release claims of provably unsent endpoint ids;
        add ``sent`` (endpoint id, campaign id) to the send history."""

    async def flush(self) -> None:
        """Make everything recorded so far durable."""

    async def history(
        self, endpoint_ids: Sequence[str], *, campaign_id: str, since: float
    ) -> dict[str, tuple[int, int]]:
        """Per endpoint: (sends since ``since`` in any campaign, sends ever in this campaign)."""

    async def counts(self, run_id: str) -> dict[str, int]:
        """Outcomes recorded so far, by status."""

    def outcomes(
        self, run_id: str, *, lines: tuple[int, int] | None = None
    ) -> AsyncIterator[list[Outcome]]:
        """Recorded outcomes of the run (``lines``: an inclusive range), in line order."""

    async def in_doubt(self, run_id: str, sender: str) -> list[tuple[str, int]]:
        """Claims of ``sender`` with no recorded result: (endpoint id, line)."""

    async def aclose(self) -> None: ...


class LocalLedger(Ledger, Protocol):
    """What one machine's ledger adds: the once-per-ledger rule and run states."""

    async def runs_of(self, application_id: str, campaign_id: str) -> list[RunInfo]:
        """Every run of the campaign this ledger holds, oldest first."""

    async def claimed(self, run_id: str) -> int:
        """Endpoints of the run that were sent, or may have been (claims in doubt)."""

    async def set_state(self, run_id: str, state: str) -> None:
        """Record the run's state (e.g. INTERRUPTED after a stop, or on repair)."""


class FleetLedger(Ledger, Protocol):
    """What a worker fleet needs beyond a single process (the DynamoDB ledger has it)."""

    async def claim_lines(
        self, run_id: str, claims: Sequence[SendClaim], *, shared: Container[int] = ()
    ) -> list[Claim]:
        """A worker's claim: by line, for lines whose endpoint id no other line of the
        segment has (the caller knows: ``dispatcher submit`` worked it out); the lines in
        ``shared`` by endpoint id, as ``claim``. Answers as ``claim``'s."""

    async def lines_with_status(
        self, run_id: str, statuses: Iterable[str] | None = None, *,
        lines: tuple[int, int] | None = None,
    ) -> LineSet:  # fmt: skip
        """Lines with a recorded outcome (``lines``: an inclusive range, a shard's)."""

    async def shard_started(self, run_id: str, shard_id: str, *, worker: str) -> None: ...

    async def shard_done(
        self, run_id: str, shard_id: str, counts: Mapping[str, int], *, hook_invocations: int = 0,
        ignored_hook_ids: int = 0, failures: Sequence[tuple[str, str, int]] = (),
    ) -> None: ...  # fmt: skip

    async def shards(self, run_id: str) -> list[dict[str, Any]]:
        """Per shard: shard_id, state (RUNNING / DONE), worker, deliveries, counts, ..."""
