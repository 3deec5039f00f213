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
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from dispatcher.channels.base import Message, Sender, SendResult
from dispatcher.channels.ratelimit import Limiter
from dispatcher.chunking import Chunk, Chunker
from dispatcher.eligibility import AddressSet
from dispatcher.errors import HookError, SendError, StorageError
from dispatcher.eventstream import EventStream
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD, HookTransport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy, invoke_with_policy
from dispatcher.hooks.result import filter_result
from dispatcher.ledger import Claim, Ledger, SendClaim
from dispatcher.model import Definition, Outcome, Record, Status
from dispatcher.outcomes import OutcomeLog
from dispatcher.progress import Counters
from dispatcher.render import Composer, RenderFailed
from dispatcher.segments import SegmentSource
from dispatcher.timeline import Timeline


class NoLimit:
    """The limiter of a route with no rate limit."""

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
    sender_name: str = "outbox"
    max_grant: int = 1 << 30
    """The largest batch the limiter may grant at once (a ceiling of 1/s grants 1)."""


Admit = Callable[
    [list[Record], Callable[[int], bool] | None], Awaitable[tuple[list[Outcome], list[Record]]]
]


@dataclass(slots=True)
class Stages:
    """Everything the stages share for one run."""

    run_id: str
    campaign_id: str
    source: SegmentSource
    admit: Admit
    """Eligibility, dedup, treatments, quiet time and caps for a batch of records."""
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
    ledger: Ledger | None = None
    skip: Callable[[int], bool] | None = None
    """Lines already settled (resume) or not selected (retry): read, not dispatched."""
    expired: Callable[[], bool] = lambda: False
    ignored_hook_ids: int = 0
    event_stream: EventStream | None = None
    stop: anyio.Event | None = None
    """Set to stop: calls in flight finish; unread records and chunks not yet started keep
    no outcome (a resume does them), and ``complete`` turns False."""
    complete: bool = True
    """False when ``stop`` left records without an outcome."""
    claimed_ids: AddressSet | None = None
    """Endpoint ids sent in this run, when there is no ledger to claim them in."""
    timeline: Timeline | None = None
    """Per-second counters for the run report."""
    empty_variables: EmptyVariables | None = None
    """Counts message variables that rendered empty (dry runs)."""

    def stopping(self) -> bool:
        """Whether a stop was asked for; records passed over from now on stay open."""
        if self.stop is not None and self.stop.is_set():
            self.complete = False
            return True
        return False

    async def record(
        self,
        outcomes: Sequence[Outcome],
        *,
        release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
        definitions: Sequence[Definition | None] | None = None,
    ) -> None:
        """Log terminal outcomes, make them durable in the ledger, publish them as events.

        ``definitions`` (parallel to ``outcomes``) are the endpoint records the event
        stream embeds in ``client_context.custom.endpoint``.
        """
        # The ledger first: it is the record a resume trusts, the log is derived from it.
        if self.ledger is not None:
            await self.ledger.record(self.run_id, outcomes, release=release, sent=sent)
        self.log.write(outcomes)
        counters, timeline = self.counters, self.timeline
        for o in outcomes:
            if o.status is Status.SUCCESS:
                counters.sent += 1
            elif o.status not in _QUIET:
                counters.failed += 1
            if timeline is not None:
                timeline.outcome(o.status.value)
        if self.event_stream is not None and outcomes:
            defs = definitions if definitions is not None else [None] * len(outcomes)
            await self.event_stream.publish(zip(outcomes, defs, strict=True))


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
            if s.stopping():
                return  # the rest stays unread, open chunks unsent: resume does them
            s.counters.read += len(batch)
            settled, admitted = await s.admit(batch, s.skip)
            ready: list[Chunk] = []
            for record in admitted:
                closed = s.chunker.add(record)
                if closed is not None:
                    ready.append(closed)
            await s.record(settled)
            for chunk in ready:
                await emit(chunk)
        for chunk in s.chunker.flush():
            await emit(chunk)


async def hook_worker(
    s: Stages, chunk_rx: ObjectReceiveStream[Chunk], batch_tx: ObjectSendStream[SendBatch]
) -> None:
    """Invoke the hook for each chunk under the invoke policy; forward what it keeps."""
    async with chunk_rx, batch_tx:
        async for chunk in chunk_rx:
            if s.stopping():
                continue  # not started: left for resume
            records = chunk.records
            if s.expired():
                await s.record(
                    [Outcome.of(r, Status.EXPIRED, EXPIRED_REASON) for r in records.values()]
                )
                continue
            if s.delivery_mode:
                # Legacy DELIVERY: invoking the function *is* the send, so claim first.
                records = await _claim_chunk(s, chunk)
                if not records:
                    continue
            events, too_big = s.events.fit(chunk.treatment, records)
            if too_big:
                await s.record(
                    [Outcome.of(r, Status.INVALID, TOO_BIG_REASON) for r in too_big],
                    release=[r.endpoint_id or "" for r in too_big] if s.delivery_mode else (),
                )
            for part, event in events:
                await _hook_event(s, chunk.treatment, part, event, batch_tx)


TOO_BIG_REASON = (
    f"endpoint definition too large: alone it makes a hook event over Lambda's "
    f"{MAX_SYNC_PAYLOAD}-byte payload limit; not sent to the hook"
)


def _hook_done(s: Stages, began: float, *, ok: bool) -> None:
    latency = time.monotonic() - began
    s.counters.hook_chunks += 1
    s.counters.hook_seconds += latency
    if s.timeline is not None:
        s.timeline.hook(latency, ok)


async def _hook_event(
    s: Stages,
    treatment: str,
    records: dict[str, Record],
    event: bytes,
    batch_tx: ObjectSendStream[SendBatch],
) -> None:
    """One hook event: invoke, settle what the hook leaves out, forward the rest."""
    assert s.transport is not None
    transport = s.transport

    def count_attempt() -> None:
        s.counters.hook_invocations += 1

    began = time.monotonic()
    try:
        result = await invoke_with_policy(transport, event, s.policy, on_attempt=count_attempt)
        if not s.delivery_mode:
            accepted, ignored = filter_result(result, records)
    except HookError as exc:
        _hook_done(s, began, ok=False)
        reason = f"hook {transport.name}: {exc.reason}"
        await s.record([Outcome.of(r, Status.HOOK_FAILURE, reason) for r in records.values()])
        return
    _hook_done(s, began, ok=True)
    if s.delivery_mode:
        # The function delivered; its return value is unused.
        await s.record(
            [Outcome.of(r, Status.SUCCESS) for r in records.values()],
            sent=[(eid, s.campaign_id) for eid in records],
        )
        return
    s.ignored_hook_ids += ignored
    s.counters.hooked += len(accepted)
    settled: list[Outcome] = []
    settled_defs: list[Definition | None] = []
    items = []
    for endpoint_id, record in records.items():
        definition = accepted.get(endpoint_id)
        if definition is None:
            settled.append(Outcome.of(record, Status.FILTERED, "left out by the hook"))
            settled_defs.append(record.definition)
            continue
        # The hook may enrich, never redirect: identity stays the segment's.
        original = record.definition
        assert original is not None
        definition["ChannelType"] = original["ChannelType"]
        definition["Address"] = original["Address"]
        if definition.get("OptOut") == "ALL":
            settled.append(Outcome.of(record, Status.OPT_OUT, "opted out by the hook"))
            settled_defs.append(definition)
            continue
        items.append((record, definition))
    await s.record(settled, definitions=settled_defs)
    if items:
        await batch_tx.send(SendBatch(treatment, items))


async def send_worker(s: Stages, batch_rx: ObjectReceiveStream[SendBatch]) -> None:
    """Render each endpoint's message and deliver it through its channel's sender."""
    async with batch_rx:
        async for batch in batch_rx:
            if s.stopping():
                continue
            if s.expired():
                await s.record(
                    [Outcome.of(r, Status.EXPIRED, EXPIRED_REASON) for r, _ in batch.items]
                )
                continue
            by_route, failed = _render(s, batch)
            if failed:
                await s.record([f[0] for f in failed], definitions=[f[1] for f in failed])
            for key, messages in by_route.items():
                await deliver(s, s.routes[key], messages)


def _render(
    s: Stages, batch: SendBatch
) -> tuple[dict[tuple[str, str], list[Message]], list[tuple[Outcome, Definition]]]:
    """Each endpoint's message, by route; an endpoint whose message cannot be rendered
    (strict mode, a helper refusing its value) fails alone, PERMANENT_FAILURE."""
    by_route: dict[tuple[str, str], list[Message]] = {}
    failed: list[tuple[Outcome, Definition]] = []
    empty = s.empty_variables
    missing: list[str] | None = [] if empty is not None else None
    for record, definition in batch.items:
        key = (batch.treatment, definition["ChannelType"])
        composer = s.routes[key].composer
        endpoint_id = record.endpoint_id or ""
        try:
            title, body, html_body = composer.compose(endpoint_id, definition, missing)
            headers = composer.render_headers(endpoint_id, definition)
        except RenderFailed as exc:
            failed.append((Outcome.of(record, Status.PERMANENT_FAILURE, exc.reason), definition))
            continue
        finally:
            if empty is not None and missing is not None:
                empty.count(composer, missing)
                missing.clear()
        by_route.setdefault(key, []).append(
            Message(
                endpoint_id, record.line, key[1], definition["Address"].strip(), title, body,
                html_body, batch.treatment, definition, composer.template, headers,
            )
        )  # fmt: skip
    return by_route, failed


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
        size = max(1, min(route.sender.max_batch, route.max_grant))
        for start in range(0, len(pending), size):
            part = pending[start : start + size]
            if attempt == 1:
                part = await (_claim(s, route.sender_name, part) if s.ledger is not None
                              else _claim_in_memory(s, part))  # fmt: skip
                if not part:
                    continue
            await route.limiter.acquire(len(part))
            if s.timeline is not None:
                s.timeline.sent(len(part), part[0].channel_type)
            results = await _send(route.sender, part)
            if s.timeline is not None:
                throttled = sum(r.status is Status.THROTTLED for r in results)
                if throttled:
                    s.timeline.throttled(throttled)
            final: list[Outcome] = []
            final_messages: list[Message] = []
            release: list[str] = []
            sent: list[tuple[str, str]] = []
            for m, r in zip(part, results, strict=True):
                if r.status is Status.SUCCESS:
                    final.append(_outcome(m, Status.SUCCESS, None))
                    final_messages.append(m)
                    sent.append((m.endpoint_id, s.campaign_id))
                    continue
                if r.retryable and attempt < s.send_attempts:
                    retry.append(m)
                    if r.status is Status.THROTTLED:
                        route.limiter.throttled(r.retry_after)
                    if r.retry_after is not None:
                        hint = max(hint or 0.0, r.retry_after)
                    continue
                final.append(_outcome(m, r.status, r.reason or r.status.value))
                final_messages.append(m)
                if r.retryable or r.unsent or r.status is Status.PERMANENT_FAILURE:
                    release.append(m.endpoint_id)  # provably not sent: retry may try again
            await s.record(final, release=release, sent=sent,
                           definitions=[m.definition for m in final_messages])  # fmt: skip
        if not retry:
            return
        await anyio.sleep(_backoff(attempt, hint))
        pending = retry


IN_DOUBT_REASON = "send in doubt: an earlier attempt of this run may have sent it; not re-sent"
EXPIRED_REASON = "not sent within the campaign's MaximumDuration"


async def _claim(s: Stages, sender_name: str, part: list[Message]) -> list[Message]:
    """Claim endpoints in the ledger before sending; settle those already claimed."""
    assert s.ledger is not None
    answers = await s.ledger.claim(
        s.run_id, [SendClaim(m.endpoint_id, m.line, sender_name) for m in part]
    )
    granted: list[Message] = []
    settled: list[Outcome] = []
    for m, answer in zip(part, answers, strict=True):
        if answer is Claim.GRANTED:
            granted.append(m)
        elif answer is Claim.SENT:
            settled.append(_outcome(m, Status.SUCCESS, None))
        elif answer is Claim.IN_DOUBT:
            settled.append(_outcome(m, Status.TEMPORARY_FAILURE, IN_DOUBT_REASON))
        else:
            settled.append(_outcome(m, Status.INVALID, OTHER_LINE_REASON))
    if settled:
        await s.record(settled)
    return granted


OTHER_LINE_REASON = "endpoint Id already used by another record of this segment"


async def _claim_in_memory(s: Stages, part: list[Message]) -> list[Message]:
    """Without a ledger, an endpoint Id is still sent once per run (the first record)."""
    if s.claimed_ids is None:
        s.claimed_ids = AddressSet()
    claimed = s.claimed_ids
    granted = [m for m in part if claimed.add(m.endpoint_id)]
    if len(granted) < len(part):
        kept = {id(m) for m in granted}
        await s.record([_outcome(m, Status.INVALID, OTHER_LINE_REASON)
                        for m in part if id(m) not in kept])  # fmt: skip
    return granted


async def _claim_chunk(s: Stages, chunk: Chunk) -> dict[str, Record]:
    """DELIVERY mode: claim a chunk's endpoints; the chunk keeps only granted ones."""
    as_messages = [
        Message(eid, r.line, r.channel_type or "", "", None, None, treatment_id=chunk.treatment)
        for eid, r in chunk.records.items()
    ]
    claim = _claim(s, "hook", as_messages) if s.ledger is not None else _claim_in_memory(
        s, as_messages)  # fmt: skip
    granted = {m.endpoint_id for m in await claim}
    chunk.records = {eid: r for eid, r in chunk.records.items() if eid in granted}
    return chunk.records


async def _send(sender: Sender, part: list[Message]) -> list[SendResult]:
    """Call a sender; a sender that breaks its contract fails these messages, not the run."""
    try:
        results = await sender.send(part)
    except StorageError:
        raise  # the run's own files (the outbox) cannot be written: stop, nothing is lost
    except SendError as exc:  # the sender is unusable (e.g. no credentials): nothing left
        reason = f"sender unusable, not sent: {exc}"
        return [SendResult(Status.TEMPORARY_FAILURE, reason, unsent=True) for _ in part]
    except Exception as exc:  # a provider bug must not lose the rest of the run
        reason = f"sender error, outcome unknown, not retried: {type(exc).__name__}: {exc}"
        return [SendResult(Status.TEMPORARY_FAILURE, reason) for _ in part]
    if len(results) != len(part):
        reason = f"sender returned {len(results)} results for {len(part)} messages"
        return [SendResult(Status.TEMPORARY_FAILURE, reason) for _ in part]
    return results


class EmptyVariables:
    """Which message variables rendered empty, and in how many of the messages whose
    templates print them (the messages of every route that reported the variable)."""

    def __init__(self) -> None:
        self.empty: dict[str, int] = {}
        self.messages: dict[int, int] = {}
        self.routes: dict[str, set[int]] = {}

    def count(self, composer: Composer, missing: list[str]) -> None:
        route = id(composer)
        self.messages[route] = self.messages.get(route, 0) + 1
        for path in set(missing):
            self.empty[path] = self.empty.get(path, 0) + 1
            self.routes.setdefault(path, set()).add(route)

    def report(self) -> list[str]:
        """One line per variable that was empty at least once, most often first."""
        ranked = sorted(self.empty.items(), key=lambda kv: (-kv[1], kv[0]))
        return [f"{path}: empty in {n} of "
                f"{sum(self.messages[r] for r in self.routes[path])} messages"
                for path, n in ranked]  # fmt: skip


def _outcome(m: Message, status: Status, reason: str | None) -> Outcome:
    return Outcome(m.line, m.endpoint_id, status, reason, m.channel_type, m.treatment_id)
