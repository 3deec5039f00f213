"""The hook stage: each chunk's event to the hook under the invoke policy; what the hook
keeps goes on to delivery, what it leaves out ends FILTERED (or OPT_OUT by the hook).

How many chunks are at the hook at once is the gate's business
(``dispatcher.hooks.concurrency``): the stage takes a slot *before* it takes a chunk off
the stream, then starts one task for that chunk, so the number of chunks in memory is
bounded by the gate and a full gate pushes back on the reader.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from dispatcher.chunking import Chunk
from dispatcher.delivery import claim_chunk
from dispatcher.errors import HookAttemptError, HookError
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD
from dispatcher.hooks.concurrency import HookConcurrency
from dispatcher.hooks.invoke import invoke_with_policy
from dispatcher.hooks.result import filter_result
from dispatcher.hooks.tracebacks import log_hook_failure
from dispatcher.model import Definition, Outcome, Record, Status
from dispatcher.stages import EXPIRED_REASON, SendBatch, Stages


async def hook_stage(
    s: Stages,
    chunk_rx: ObjectReceiveStream[Chunk],
    batch_tx: ObjectSendStream[SendBatch],
    gate: HookConcurrency,
) -> None:
    """Start each chunk at the hook once the gate has a slot for it; forward what the hook
    keeps. Returns when the stream has ended and every started chunk is done."""
    async with chunk_rx, batch_tx, anyio.create_task_group() as tg:
        while True:
            await gate.acquire()
            try:
                chunk = await chunk_rx.receive()
            except anyio.EndOfStream:
                gate.release()
                return
            tg.start_soon(_hook_chunk, s, chunk, batch_tx, gate)


async def _hook_chunk(
    s: Stages, chunk: Chunk, batch_tx: ObjectSendStream[SendBatch], gate: HookConcurrency
) -> None:
    try:
        await hook_chunk(s, chunk, batch_tx, gate)
    finally:
        gate.release()


async def hook_chunk(
    s: Stages,
    chunk: Chunk,
    batch_tx: ObjectSendStream[SendBatch],
    gate: HookConcurrency | None = None,
) -> None:
    """Invoke the hook for one chunk under the invoke policy; forward what it keeps."""
    if s.stopping():
        return  # not started: left for resume
    records = chunk.records
    if s.expired():
        await s.record([Outcome.of(r, Status.EXPIRED, EXPIRED_REASON) for r in records.values()])
        return
    if s.delivery_mode:
        # Legacy DELIVERY: invoking the function *is* the send, so claim first.
        records = await claim_chunk(s, chunk)
        if not records:
            return
    events, too_big = s.events.fit(chunk.treatment, records)
    if too_big:
        await s.record(
            [Outcome.of(r, Status.INVALID, TOO_BIG_REASON) for r in too_big],
            release=[r.endpoint_id or "" for r in too_big] if s.delivery_mode else (),
        )
    for part, event in events:
        await _hook_event(s, chunk.treatment, part, event, batch_tx, gate)


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
    gate: HookConcurrency | None,
) -> None:
    """One hook event: invoke, settle what the hook leaves out, forward the rest."""
    assert s.transport is not None
    transport = s.transport

    def count_attempt() -> None:
        s.counters.hook_invocations += 1

    def count_throttle() -> None:
        if s.timeline is not None:
            s.timeline.throttled()

    began = time.monotonic()
    try:
        result = await invoke_with_policy(
            transport,
            event,
            s.policy,
            on_attempt=count_attempt,
            on_throttle=count_throttle,
            gate=gate,
            keep_waiting=lambda: not s.stopping() and not s.expired(),
        )
        if not s.delivery_mode:
            accepted, ignored = filter_result(result, records)
    except HookError as exc:
        _hook_done(s, began, ok=False)
        if isinstance(exc, HookAttemptError) and exc.throttled and not s.delivery_mode:
            # The function never ran this event: a stopping run leaves it for resume,
            # an expired campaign ends it EXPIRED, as if it had not been started.
            if s.stopping():
                return
            if s.expired():
                await s.record(
                    [Outcome.of(r, Status.EXPIRED, EXPIRED_REASON) for r in records.values()]
                )
                return
        log_hook_failure(transport, transport.name, exc)
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
