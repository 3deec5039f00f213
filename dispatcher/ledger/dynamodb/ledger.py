"""``DynamoLedger``: the Ledger interface over one DynamoDB table, for a worker fleet.

Same interface and answers as ``SqliteLedger``; where SQLite runs a transaction, this
ledger uses conditional writes on single items, so workers on separate machines that
race on one shard (SQS may deliver it twice) still send each endpoint at most once and
count each record exactly once. The parts, one module each:

* ``runs``: the run item and one item per shard (what ``dispatcher status`` shows);
* ``claims``: a claim per endpoint id (the contract's ``claim``);
* ``pages``: claims by line, group-committed into pages of 2048 lines (``claim_lines``,
  what a fleet worker uses: about one write unit per claim round, not per endpoint);
* ``outcomes``: blocks of 256 lines, each written once when its lines are in;
* ``history``: the send history caps count.

``claim`` makes everything recorded before it durable first (SQLite's transaction
order). ``claim_lines`` does not: what must survive a crash there -- which claimed
lines were sent -- goes into the page with the worker's next claim, and outcomes are
written by block. A crash of a fleet worker therefore loses its unwritten outcomes,
never a claim: the redelivered shard runs those lines again, and each answer comes
from the claims (SENT, IN_DOUBT) without a second send.

IAM actions on the table: ``dynamodb:GetItem``, ``PutItem``, ``UpdateItem``, ``Query``,
``BatchGetItem``, ``BatchWriteItem``, ``DescribeTable`` (and ``CreateTable`` for
``create_table()``).
"""

from __future__ import annotations

import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Container,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

import anyio

from dispatcher.aws import AwsClients
from dispatcher.ledger.base import Claim, LineSet, RunInfo, SendClaim
from dispatcher.ledger.dynamodb._table import Table
from dispatcher.ledger.dynamodb.claims import IdClaims, release_requests
from dispatcher.ledger.dynamodb.history import FLUSH_SENDS, History, history_requests
from dispatcher.ledger.dynamodb.outcomes import FLUSH_OUTCOMES, Outcomes
from dispatcher.ledger.dynamodb.pages import LineClaims
from dispatcher.ledger.dynamodb.runs import Runs
from dispatcher.model import Outcome, Status


class DynamoLedger:
    """The Ledger interface over one DynamoDB table, safe for many concurrent workers.

    ``clients`` shares the run's ``AwsClients``; without it the ledger makes its own for
    ``region`` (and closes them in ``aclose``). ``concurrency`` bounds the calls one
    ledger method has in flight; ``attempts`` bounds tries per call (throttling, 5xx,
    connection errors); ``page_size`` sets Query's ``Limit`` (None: 1 MB pages).
    ``send_history=False`` records no send history (a fleet run of a campaign without
    ``Daily`` or ``Total`` caps: nothing reads it, and it costs a write per send).
    """

    def __init__(
        self,
        table: str,
        *,
        clients: AwsClients | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        concurrency: int = 16,
        attempts: int = 10,
        max_backoff: float = 5.0,
        page_size: int | None = None,
        send_history: bool = True,
    ) -> None:
        if not table:
            raise ValueError("'table' must be a DynamoDB table name")
        if concurrency < 1:
            raise ValueError("'concurrency' must be >= 1")
        if attempts < 1:
            raise ValueError("'attempts' must be >= 1")
        if clients is None and not region:
            raise ValueError("'region' is required when no 'clients' are given")
        self._own_clients = clients is None
        clients = clients or AwsClients(region or "", max_pool_connections=max(concurrency * 2, 10))
        self._table = Table(table, clients=clients, endpoint_url=endpoint_url,
                            concurrency=concurrency, attempts=attempts, max_backoff=max_backoff,
                            page_size=page_size)  # fmt: skip
        self.send_history = send_history
        self._runs = Runs(self._table)
        self._outcomes = Outcomes(self._table)
        self._ids = IdClaims(self._table, self._outcomes.succeeded)
        self._pages = LineClaims(self._table, self._outcomes.succeeded)
        self._history = History(self._table)
        self._flush_lock = anyio.Lock()

    @property
    def table(self) -> str:
        """The table's name."""
        return self._table.name

    @table.setter
    def table(self, name: str) -> None:
        self._table.name = name

    def __repr__(self) -> str:
        pending = (self._outcomes.pending_count + len(self._ids.releases)
                   + len(self._history.pending))  # fmt: skip
        return f"DynamoLedger(table={self.table!r}, pending={pending})"

    # -- table -------------------------------------------------------------------------
    async def create_table(self) -> bool:
        """Create the table (PAY_PER_REQUEST) unless it exists; wait until it is ACTIVE.

        Returns True when this call created it. Raises if an existing table has
        another key schema. Bound the wait with ``anyio.fail_after`` if need be.
        """
        return await self._table.create()

    async def check_table(self) -> str:
        """Check that the table exists with this ledger's key schema; return its status."""
        return await self._table.check()

    # -- runs and shards ---------------------------------------------------------------
    async def start_run(self, run: RunInfo) -> None:
        await self._runs.start(run)

    async def get_run(self, run_id: str) -> RunInfo | None:
        return await self._runs.get(run_id)

    async def finish_run(self, run_id: str, *, finished_at: str, summary: dict[str, Any]) -> None:
        await self.flush()
        await self._runs.finish(run_id, finished_at=finished_at, summary=summary)

    async def shard_started(self, run_id: str, shard_id: str, *, worker: str) -> None:
        """A worker took a shard (again, if SQS delivered it twice)."""
        await self._runs.shard_started(run_id, shard_id, worker=worker)

    async def shard_done(
        self, run_id: str, shard_id: str, counts: Mapping[str, int], *, hook_invocations: int = 0,
        ignored_hook_ids: int = 0, failures: Sequence[tuple[str, str, int]] = (),
    ) -> None:  # fmt: skip
        """Every record of the shard has its outcome in the ledger (written first):
        ``counts`` by status, the hook invocations the shard took, the endpoint ids its
        hook answered that were not in its events, and its most frequent failures
        (status, reason, count): what the run's summary adds up."""
        await self.flush()
        await self._runs.shard_done(run_id, shard_id, counts, hook_invocations=hook_invocations,
                                    ignored_hook_ids=ignored_hook_ids, failures=failures)

    async def shards(self, run_id: str) -> list[dict[str, Any]]:
        """Every shard seen for the run, numeric ids in numeric order: ``shard_id``,
        ``state`` (RUNNING or DONE: a done shard stays done when delivered again),
        ``worker`` (the latest), ``deliveries``, ``started_at``, ``last_started_at``,
        ``finished_at``, ``counts`` and ``hook_invocations``."""
        return await self._runs.shards(run_id)

    # -- claims ------------------------------------------------------------------------
    async def claim(self, run_id: str, claims: Sequence[SendClaim]) -> list[Claim]:
        """Claim endpoint ids, one conditional put each. As SQLite writes everything
        pending in the claim's transaction, everything recorded before is written
        first: a claim meets the releases and outcomes recorded before it."""
        if not claims:
            return []
        await self.flush()
        return await self._ids.claim(run_id, claims, uuid.uuid4().hex)

    async def claim_lines(
        self, run_id: str, claims: Sequence[SendClaim], *, shared: Container[int] = ()
    ) -> list[Claim]:
        """A fleet worker's claim: by line, for lines whose endpoint id no other line of
        the segment has (the caller vouches for that); those in ``shared`` by endpoint
        id. Answers as ``claim``'s (OTHER_LINE only for shared ids). The results this
        ledger has recorded since its last claim (sent, released) are written with it;
        outcomes are not (see the module doc)."""
        if not claims:
            return []
        by_line = [c.line for c in claims if c.line not in shared]
        by_id = [c for c in claims if c.line in shared]
        answers: dict[str, list[Claim]] = {}

        async def lines() -> None:
            answers["lines"] = await self._pages.claim(run_id, by_line)

        async def ids() -> None:
            answers["ids"] = await self._ids.claim(run_id, by_id, uuid.uuid4().hex, mark=True)

        jobs: list[Callable[[], Awaitable[None]]] = []
        if by_line or self._pages.pending():
            jobs.append(lines)
        if by_id:
            jobs.append(ids)
        if self._ids.marks:
            jobs.append(self._ids.write_marks)
        if self._ids.releases or self._history.pending:
            jobs.append(self._write_batch)
        await self._table.each(lambda job: job(), jobs)
        line_answers = iter(answers.get("lines", ()))
        id_answers = iter(answers.get("ids", ()))
        return [next(id_answers) if c.line in shared else next(line_answers) for c in claims]

    # -- outcomes ----------------------------------------------------------------------
    async def record(
        self,
        run_id: str,
        outcomes: Sequence[Outcome],
        *,
        release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
    ) -> None:
        attempt = await self._runs.attempt_of(run_id) if outcomes else 0
        complete = self._outcomes.add(run_id, attempt, outcomes)
        released = set(release)
        sent = list(sent)
        # A line claimed by line is released, or marked sent, in its page; anything
        # else released is an endpoint-id claim.
        granted = self._pages.granted.get(run_id, set())
        on_page_sent: list[int] = []
        on_page_released: list[int] = []
        for o in outcomes:
            if o.line in granted:
                if o.status is Status.SUCCESS:
                    on_page_sent.append(o.line)
                elif o.endpoint_id in released:
                    on_page_released.append(o.line)
                    released.discard(o.endpoint_id or "")
                granted.discard(o.line)  # a failure not provably unsent stays claimed
        self._pages.mark(run_id, sent=on_page_sent, released=on_page_released)
        self._ids.release(run_id, released)
        self._ids.sent(run_id, (eid for eid, _ in sent))
        if self.send_history:
            self._history.add(run_id, sent)
        if complete:
            await self._outcomes.write(self._outcomes.take(run_id, complete))
        if self._outcomes.pending_count >= FLUSH_OUTCOMES:
            await self._outcomes.write(self._outcomes.take_fullest())
        if len(self._ids.releases) + len(self._history.pending) >= FLUSH_SENDS:
            await self._write_batch()

    async def flush(self) -> None:
        """Write everything recorded so far; when it returns, all of it is durable."""
        async with self._flush_lock:
            blocks = self._outcomes.take_all()

            async def outcomes() -> None:
                await self._outcomes.write(blocks)

            jobs: list[Callable[[], Awaitable[None]]] = [outcomes, self._pages.flush]
            if self._ids.marks:
                jobs.append(self._ids.write_marks)
            if self._ids.releases or self._history.pending:
                jobs.append(self._write_batch)
            await self._table.each(lambda job: job(), jobs)

    async def _write_batch(self) -> None:
        """Releases of endpoint-id claims and send history: idempotent, 25 a call."""
        releases, self._ids.releases = self._ids.releases, set()
        history, self._history.pending = self._history.pending, {}
        try:
            await self._table.batch_write([*release_requests(releases),
                                           *history_requests(history)])  # fmt: skip
        except BaseException:
            # Not known to be written: they go with the next batch.
            self._ids.releases |= releases
            for key, value in history.items():
                self._history.pending.setdefault(key, value)
            raise

    # -- reads -------------------------------------------------------------------------
    async def lines_with_status(
        self,
        run_id: str,
        statuses: Iterable[str] | None = None,
        *,
        lines: tuple[int, int] | None = None,
    ) -> LineSet:
        """Lines with a recorded outcome (``statuses`` narrows to those, ``lines`` to an
        inclusive range)."""
        await self.flush()
        return await self._outcomes.lines_with_status(run_id, statuses, lines)

    async def outcomes(
        self, run_id: str, *, lines: tuple[int, int] | None = None
    ) -> AsyncIterator[list[Outcome]]:
        """Recorded outcomes (``lines``: an inclusive range) in line order: a shard's
        blocks by key, else the 16 block partitions' Queries merged a page at a time."""
        await self.flush()
        async for batch in self._outcomes.outcomes(run_id, lines):
            yield batch

    async def counts(self, run_id: str) -> dict[str, int]:
        """Outcomes by status, from the counts kept in each block."""
        await self.flush()
        return await self._outcomes.counts(run_id)

    async def history(
        self, endpoint_ids: Sequence[str], *, campaign_id: str, since: float
    ) -> dict[str, tuple[int, int]]:
        # The sends recorded so far are written first (as SQLite reads its own); nothing
        # else is, since caps read the history for every batch a run admits.
        if self._history.pending:
            await self._write_batch()
        return await self._history.counts(endpoint_ids, campaign_id=campaign_id, since=since)

    async def in_doubt(self, run_id: str, sender: str) -> list[tuple[str, int]]:
        """Endpoint-id claims of ``sender`` with no recorded success. (Lines claimed by
        line carry no endpoint id or sender: a fleet worker never reconciles.)"""
        await self.flush()
        return await self._ids.in_doubt(run_id, sender)

    async def aclose(self) -> None:
        try:
            await self.flush()
        finally:
            if self._own_clients:
                await self._table.clients.aclose()
            self._table.forget_client()


def create_table_sync(
    table: str, *, region: str | None = None, endpoint_url: str | None = None
) -> bool:
    """``DynamoLedger.create_table()`` outside an event loop (scripts, tests, setup).

    The region defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1.
    """
    import os

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")

    async def create() -> bool:
        ledger = DynamoLedger(table, region=region or "us-east-1", endpoint_url=endpoint_url)
        try:
            return await ledger.create_table()
        finally:
            await ledger.aclose()

    return anyio.run(create)
