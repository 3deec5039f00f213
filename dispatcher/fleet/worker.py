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
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.errors import DispatchError
from dispatcher.fleet.jobs import Delivery, ShardJob
from dispatcher.fleet.shard import ShardReport, run_shard, settle_dead_lettered

log = logging.getLogger("dispatcher.worker")

__all__ = ["Worker", "WorkerStats"]


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
    lease_writes: int = 0
    """DynamoDB writes of rate leases: what sharing the run's ceilings cost."""
    started: float = field(default_factory=time.monotonic)

    def add(self, report: ShardReport) -> None:
        """What one shard did, from its report (the stages' own counters)."""
        c = report.counters
        self.by_status.update(report.by_status)
        self.hook_invocations += c.hook_invocations
        self.hook_seconds += c.hook_seconds
        self.hook_chunks += c.hook_chunks
        self.sends += c.sent
        self.lease_writes += report.lease_writes


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
        log.info("worker %s stopped: %d shards done, %d failed, %d handed back, %s, "
                 "%d rate lease writes", self.name, s.shards_done, s.shards_failed,
                 s.shards_handed_back, dict(s.by_status), s.lease_writes)  # fmt: skip
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
            await self._handle(Delivery.of(messages[0]))

    # -- one job ---------------------------------------------------------------------------
    async def _handle(self, delivery: Delivery) -> None:
        sqs = await self.clients.client("sqs")
        self.stats.in_flight += 1
        finished = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, delivery)
                work = anyio.CancelScope()

                async def grace_on_stop() -> None:
                    await self._stopping.wait()
                    await anyio.sleep(self.grace)
                    work.cancel()

                tg.start_soon(grace_on_stop)
                with work:
                    report = await run_shard(delivery.job(), clients=self.clients,
                                             worker=self.name)  # fmt: skip
                    self.stats.add(report)
                    finished = True
                tg.cancel_scope.cancel()
        except Exception as exc:  # a failed shard must not stop the worker
            self.stats.shards_failed += 1
            log.exception("shard job %s failed (receive %d)", delivery.message_id,
                          delivery.receive_count)  # fmt: skip
            await self._give_up_if_last(delivery, exc)
            return
        finally:
            self.stats.in_flight -= 1
        if finished:
            await sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=delivery.receipt)
            self.stats.shards_done += 1
        else:
            with anyio.CancelScope(shield=True):
                await sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=delivery.receipt, VisibilityTimeout=0
                )
            self.stats.shards_handed_back += 1

    async def _heartbeat(self, delivery: Delivery) -> None:
        """Keep the message invisible while the shard is worked on."""
        sqs = await self.clients.client("sqs")
        while True:
            await anyio.sleep(max(1.0, self.visibility / 3))
            await sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=delivery.receipt,
                VisibilityTimeout=self.visibility,
            )  # fmt: skip

    async def _give_up_if_last(self, delivery: Delivery, exc: BaseException) -> None:
        """On the last receive, settle the shard's open records before the DLQ takes it."""
        if self.max_receives is None or delivery.receive_count < self.max_receives:
            return
        try:
            job: ShardJob = delivery.job()
            await settle_dead_lettered(job, self.clients, receives=delivery.receive_count,
                                       exc=exc)  # fmt: skip
        except Exception:  # the source itself may be what fails; the DLQ still holds the job
            log.exception("could not settle the records of dead-lettered job %s",
                          delivery.message_id)  # fmt: skip
