"""The coordinator's side: start the workers, feed them the segment, gather their ends."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import orjson

from dispatcher.errors import ConfigError, WorkerLost
from dispatcher.model import Record
from dispatcher.processes.protocol import END, RECORDS, WorkerSpec, error_from
from dispatcher.progress import Counters
from dispatcher.segments import SegmentSource
from dispatcher.timeline import Timeline

logger = logging.getLogger("dispatcher.run")

BATCH = 256
"""Records per message to a worker: large enough that pipe and thread hops are cheap."""


def processes_arg(text: str) -> int:
    """``--processes N`` or ``auto`` (the machine's cores)."""
    value = text.strip().lower()
    if value == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"must be a number of processes >= 1 or 'auto', got {text!r}",
                          key="--processes")  # fmt: skip
    return n


def partition_of(record: Record, n: int) -> int:
    """The worker a record goes to: by ChannelType + trimmed Address (stable across
    runs and processes, so a resume with another N still keeps twins together)."""
    d = record.definition
    if d is not None:
        channel, address = d.get("ChannelType"), d.get("Address")
        if isinstance(channel, str) and isinstance(address, str):
            key = f"{channel}\x1f{address.strip()}".encode("utf-8", "surrogatepass")
            return zlib.crc32(key) % n
    return record.line % n  # invalid: any worker settles it


@dataclass(slots=True)
class Partitioned:
    """What the workers of a run did, summed."""

    hook_invocations: int = 0
    ignored_hook_ids: int = 0
    complete: bool = True
    per_worker: dict[int, dict[str, int]] = field(default_factory=dict)
    empty_variables: None = None
    """(What ``Stages`` reports for dry runs, which never run partitioned.)"""


async def run_partitioned(
    specs: list[WorkerSpec],
    *,
    source: SegmentSource,
    counters: Counters,
    timeline: Timeline | None,
    stop: anyio.Event | None,
    progress: Callable[[], Any] | None = None,
    locks: tuple[int, ...] = (),
) -> Partitioned:
    """Start the workers, feed them the segment, wait for them; ``WorkerLost`` if one
    died, ``ConfigError`` (or another DispatchError) if one could not start. ``locks``
    (the run's lock descriptors) are inherited: should the coordinator die, the ledger
    stays locked until its workers have finished what they hold."""
    result = Partitioned()
    workers = [_Worker.start(spec, locks) for spec in specs]
    logger.info("started %d worker processes: %s", len(workers),
             ", ".join(str(w.process.pid) for w in workers))  # fmt: skip
    lost = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            for w in workers:
                await w.ready()
            for w in workers:
                tg.start_soon(w.listen, result, counters, timeline, lost)
            if progress is not None:
                tg.start_soon(progress)
            fed = await _feed(workers, source, counters, stop, lost)
            for w in workers:
                await w.end()
            for w in workers:
                await w.finished.wait()
            tg.cancel_scope.cancel()
        result.complete = result.complete and fed
        dead = [w for w in workers if w.done is None]
        if dead:
            codes = ", ".join(f"worker {w.index}: {_exit_text(w.process.poll())}"
                              for w in dead)  # fmt: skip
            raise WorkerLost(f"a worker process died ({codes}); the other workers stopped",
                             run_id=specs[0].run_id)  # fmt: skip
        return result
    finally:
        with anyio.CancelScope(shield=True):
            await _reap(workers)


async def _feed(workers: list[_Worker], source: SegmentSource, counters: Counters,
                stop: anyio.Event | None, lost: anyio.Event) -> bool:  # fmt: skip
    """Send every record to its worker; False when stopped (or a worker lost) first."""
    n = len(workers)
    parts: list[list[list[Any]]] = [[] for _ in workers]
    async for batch in source.batches():
        if (stop is not None and stop.is_set()) or lost.is_set():
            return False
        counters.read += len(batch)
        for record in batch:
            part = parts[partition_of(record, n)]
            part.append([record.line, record.endpoint_id, record.definition, record.error])
        for k, part in enumerate(parts):
            if len(part) >= BATCH:
                if not await workers[k].send(RECORDS + orjson.dumps(part)):
                    lost.set()
                    return False
                parts[k] = []
    for k, part in enumerate(parts):
        if part and not await workers[k].send(RECORDS + orjson.dumps(part)):
            lost.set()
            return False
    return True


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Worker:
    """The coordinator's end of one worker: its process and two pipes."""

    def __init__(self, index: int, process: subprocess.Popen[bytes], records: Connection,
                 status: Connection) -> None:  # fmt: skip
        self.index = index
        self.process = process
        self.records = records
        self.status = status
        self.done: dict[str, Any] | None = None
        self.finished = anyio.Event()

    @classmethod
    def start(cls, spec: WorkerSpec, locks: tuple[int, ...]) -> _Worker:
        """``python -m dispatcher.processes`` with the two pipes' ends: a fresh
        interpreter (no fork of a running event loop, and unlike multiprocessing's spawn,
        no re-import of the caller's ``__main__``), the spec as its first message."""
        records_out, records_in = multiprocessing.Pipe(duplex=False)
        status_in, status_out = multiprocessing.Pipe(duplex=False)
        fds = (records_out.fileno(), status_out.fileno())
        env = dict(os.environ)
        # The worker imports this very package, wherever the coordinator found it.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # --log-level reaches the workers too (a hook's traceback is logged where it ran).
        level = str(logging.getLevelName(logging.getLogger("dispatcher").getEffectiveLevel()))
        level = level.lower()
        if logging.getLogger().handlers and level in ("debug", "info", "warning", "error"):
            env["DISPATCHER_LOG_LEVEL"] = level
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.processes", *map(str, fds)],
            pass_fds=(*fds, *locks), env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        records_out.close()
        status_out.close()
        records_in.send_bytes(pickle.dumps(spec))
        return cls(spec.index, process, records_in, status_in)

    async def send(self, data: bytes) -> bool:
        try:
            await anyio.to_thread.run_sync(self.records.send_bytes, data)
        except (BrokenPipeError, ConnectionError, OSError):
            return False
        return True

    async def end(self) -> None:
        await self.send(END)
        self.records.close()

    async def _receive(self) -> dict[str, Any] | None:
        try:
            data = await anyio.to_thread.run_sync(self.status.recv_bytes, abandon_on_cancel=True)
        except (EOFError, OSError):
            return None
        message: dict[str, Any] = orjson.loads(data)
        return message

    async def ready(self) -> None:
        """Wait until the worker has built its hook transport and senders; re-raise its
        configuration error here, before anything was sent."""
        message = await self._receive()
        if message is None:
            raise WorkerLost(f"worker {self.index} exited while starting "
                             f"({_exit_text(self.process.poll())})", run_id="")  # fmt: skip
        if "error" in message:
            raise error_from(message["error"])

    async def listen(self, result: Partitioned, counters: Counters,
                     timeline: Timeline | None, lost: anyio.Event) -> None:  # fmt: skip
        try:
            while True:
                message = await self._receive()
                if message is None:
                    lost.set()  # died: stop feeding the others
                    return
                if "progress" in message:
                    result.per_worker[self.index] = message["progress"]
                    _sum_progress(result, counters)
                elif "done" in message:
                    done = self.done = message["done"]
                    result.per_worker[self.index] = done["progress"]
                    _sum_progress(result, counters)
                    result.hook_invocations += done["hook_invocations"]
                    result.ignored_hook_ids += done["ignored_hook_ids"]
                    result.complete = result.complete and done["complete"]
                    if timeline is not None and done.get("timeline"):
                        timeline.add(Timeline.from_json(done["timeline"]))
                    return
                elif "error" in message:
                    lost.set()
                    raise error_from(message["error"])
        finally:
            self.finished.set()


def _sum_progress(result: Partitioned, counters: Counters) -> None:
    rows = result.per_worker.values()
    counters.hooked = sum(r["hooked"] for r in rows)
    counters.sent = sum(r["sent"] for r in rows)
    counters.failed = sum(r["failed"] for r in rows)
    counters.hook_invocations = sum(r["hook_invocations"] for r in rows)


async def _reap(workers: list[_Worker]) -> None:
    """Every worker process gone before we return: asked (SIGTERM), then told (SIGKILL)."""
    for w in workers:
        try:
            w.records.close()
        except OSError:
            pass
    deadline = anyio.current_time() + 30
    for w in workers:
        for stop, grace in ((None, deadline - anyio.current_time()), (w.process.terminate, 5),
                            (w.process.kill, 5)):  # fmt: skip
            if w.process.poll() is not None:
                break
            if stop is not None:
                stop()
            try:
                await anyio.to_thread.run_sync(w.process.wait, max(grace, 0.0))
            except subprocess.TimeoutExpired:
                continue
        w.status.close()
