"""The pipeline: read -> eligibility -> chunk -> hook -> render -> send -> outcome log.

    read_stage ──chunks──▶ hook stage (≤ limit chunks) ──batches──▶ send workers (M) ──▶ senders
        │                        │                                       │
        └──────────── outcomes (INVALID, FILTERED, SUCCESS, ...) ─────────┴──▶ OutcomeLog

Stages are small coroutines joined by anyio memory object streams with small buffers,
so a slow stage pushes back on the reader and memory stays flat. The hook stage takes a
slot from its gate before it takes a chunk off the stream: ``hook_concurrency`` slots
when set, else a number that adapts to the function's latency and throttling, up to
``hook_concurrency_max`` (``dispatcher.hooks.concurrency``). Send parallelism is a fixed
pool of workers pulling from a stream. Every record ends in exactly one outcome.
"""

from __future__ import annotations

from typing import Any

import anyio
from anyio.abc import ObjectSendStream

from dispatcher.chunking import Chunk
from dispatcher.delivery import send_worker
from dispatcher.hooks.concurrency import for_transport
from dispatcher.hooks.stage import hook_stage
from dispatcher.stages import SendBatch, Stages

ADAPTIVE_CHUNK_BUFFER = 8
"""Chunks the reader may have ready ahead of the adaptive hook stage. Small: the gate's
slots are the bound that matters, and the reader cuts chunks far faster than a hook
answers them."""


async def run_stages(s: Stages) -> None:
    """Run all stages to completion."""
    # A fixed concurrency keeps its old buffer (as many chunks as workers).
    buffer = s.hook_concurrency if s.hook_concurrency > 0 else ADAPTIVE_CHUNK_BUFFER
    chunk_tx, chunk_rx = anyio.create_memory_object_stream[Chunk](buffer)
    batch_tx, batch_rx = anyio.create_memory_object_stream[SendBatch](s.send_concurrency)
    async with anyio.create_task_group() as tg:
        if s.transport is None:
            chunk_rx.close()
            tg.start_soon(read_stage, s, None, batch_tx)
        else:
            gate = for_transport(s.hook_concurrency, s.transport)
            tg.start_soon(hook_stage, s, chunk_rx, batch_tx, gate)
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
