"""A worker's side: the whole pipeline over the records its coordinator sends."""

from __future__ import annotations

import pickle
import signal
from contextlib import AsyncExitStack
from multiprocessing.connection import Connection
from typing import Any

import anyio
import anyio.to_thread
import orjson

from dispatcher.errors import DispatchError
from dispatcher.model import Record
from dispatcher.processes.protocol import END, WorkerSpec, error_json, report
from dispatcher.ratelimit import SharedCeilings, SqliteLeaseStore
from dispatcher.timeline import Timeline


def worker_main(records_fd: int, status_fd: int) -> None:
    """A worker process: run the pipeline over the records the coordinator sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    records = Connection(records_fd, writable=False)
    status = Connection(status_fd, readable=False)
    spec: WorkerSpec = pickle.loads(records.recv_bytes())
    try:
        anyio.run(_work, spec, records, status)
    except BaseException as exc:  # reported, then the process ends: nothing to clean up
        error = exc if isinstance(exc, DispatchError) else _dispatch_error_in(exc)
        if error is not None:
            report(status, {"error": error_json(error)})
        else:
            report(status, {"error": {"type": type(exc).__name__,
                                       "message": f"{type(exc).__name__}: {exc}"}})  # fmt: skip
        raise SystemExit(1) from None


def _dispatch_error_in(exc: BaseException) -> DispatchError | None:
    from dispatcher.attempts import dispatch_error

    return dispatch_error(exc)


class PipeSource:
    """The records the coordinator sends, as a ``SegmentSource``."""

    def __init__(self, records: Connection, name: str) -> None:
        self.records = records
        self.name = name
        self.ended = False
        """True when the coordinator said the segment ended (not merely a closed pipe)."""

    async def batches(self, *, start_line: int = 1) -> Any:
        while True:
            try:
                data = await anyio.to_thread.run_sync(self.records.recv_bytes,
                                                      abandon_on_cancel=True)  # fmt: skip
            except (EOFError, OSError):
                return  # the coordinator died: stop; a resume does the rest
            if data == END:
                self.ended = True
                return
            yield [Record(line, eid, definition, error)
                   for line, eid, definition, error in orjson.loads(data[1:])]  # fmt: skip


async def _work(spec: WorkerSpec, records: Connection, status: Connection) -> None:
    from dispatcher.attempts import Attempt, lines_to_skip
    from dispatcher.context import execute, open_context
    from dispatcher.ledger import SqliteLedger
    from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog
    from dispatcher.progress import Counters

    stop = anyio.Event()
    async with AsyncExitStack() as stack:
        ledger = SqliteLedger(spec.ledger)
        stack.push_async_callback(ledger.aclose)
        await ledger.join_run(spec.run_id)
        ctx = await open_context(spec.settings, stack, run_id=spec.run_id,
                                 started_at=spec.started_at, out=spec.out,
                                 call_hook=spec.call_hook)  # fmt: skip
        # Every ceiling is run-wide: the workers share each through leases in the ledger
        # file (short leases: a worker that dies gives its share back in seconds). Always,
        # since a ceiling may come from the provider (the SES account's MaxSendRate, read
        # as the senders open) as well as from the config; one never asked for costs
        # nothing (a lease starts when its ceiling is first used).
        store = SqliteLeaseStore(spec.ledger)
        stack.push_async_callback(store.aclose)
        ctx.ceilings = await stack.enter_async_context(
            SharedCeilings(store, scope=spec.run_id, ttl=4, renew_every=0.5, skew=0.5))
        attempt = Attempt(spec.run_id, spec.resume or spec.retry is not None, spec.resume,
                          spec.retry, False)  # fmt: skip
        skip, _ = await lines_to_skip(ledger, attempt)
        log = OutcomeLog(spec.out / OUTCOMES_FILE, shared=True)
        stack.callback(log.close)
        counters = Counters()
        timeline = Timeline(spec.timeline_start, ceiling=spec.ceiling, run_id=spec.run_id)
        source = PipeSource(records, name=f"worker {spec.index}")
        report(status, {"ready": True})

        def snapshot() -> dict[str, int]:
            return {"hooked": counters.hooked, "sent": counters.sent, "failed": counters.failed,
                    "hook_invocations": counters.hook_invocations}  # fmt: skip

        async def report_progress() -> None:
            while True:
                await anyio.sleep(0.5)
                report(status, {"progress": snapshot()})

        async def stop_on_sigterm() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    stop.set()
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(report_progress)
            tg.start_soon(stop_on_sigterm)
            stages = await execute(ctx, source=source, log=log, ledger=ledger, skip=skip,
                                   counters=counters, stop=stop, timeline=timeline)  # fmt: skip
            tg.cancel_scope.cancel()
        timeline.finish()
        report(status, {"done": {
            "progress": snapshot(),
            "hook_invocations": counters.hook_invocations,
            "ignored_hook_ids": stages.ignored_hook_ids,
            "complete": stages.complete and source.ended,
            "timeline": timeline.to_json(),
        }})  # fmt: skip
