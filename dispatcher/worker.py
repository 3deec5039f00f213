"""``dispatcher worker``: one member of a fleet that runs shard jobs from an SQS queue.

Workers are identical and stateless: each long-polls the queue, runs one shard through
the same pipeline as ``dispatcher run`` (segment part from S3, DynamoDB ledger, the
run's hook and channels), keeps the message invisible while it works, writes the
shard's outcomes to S3 and deletes the message. The ledger's conditional writes make a
redelivered shard, or two workers racing on one, harmless: settled lines are skipped,
and an endpoint's send is claimed once per run.

Lifecycle (arq's): on SIGTERM/SIGINT the worker stops taking shards, gives the one in
flight ``grace`` seconds to finish, else cancels it and hands the message back
(visibility 0), logs one summary line and exits 0. A shard that fails is left on the
queue; on its last receive (the queue's ``maxReceiveCount``) the worker first records
its unsettled records as TEMPORARY_FAILURE with the reason, so that the dead-letter
queue holds the job and the ledger says why.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.config import parse_settings
from dispatcher.errors import DispatchError
from dispatcher.model import Outcome, Status
from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog, now_iso
from dispatcher.progress import Counters

log = logging.getLogger("dispatcher.worker")


@dataclass(slots=True)
class WorkerStats:
    """Counters visible in ``repr``, health and metrics."""

    shards_done: int = 0
    shards_failed: int = 0
    shards_handed_back: int = 0
    in_flight: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    hook_invocations: int = 0
    hook_seconds: float = 0.0
    hook_chunks: int = 0
    sends: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Job:
    message_id: str
    receipt: str
    receive_count: int
    body: dict[str, Any]


class Worker:
    """Takes shard jobs from ``queue_url`` until stopped (or, with ``burst``, until empty)."""

    def __init__(
        self,
        *,
        queue_url: str,
        clients: AwsClients,
        grace: float = 30.0,
        wait_time: int = 20,
        burst: bool = False,
        name: str | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.clients = clients
        self.grace = grace
        self.wait_time = wait_time
        self.burst = burst
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stats = WorkerStats()
        self.visibility = 300
        self.max_receives: int | None = None
        self._stopping = anyio.Event()

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<Worker {self.name} done={s.shards_done} failed={s.shards_failed} "
            f"handed_back={s.shards_handed_back} in_flight={s.in_flight}>"
        )

    # -- lifecycle -------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop taking shards; the one in flight gets ``grace`` seconds."""
        self._stopping.set()

    async def check(self) -> None:
        """Raise DispatchError unless the queue is reachable (``--check``)."""
        await self._read_queue_settings()

    async def run(self) -> WorkerStats:
        await self._read_queue_settings()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals)
            await self._loop()
            tg.cancel_scope.cancel()
        s = self.stats
        log.info("worker %s stopped: %d shards done, %d failed, %d handed back, %s",
                 self.name, s.shards_done, s.shards_failed, s.shards_handed_back,
                 dict(s.by_status))  # fmt: skip
        return s

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                self.stop()

    async def _read_queue_settings(self) -> None:
        sqs = await self.clients.client("sqs")
        try:
            attrs = await sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            )
        except Exception as exc:  # botocore's errors, mapped at the boundary
            raise DispatchError(f"queue {self.queue_url} is not reachable: {exc}") from exc
        values = attrs.get("Attributes", {})
        self.visibility = int(values.get("VisibilityTimeout", 300))
        redrive = values.get("RedrivePolicy")
        if redrive:
            self.max_receives = int(orjson.loads(redrive).get("maxReceiveCount", 0)) or None

    async def _receive(self) -> list[dict[str, Any]] | None:
        """One long poll; None as soon as a stop is requested."""
        sqs = await self.clients.client("sqs")
        messages: list[dict[str, Any]] | None = None
        async with anyio.create_task_group() as tg:

            async def cancel_on_stop() -> None:
                await self._stopping.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(cancel_on_stop)
            response = await sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=self.wait_time,
                AttributeNames=["ApproximateReceiveCount"],
            )
            messages = response.get("Messages", [])
            tg.cancel_scope.cancel()
        return messages

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            messages = await self._receive()
            if messages is None:
                return
            if not messages:
                if self.burst:
                    return
                continue
            m = messages[0]
            try:
                body = orjson.loads(m["Body"])
            except orjson.JSONDecodeError:
                body = {}
            count = int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            await self._handle(Job(m["MessageId"], m["ReceiptHandle"], count, body))

    # -- one job ---------------------------------------------------------------------------
    async def _handle(self, job: Job) -> None:
        sqs = await self.clients.client("sqs")
        self.stats.in_flight += 1
        finished = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, job)
                work = anyio.CancelScope()

                async def grace_on_stop() -> None:
                    await self._stopping.wait()
                    await anyio.sleep(self.grace)
                    work.cancel()

                tg.start_soon(grace_on_stop)
                with work:
                    await self._run_job(job)
                    finished = True
                tg.cancel_scope.cancel()
        except Exception as exc:  # a failed shard must not stop the worker
            self.stats.shards_failed += 1
            log.exception("shard job %s failed (receive %d)", job.message_id, job.receive_count)
            await self._give_up_if_last(job, exc)
            return
        finally:
            self.stats.in_flight -= 1
        if finished:
            await sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=job.receipt)
            self.stats.shards_done += 1
        else:
            with anyio.CancelScope(shield=True):
                await sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=job.receipt, VisibilityTimeout=0
                )
            self.stats.shards_handed_back += 1

    async def _heartbeat(self, job: Job) -> None:
        """Keep the message invisible while the shard is worked on."""
        sqs = await self.clients.client("sqs")
        while True:
            await anyio.sleep(max(1.0, self.visibility / 3))
            await sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=job.receipt,
                VisibilityTimeout=self.visibility,
            )  # fmt: skip

    async def _run_job(self, job: Job) -> None:
        from dispatcher.context import execute, open_context
        from dispatcher.ledger.dynamodb import DynamoLedger
        from dispatcher.s3output import put_json_lines
        from dispatcher.segments.shards import Shard, ShardSource

        body = job.body
        if body.get("Type") != "dispatcher.shard/1":
            raise DispatchError(f"message {job.message_id} is not a shard job")
        run_id = body["RunId"]
        shard = Shard.from_json(body["Shard"])
        config = body["Config"]
        settings = parse_settings(config["Data"], config["Path"], Path(config["Path"]).parent)
        lines = (shard.first_line, shard.last_line)
        workdir = Path(tempfile.mkdtemp(prefix=f"dispatcher-{run_id[:8]}-"))
        async with AsyncExitStack() as stack:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            ledger = DynamoLedger(body["Ledger"]["Table"], clients=self.clients)
            stack.push_async_callback(ledger.aclose)
            info = await ledger.get_run(run_id)
            if info is None:
                raise DispatchError(f"run {run_id} is not in the ledger")
            await ledger.shard_started(run_id, str(shard.index), worker=self.name)
            settled = await ledger.lines_with_status(run_id, lines=lines)
            ctx = await open_context(settings, stack, run_id=run_id, started_at=info.started_at,
                                     out=workdir, clients=self.clients)  # fmt: skip
            outcome_log = OutcomeLog(workdir / OUTCOMES_FILE)
            stack.callback(outcome_log.close)
            counters = Counters()
            await execute(
                ctx,
                source=ShardSource(shard, self.clients,
                                   max_record_bytes=settings.segment_max_record_bytes),
                log=outcome_log,
                ledger=ledger,
                skip=settled.__contains__,
                counters=counters,
                claim_addresses=lambda items: ledger.claim_addresses(run_id, items),
            )
            self._count(outcome_log.counts, counters)
            # The shard's part of outcomes.jsonl comes from the ledger: exact even when an
            # earlier delivery of this shard settled some of its lines.
            part: list[bytes] = []
            async for batch in ledger.outcomes(run_id, lines=lines):
                part.extend(orjson.dumps(o.to_json()) for o in batch)
            output = body["Output"].rstrip("/")
            await put_json_lines(f"{output}/outcomes/shard-{shard.index:06d}.jsonl", part,
                                 self.clients)  # fmt: skip
            counts = Counter(orjson.loads(line)["Status"] for line in part)
            await ledger.shard_done(run_id, str(shard.index), dict(counts),
                                    hook_invocations=counters.hook_invocations)  # fmt: skip
            await self._maybe_finish_run(ledger, run_id, body, output)

    def _count(self, counts: Counter[str], counters: Counters) -> None:
        s = self.stats
        s.by_status.update(counts)
        s.hook_invocations += counters.hook_invocations
        s.hook_seconds += counters.hook_seconds
        s.hook_chunks += counters.hook_chunks
        s.sends += counters.sent

    async def _maybe_finish_run(self, ledger: Any, run_id: str, body: dict[str, Any],
                                output: str) -> None:  # fmt: skip
        """The worker that completes the last shard writes the run's summary."""
        from dispatcher.s3output import put_json_lines

        shards = await ledger.shards(run_id)
        done = [s for s in shards if s.get("state") == "DONE"]
        if len(done) < int(body["Shards"]):
            return
        counts = await ledger.counts(run_id)
        info = await ledger.get_run(run_id)
        summary = {
            "RunId": run_id,
            "Total": sum(counts.values()),
            "ByStatus": dict(sorted(counts.items())),
            "HookInvocations": sum(int(s.get("hook_invocations", 0)) for s in shards),
            "Shards": len(done),
            "StartedAt": info.started_at if info else None,
            "FinishedAt": now_iso(),
        }
        await put_json_lines(f"{output}/summary.json", [orjson.dumps(summary)], self.clients)
        await ledger.finish_run(run_id, finished_at=summary["FinishedAt"], summary=summary)

    async def _give_up_if_last(self, job: Job, exc: BaseException) -> None:
        """On the last receive, settle the shard's open records before the DLQ takes it."""
        if self.max_receives is None or job.receive_count < self.max_receives:
            return
        from dispatcher.ledger.dynamodb import DynamoLedger
        from dispatcher.segments.shards import Shard, ShardSource

        body = job.body
        try:
            run_id = body["RunId"]
            shard = Shard.from_json(body["Shard"])
            ledger = DynamoLedger(body["Ledger"]["Table"], clients=self.clients)
            try:
                lines = (shard.first_line, shard.last_line)
                settled = await ledger.lines_with_status(run_id, lines=lines)
                reason = (f"shard failed {job.receive_count} times ({type(exc).__name__}: "
                          f"{exc}); its job went to the dead-letter queue")  # fmt: skip
                async for batch in ShardSource(shard, self.clients).batches():
                    open_records = [r for r in batch if r.line not in settled]
                    await ledger.record(run_id, [
                        Outcome.of(r, Status.TEMPORARY_FAILURE, reason) for r in open_records
                    ])  # fmt: skip
                await ledger.flush()
                await ledger.shard_done(run_id, str(shard.index), {"FAILED": 1})
            finally:
                await ledger.aclose()
        except Exception:  # the source itself may be what fails; the DLQ still holds the job
            log.exception("could not settle the records of dead-lettered job %s", job.message_id)

