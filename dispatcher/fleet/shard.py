"""One shard job, start to end, through the same context and stages as ``dispatcher run``.

``run_shard`` reads the run from the ledger, skips the shard's settled lines (a
redelivery), runs the rest through ``context.execute`` with the DynamoDB ledger, writes
the shard's part of the outcome log to S3 from the ledger (exact even when an earlier
delivery settled some lines) and marks the shard done; the worker that completes the
last shard writes ``summary.json``. What only the whole segment knows comes with the
job (``fleet.plan``): duplicate addresses are answered from it, and sends are claimed
by line except for endpoint ids that other lines share (``ShardLedger``). The run's
send-rate ceilings are one per run id, shared by every shard and worker through rate
leases in the same table (``dispatcher.ratelimit.dynamodb``, docs/send-rate.md).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Container, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.errors import DispatchError
from dispatcher.fleet.jobs import LineBits, ShardJob
from dispatcher.ledger.base import Claim, FleetLedger, LineSet, RunInfo, SendClaim
from dispatcher.model import FAILURE_STATUSES, Outcome, Record, Status, Summary
from dispatcher.progress import Counters
from dispatcher.segments import SegmentSource

SHARD_FAILURES = 10
"""Failure reasons each shard keeps for the run's TopFailures (the run shows 3): a
reason frequent across the run is among each shard's most frequent ten."""


class ShardLedger:
    """The ledger as one shard job's pipeline sees it: ``claim`` is ``claim_lines``, by
    line except for the job's shared endpoint ids; everything else is the ledger's."""

    def __init__(self, ledger: FleetLedger, shared_ids: Container[int]) -> None:
        self.ledger = ledger
        self.shared_ids = shared_ids

    async def claim(self, run_id: str, claims: Sequence[SendClaim]) -> list[Claim]:
        return await self.ledger.claim_lines(run_id, claims, shared=self.shared_ids)

    async def start_run(self, run: RunInfo) -> None:
        await self.ledger.start_run(run)

    async def get_run(self, run_id: str) -> RunInfo | None:
        return await self.ledger.get_run(run_id)

    async def finish_run(self, run_id: str, *, finished_at: str, summary: dict[str, Any]) -> None:
        await self.ledger.finish_run(run_id, finished_at=finished_at, summary=summary)

    async def lines_with_status(
        self, run_id: str, statuses: Iterable[str] | None = None
    ) -> LineSet:
        return await self.ledger.lines_with_status(run_id, statuses)

    async def record(
        self, run_id: str, outcomes: Sequence[Outcome], *, release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
    ) -> None:  # fmt: skip
        await self.ledger.record(run_id, outcomes, release=release, sent=sent)

    async def flush(self) -> None:
        await self.ledger.flush()

    async def history(
        self, endpoint_ids: Sequence[str], *, campaign_id: str, since: float
    ) -> dict[str, tuple[int, int]]:
        return await self.ledger.history(endpoint_ids, campaign_id=campaign_id, since=since)

    async def counts(self, run_id: str) -> dict[str, int]:
        return await self.ledger.counts(run_id)

    def outcomes(
        self, run_id: str, *, lines: tuple[int, int] | None = None
    ) -> AsyncIterator[list[Outcome]]:
        return self.ledger.outcomes(run_id, lines=lines)

    async def in_doubt(self, run_id: str, sender: str) -> list[tuple[str, int]]:
        return await self.ledger.in_doubt(run_id, sender)

    async def aclose(self) -> None:
        await self.ledger.aclose()


@dataclass(slots=True)
class ShardReport:
    """What running one shard did: outcomes by status this delivery recorded, and the
    stages' counters (sends, hook calls and latency), and what sharing the ceilings cost."""

    by_status: Counter[str] = field(default_factory=Counter)
    counters: Counters = field(default_factory=Counters)
    lease_writes: int = 0
    """DynamoDB writes of the run's rate leases (the shared ceilings' cost)."""


class InSegment:
    """A shard's records in the run's segment: those submit did not mark ``outside``
    (the definition was evaluated there, once, at the run's start). Lines keep their
    numbers; an unreadable record is never outside, and gets its INVALID outcome."""

    def __init__(self, source: SegmentSource, outside: LineBits) -> None:
        self.source = source
        self.name = source.name
        self.outside = outside

    async def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        outside = self.outside
        inner = self.source.batches(start_line=start_line)
        try:
            async for batch in inner:
                kept = [r for r in batch if r.line not in outside] if outside.bits else batch
                if kept:
                    yield kept
        finally:
            # Stopped early: close the S3 reader now, not when it is collected.
            if isinstance(inner, AsyncGenerator):
                with anyio.CancelScope(shield=True):
                    await inner.aclose()


def open_ledger(job: ShardJob, clients: AwsClients, *, send_history: bool = True) -> FleetLedger:
    from dispatcher.ledger.dynamodb import DynamoLedger

    return DynamoLedger(job.table, clients=clients, send_history=send_history)


async def run_shard(job: ShardJob, *, clients: AwsClients, worker: str) -> ShardReport:
    """Run one shard job; raises on anything that leaves it unfinished (SQS retries it)."""
    from dispatcher.config import parse_settings
    from dispatcher.context import execute, open_context
    from dispatcher.fleet.s3output import put_json_lines, shard_part_url
    from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog
    from dispatcher.ratelimit import SharedCeilings
    from dispatcher.ratelimit.dynamodb import DynamoLeaseStore
    from dispatcher.segments.shards import ShardSource

    settings = parse_settings(job.config_data, job.config_path, Path(job.config_path).parent)
    run_id, index = job.run_id, str(job.shard.index)
    workdir = Path(tempfile.mkdtemp(prefix=f"dispatcher-{run_id[:8]}-"))
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        # The send history is read by Daily and Total caps only, and costs a write per
        # send: a campaign without them does not write it.
        limits = settings.limits
        ledger = open_ledger(job, clients, send_history=bool(limits.daily or limits.total))
        stack.push_async_callback(ledger.aclose)
        info = await ledger.get_run(run_id)
        if info is None:
            raise DispatchError(f"run {run_id} is not in the ledger")
        await ledger.shard_started(run_id, index, worker=worker)
        settled = await ledger.lines_with_status(run_id, lines=job.lines)
        ctx = await open_context(settings, stack, run_id=run_id, started_at=info.started_at,
                                 out=workdir, clients=clients)  # fmt: skip
        log = OutcomeLog(workdir / OUTCOMES_FILE)
        stack.callback(log.close)
        report = ShardReport(counters=Counters())
        duplicates = job.duplicates

        async def claim_addresses(items: list[tuple[str, int]]) -> list[bool]:
            # Decided by submit over the whole segment, in segment order.
            return [line not in duplicates for _, line in items]

        # Every ceiling (MessagesPerSecond, a sender's own, per identity, SES MaxSendRate)
        # is the run's, not this worker's: the shards of one run id share it through
        # leases in the ledger's table. Held for the sends only, so that the share comes
        # back to the other workers while this one writes its outcomes and takes the next
        # shard; a ceiling the run never asks for costs nothing (leases start on use).
        store = DynamoLeaseStore(job.table, clients=clients)
        async with SharedCeilings(store, scope=run_id) as ceilings:
            ctx.ceilings = ceilings
            stages = await execute(
                ctx,
                source=InSegment(ShardSource(job.shard, clients,
                                             max_record_bytes=settings.segment_max_record_bytes),
                                 job.outside),
                log=log,
                ledger=ShardLedger(ledger, job.shared_ids),
                skip=settled.__contains__,
                counters=report.counters,
                claim_addresses=claim_addresses,
            )  # fmt: skip
        report.lease_writes = store.writes
        report.by_status.update(log.counts)
        part: list[bytes] = []
        counts: Counter[str] = Counter()
        failures: Counter[tuple[str, str]] = Counter()
        async for batch in ledger.outcomes(run_id, lines=job.lines):
            part.extend(orjson.dumps(o.to_json()) for o in batch)
            counts.update(o.status.value for o in batch)
            failures.update((o.status.value, o.reason or "") for o in batch
                            if o.status.value in FAILURE_STATUSES)  # fmt: skip
        await put_json_lines(shard_part_url(job.output, "outcomes", job.shard.index), part,
                             clients)  # fmt: skip
        # The run's TopFailures are merged from each shard's most frequent ones.
        await ledger.shard_done(
            run_id, index, dict(counts), hook_invocations=report.counters.hook_invocations,
            ignored_hook_ids=stages.ignored_hook_ids,
            failures=[(st, reason, k) for (st, reason), k in failures.most_common(SHARD_FAILURES)],
        )  # fmt: skip
        await finish_if_last(ledger, job, clients)
    return report


async def finish_if_last(ledger: FleetLedger, job: ShardJob, clients: AwsClients) -> None:
    """The worker that completes the last shard writes the run's summary."""
    from dispatcher.fleet.s3output import put_json_lines
    from dispatcher.outcomes import now_iso

    shards = await ledger.shards(job.run_id)
    done = [s for s in shards if s.get("state") == "DONE"]
    if len(done) < job.shards:
        return
    counts = await ledger.counts(job.run_id)
    info = await ledger.get_run(job.run_id)
    total = sum(counts.values())
    failures: Counter[tuple[str, str]] = Counter()
    for s in done:
        failures.update({(st, reason): k for st, reason, k in s.get("failures", ())})
    # The same summary as a local run's (``Summary``), plus the shard count.
    run = Summary(
        run_id=job.run_id, total=total, by_status=dict(counts),
        hook_invocations=sum(int(s.get("hook_invocations", 0)) for s in shards),
        ignored_hook_ids=sum(int(s.get("ignored_hook_ids", 0)) for s in done),
        started_at=info.started_at if info else "", finished_at=now_iso(),
        top_failures=[(st, reason, k) for (st, reason), k in failures.most_common(3)],
        # Submit recorded the records it read; a run from before it did: all in the segment.
        scanned=int(info.extra.get("Scanned", total)) if info else total,
    )  # fmt: skip
    summary = {**run.to_json(), "Shards": len(done)}
    finished_at = run.finished_at
    await put_json_lines(job.output_url("summary.json"), [orjson.dumps(summary)], clients)
    await ledger.finish_run(job.run_id, finished_at=finished_at, summary=summary)


async def settle_dead_lettered(
    job: ShardJob, clients: AwsClients, *, receives: int, exc: BaseException
) -> None:
    """Record the shard's open lines TEMPORARY_FAILURE (with why) before the dead-letter
    queue takes the job, so that the ledger says why and a later run can pick them up."""
    from dispatcher.segments.shards import ShardSource

    ledger = open_ledger(job, clients)
    try:
        settled = await ledger.lines_with_status(job.run_id, lines=job.lines)
        reason = (f"shard failed {receives} times ({type(exc).__name__}: {exc}); its job "
                  "went to the dead-letter queue")  # fmt: skip
        async for batch in InSegment(ShardSource(job.shard, clients), job.outside).batches():
            await ledger.record(job.run_id, [Outcome.of(r, Status.TEMPORARY_FAILURE, reason)
                                             for r in batch if r.line not in settled])  # fmt: skip
        await ledger.flush()
        await ledger.shard_done(job.run_id, str(job.shard.index), {"FAILED": 1})
    finally:
        await ledger.aclose()
