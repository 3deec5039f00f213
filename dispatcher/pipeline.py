"""The pipeline: read -> eligibility -> chunk -> hook -> render -> send -> outcome log.

    read_stage ──chunks──▶ hook workers (N) ──batches──▶ send workers (M) ──▶ senders
        │                        │                              │
        └──────────── outcomes (INVALID, FILTERED, SUCCESS, ...) ┴──▶ OutcomeLog

Stages are small coroutines joined by anyio memory object streams with small buffers,
so a slow stage pushes back on the reader and memory stays flat. Hook and send
parallelism are fixed pools of workers pulling from a stream: a chunk only leaves the
reader when a worker is ready for it. Every record ends in exactly one outcome.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from dispatcher.channels.base import Message, Sender, SendResult
from dispatcher.chunking import Chunk, Chunker
from dispatcher.eligibility import Eligibility
from dispatcher.errors import HookError
from dispatcher.hooks.base import HookTransport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy, invoke_with_policy
from dispatcher.hooks.result import filter_result
from dispatcher.model import Definition, Outcome, Record, Status
from dispatcher.outcomes import OutcomeLog
from dispatcher.progress import Counters
from dispatcher.render import Composer
from dispatcher.segments import SegmentSource


class Limiter:
    """The rate-limiter interface the send stage needs (a no-op when there is no limit)."""

    async def acquire(self, n: int = 1) -> None:
        return None

    def throttled(self, retry_after: float | None = None) -> None:
        return None


@dataclass(slots=True)
class SendBatch:
    """Endpoints of one treatment that passed the hook, with their final definitions."""

    treatment: str
    items: list[tuple[Record, Definition]]


@dataclass(slots=True)
class Route:
    """Where one (treatment, ChannelType) goes: how to compose it and who sends it."""

    composer: Composer
    sender: Sender
    limiter: Limiter


@dataclass(slots=True)
class Stages:
    """Everything the stages share for one run."""

    source: SegmentSource
    eligibility: Eligibility
    chunker: Chunker
    log: OutcomeLog
    counters: Counters
    routes: dict[tuple[str, str], Route]
    transport: HookTransport | None
    events: EventBuilder
    policy: InvokePolicy
    delivery_mode: bool
    hook_concurrency: int
    send_concurrency: int
    send_attempts: int
    limiter: Limiter
    assign_treatment: Callable[[Record], Outcome | None] = lambda record: None
    ignored_hook_ids: int = 0

    def record(self, outcomes: Sequence[Outcome]) -> None:
        self.log.write(outcomes)
        for o in outcomes:
            if o.status is Status.SUCCESS:
                self.counters.sent += 1
            elif o.status not in _QUIET:
                self.counters.failed += 1


_QUIET = frozenset(
    {Status.FILTERED, Status.OPT_OUT, Status.INACTIVE, Status.UNSUPPORTED_CHANNEL,
     Status.DUPLICATE_ADDRESS, Status.HOLDOUT, Status.QUIET_TIME, Status.DAILY_CAP,
     Status.TOTAL_CAP}
)  # fmt: skip


async def run_stages(s: Stages) -> None:
    """Run all stages to completion."""
    chunk_tx, chunk_rx = anyio.create_memory_object_stream[Chunk](s.hook_concurrency)
    batch_tx, batch_rx = anyio.create_memory_object_stream[SendBatch](s.send_concurrency)
    async with anyio.create_task_group() as tg:
        if s.transport is None:
            chunk_rx.close()
            tg.start_soon(read_stage, s, None, batch_tx)
        else:
            for _ in range(s.hook_concurrency):
                tg.start_soon(hook_worker, s, chunk_rx.clone(), batch_tx.clone())
            chunk_rx.close()
            batch_tx.close()
            tg.start_soon(read_stage, s, chunk_tx, None)
        for _ in range(s.send_concurrency):
            tg.start_soon(send_worker, s, batch_rx.clone())
        batch_rx.close()


def _as_batch(chunk: Chunk) -> SendBatch:
    return SendBatch(chunk.treatment, [(r, r.definition) for r in chunk.records.values()])  # type: ignore[misc]


async def read_stage(
    s: Stages,
    chunk_tx: ObjectSendStream[Chunk] | None,
    batch_tx: ObjectSendStream[SendBatch] | None,
) -> None:
    """Read the segment, settle ineligible records at once, chunk the rest."""
    tx: ObjectSendStream[Any] = chunk_tx or batch_tx  # type: ignore[assignment]

    async def emit(chunk: Chunk) -> None:
        await tx.send(chunk if chunk_tx is not None else _as_batch(chunk))

    async with tx:
        async for batch in s.source.batches():
            settled: list[Outcome] = []
            ready: list[Chunk] = []
            for record in batch:
                outcome = s.eligibility.check(record) or s.assign_treatment(record)
                if outcome is not None:
                    settled.append(outcome)
                    continue
                closed = s.chunker.add(record)
                if closed is not None:
                    ready.append(closed)
            s.counters.read += len(batch)
            s.record(settled)
            for chunk in ready:
                await emit(chunk)
        for chunk in s.chunker.flush():
            await emit(chunk)


async def hook_worker(
    s: Stages, chunk_rx: ObjectReceiveStream[Chunk], batch_tx: ObjectSendStream[SendBatch]
) -> None:
    """Invoke the hook for each chunk under the invoke policy; forward what it keeps."""
    assert s.transport is not None
    transport = s.transport

    def count_attempt() -> None:
        s.counters.hook_invocations += 1

    async with chunk_rx, batch_tx:
        async for chunk in chunk_rx:
            records = chunk.records
            try:
                result = await invoke_with_policy(
                    transport, s.events.build(chunk), s.policy, on_attempt=count_attempt
                )
                if s.delivery_mode:
                    # Legacy DELIVERY: the function delivered; its return value is unused.
                    s.record([Outcome.of(r, Status.SUCCESS) for r in records.values()])
                    continue
                accepted, ignored = filter_result(result, records)
            except HookError as exc:
                reason = f"hook {transport.name}: {exc.reason}"
                s.record([Outcome.of(r, Status.HOOK_FAILURE, reason) for r in records.values()])
                continue
            s.ignored_hook_ids += ignored
            s.counters.hooked += len(accepted)
            settled, items = [], []
            for endpoint_id, record in records.items():
                definition = accepted.get(endpoint_id)
                if definition is None:
                    settled.append(Outcome.of(record, Status.FILTERED, "left out by the hook"))
                    continue
                # The hook may enrich, never redirect: identity stays the segment's.
                original = record.definition
                assert original is not None
                definition["ChannelType"] = original["ChannelType"]
                definition["Address"] = original["Address"]
                if definition.get("OptOut") == "ALL":
                    settled.append(Outcome.of(record, Status.OPT_OUT, "opted out by the hook"))
                    continue
                items.append((record, definition))
            s.record(settled)
            if items:
                await batch_tx.send(SendBatch(chunk.treatment, items))


async def send_worker(s: Stages, batch_rx: ObjectReceiveStream[SendBatch]) -> None:
    """Render each endpoint's message and deliver it through its channel's sender."""
    async with batch_rx:
        async for batch in batch_rx:
            by_route: dict[tuple[str, str], list[Message]] = {}
            for record, definition in batch.items:
                key = (batch.treatment, definition["ChannelType"])
                composer = s.routes[key].composer
                title, body, html_body = composer.compose(record.endpoint_id or "", definition)
                by_route.setdefault(key, []).append(
                    Message(
                        record.endpoint_id or "", record.line, key[1],
                        definition["Address"].strip(), title, body, html_body,
                        batch.treatment, definition, composer.template,
                    )
                )  # fmt: skip
            for key, messages in by_route.items():
                await deliver(s, s.routes[key], messages)


def _backoff(attempt: int, hint: float | None) -> float:
    if hint is not None:
        return min(hint, 30.0)
    return random.uniform(0, min(5.0, 0.25 * 2**attempt))


async def deliver(s: Stages, route: Route, messages: list[Message]) -> None:
    """Send with retries for provably unsent messages; record one outcome per message."""
    pending = messages
    for attempt in range(1, s.send_attempts + 1):
        retry: list[Message] = []
        hint: float | None = None
        size = route.sender.max_batch
        for start in range(0, len(pending), size):
            part = pending[start : start + size]
            await s.limiter.acquire(len(part))
            await route.limiter.acquire(len(part))
            results = await _send(route.sender, part)
            final: list[Outcome] = []
            for m, r in zip(part, results, strict=True):
                if r.status is Status.SUCCESS:
                    final.append(_outcome(m, Status.SUCCESS, None))
                elif r.retryable and attempt < s.send_attempts:
                    retry.append(m)
                    if r.status is Status.THROTTLED:
                        s.limiter.throttled(r.retry_after)
                        route.limiter.throttled(r.retry_after)
                    if r.retry_after is not None:
                        hint = max(hint or 0.0, r.retry_after)
                else:
                    final.append(_outcome(m, r.status, r.reason or r.status.value))
            s.record(final)
        if not retry:
            return
        await anyio.sleep(_backoff(attempt, hint))
        pending = retry


async def _send(sender: Sender, part: list[Message]) -> list[SendResult]:
    """Call a sender; a sender that breaks its contract fails these messages, not the run."""
    try:
        results = await sender.send(part)
    except Exception as exc:  # a provider bug must not lose the rest of the run
        reason = f"sender error, outcome unknown, not retried: {type(exc).__name__}: {exc}"
        return [SendResult(Status.TEMPORARY_FAILURE, reason) for _ in part]
    if len(results) != len(part):
        reason = f"sender returned {len(results)} results for {len(part)} messages"
        return [SendResult(Status.TEMPORARY_FAILURE, reason) for _ in part]
    return results


def _outcome(m: Message, status: Status, reason: str | None) -> Outcome:
    return Outcome(m.line, m.endpoint_id, status, reason, m.channel_type, m.treatment_id)
