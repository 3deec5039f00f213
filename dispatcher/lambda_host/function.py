"""One function's workers: admission, warm reuse, timeouts, replacement.

Concurrency works like Lambda's reserved concurrency. ``concurrency`` slots bound the
invocations in flight; a synchronous invoke that finds no free slot is throttled at
once (429), an ``Event`` invoke waits for one (Lambda queues asynchronous events). A
slot is taken *before* a worker is chosen, so at most ``concurrency`` workers are ever
busy and a free slot always finds either an idle warm worker or room for a new one:
workers are started on demand up to the limit and kept warm, most recently used first.

The function's clock starts when its worker takes the event from ``next``
(``Lambda-Runtime-Deadline-Ms`` is set then); starting the worker (Lambda's init phase)
has a separate budget, ``init_timeout``. A worker that overruns either is SIGKILLed
and the caller gets ``Unhandled`` ``Sandbox.Timedout``; a worker that exits mid-invoke
gives ``Runtime.ExitError`` (or the init error it reported). Dead workers are not
restarted eagerly: the next invocation that needs a worker starts one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from dispatcher.lambda_host.invocation import UNHANDLED, Invocation, timeout_message
from dispatcher.lambda_host.spec import FunctionSpec
from dispatcher.lambda_host.worker import Worker, WorkerConfig, exit_reason

log = logging.getLogger("dispatcher.lambda_host")


class Throttled(Exception):
    """No free concurrency slot (mapped to 429 by the Invoke API)."""


@dataclass
class FunctionStats:
    """Counters of one function, as ``LambdaHost.stats()`` reports them."""

    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    timeouts: int = 0
    crashes: int = 0
    workers_started: int = 0
    workers: int = 0
    in_flight: int = 0


class FunctionPool:
    """The workers of one function and the invocations they run."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        config: WorkerConfig,
        task_group: TaskGroup,
        sites: RuntimeSites,
        init_timeout: float = 10.0,
    ) -> None:
        self.spec = spec
        self._config = config
        self._tg = task_group
        self._sites = sites
        self._init_timeout = init_timeout
        self._slots = anyio.Semaphore(spec.concurrency)
        self._idle: list[Worker] = []
        self._workers: set[Worker] = set()
        self._unreaped: set[Worker] = set()
        self._stats = FunctionStats()
        self._changed = anyio.Event()
        self.closing = False

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<FunctionPool {self.spec.name} workers={s.workers} in_flight={s.in_flight} "
            f"invocations={s.invocations} errors={s.errors} throttles={s.throttles}>"
        )

    def stats(self) -> FunctionStats:
        s = self._stats
        s.workers = len(self._workers)
        s.in_flight = self.spec.concurrency - self._slots.value
        return FunctionStats(**vars(s))

    # -- admission ---------------------------------------------------------------------

    def try_acquire(self) -> None:
        """Take a slot for a synchronous invoke, or raise Throttled."""
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            self._stats.throttles += 1
            raise Throttled from None

    def throttled(self) -> None:
        """Count a throttle decided elsewhere (a full ``Event`` queue)."""
        self._stats.throttles += 1

    async def acquire(self) -> None:
        """Wait for a slot (asynchronous ``Event`` invokes)."""
        await self._slots.acquire()

    def release(self) -> None:
        self._slots.release()
        self._notify()

    def _notify(self) -> None:
        """Wake ``wait_until_idle`` / ``wait_until_reaped`` to re-check their condition."""
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until_idle(self) -> None:
        """Return when no invocation is in flight."""
        while self._slots.value < self.spec.concurrency:
            await self._changed.wait()

    async def wait_until_reaped(self) -> None:
        """Return when every worker process started so far has been reaped."""
        while self._unreaped:
            await self._changed.wait()

    # -- running one invocation (the caller holds a slot) ----------------------------------

    async def run(self, inv: Invocation) -> None:
        """Run ``inv`` on a worker and wait for its outcome (always finishes ``inv``)."""
        self._stats.invocations += 1
        worker = await self._hand_over(inv)
        if worker is not None and not inv.finished.is_set():
            remaining = inv.started + self.spec.timeout - anyio.current_time()
            with anyio.move_on_after(remaining):
                await inv.finished.wait()
            if not inv.finished.is_set():
                self._timed_out(worker, inv, self.spec.timeout)
        if inv.function_error is not None:
            self._stats.errors += 1

    async def _hand_over(self, inv: Invocation) -> Worker | None:
        """Give ``inv`` to a worker and wait until it takes it (``next``).

        Returns that worker, or None when ``inv`` was finished on the way (init error,
        init timeout, shutdown). A warm worker can exit between two invocations (a
        runtime that exits after posting its result): the event then goes to another
        worker, as Lambda would run it in a fresh environment.
        """
        for _ in range(3):
            if self.closing:
                inv.fail("Runtime.Unavailable", "the Lambda host is shutting down")
                return None
            if self._idle:
                worker = self._idle.pop()
                worker.current = inv
                worker.inbox.send_nowait(inv)
            else:
                try:
                    worker = await self._start_worker(inv)
                except OSError as exc:  # e.g. the interpreter or node cannot be executed
                    self._stats.crashes += 1
                    inv.fail("Runtime.InvalidEntrypoint", f"cannot start the runtime: {exc}")
                    return None
            with anyio.move_on_after(self._init_timeout):
                await inv.delivered.wait()
            if not inv.delivered.is_set():
                self._timed_out(worker, inv, self._init_timeout)
                return None
            if not inv.bounced:
                return worker
            inv.rearm()
        inv.fail("Runtime.ExitError", "workers exited before taking the event")
        return None

    def _timed_out(self, worker: Worker, inv: Invocation, seconds: float) -> None:
        self._stats.timeouts += 1
        inv.fail("Sandbox.Timedout", timeout_message(seconds))
        self._discard(worker)

    async def _start_worker(self, inv: Invocation) -> Worker:
        """Start a worker that will take ``inv`` as its first invocation."""
        worker = Worker(self.spec)
        # Assigned before the process exists, so that a worker dying during init
        # always finds the invocation to fail.
        worker.current = inv
        worker.inbox.send_nowait(inv)
        self._workers.add(worker)
        self._stats.workers_started += 1
        try:
            await self._sites.open(worker)
            await worker.start(self._config)
        except BaseException:
            self._discard(worker)
            with anyio.CancelScope(shield=True):
                await self._sites.close(worker)
            raise
        self._unreaped.add(worker)
        self._tg.start_soon(self._watch, worker, name=f"watch {worker!r}")
        return worker

    async def _watch(self, worker: Worker) -> None:
        """Reap the worker; fail the invocation it held; free its Runtime API port."""
        assert worker.process is not None
        try:
            returncode = await worker.process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                was_alive = worker.alive
                worker.reaped()  # whatever the handler left running in the group dies too
                self._discard(worker)
                inv = worker.current
                if inv is not None and not inv.delivered.is_set() and worker.invocations:
                    inv.bounce()
                elif inv is not None and not inv.finished.is_set():
                    self._stats.crashes += 1
                    if worker.init_error is not None:
                        inv.finish(worker.init_error, UNHANDLED)
                    else:
                        inv.fail("Runtime.ExitError",
                                 f"Runtime exited with error: {exit_reason(returncode)}")
                elif was_alive and not self.closing:
                    log.warning("%s exited (%s) while idle", worker, exit_reason(returncode))
                worker.current = None
                await self._sites.close(worker)
                self._unreaped.discard(worker)
                self._notify()

    # -- called by the Runtime API ---------------------------------------------------------

    def complete(
        self,
        worker: Worker,
        inv: Invocation,
        result: bytes,
        function_error: str | None,
        *,
        reuse: bool = True,
    ) -> bool:
        """The worker posted a response or error for ``inv``, its current invocation.

        False, and nothing changes, if ``inv`` is no longer current (already answered,
        timed out). ``reuse=False`` retires the worker (its runtime client gives up after
        a rejected response, as in Lambda, where the environment is then replaced).
        """
        if worker.current is not inv or not worker.alive:
            return False
        inv.finish(result, function_error)
        worker.current = None
        worker.invocations += 1
        if reuse:
            self._idle.append(worker)
        else:
            self._discard(worker)
        return True

    def _discard(self, worker: Worker) -> None:
        worker.kill()
        self._workers.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)

    def kill_all(self) -> None:
        self.closing = True
        for worker in list(self._workers):
            self._discard(worker)

    @property
    def workers(self) -> frozenset[Worker]:
        """The live workers (busy or idle)."""
        return frozenset(self._workers)

    @property
    def unreaped(self) -> frozenset[Worker]:
        """Workers whose process has been started and not yet reaped."""
        return frozenset(self._unreaped)


class RuntimeSites(Protocol):
    """Opens and closes the per-worker Runtime API listeners (``RuntimeApi``)."""

    async def open(self, worker: Worker) -> None: ...

    async def close(self, worker: Worker) -> None: ...


__all__ = ["FunctionPool", "FunctionStats", "RuntimeSites", "Throttled"]
