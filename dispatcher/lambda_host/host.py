"""``LambdaHost``: the Invoke API, the Runtime API and the workers, as one context manager.

    async with LambdaHost([FunctionSpec.parse("credit=config/credit-score.js:handler")],
                          port=0) as host:
        ...  # point a Lambda client at host.endpoint_url

Runs on the asyncio backend (aiohttp). Leaving the context stops taking new invocations,
lets those in flight finish for up to ``shutdown_grace`` seconds, then SIGKILLs every
worker's process group and waits until each worker is reaped: nothing a worker started
in its group outlives the host. The host also holds the write end of a lifeline pipe
whose read end every worker's watchdog watches (see ``_launch``): if the host dies
without cleaning up (SIGKILL), the kernel closes it and each watchdog kills its group.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio
from aiohttp import web

from dispatcher.aws.partitions import partition_for_region
from dispatcher.errors import ConfigError
from dispatcher.lambda_host.function import FunctionPool, FunctionStats
from dispatcher.lambda_host.invoke_api import (
    DEFAULT_MAX_QUEUED_EVENT_BYTES,
    MAX_ASYNC_PAYLOAD,
    InvokeApi,
)
from dispatcher.lambda_host.runtime_api import RuntimeApi
from dispatcher.lambda_host.spec import DEFAULT_ACCOUNT, DEFAULT_PORT, FunctionSpec
from dispatcher.lambda_host.worker import NODE_RUNTIME, WorkerConfig
from dispatcher.net import is_loopback

log = logging.getLogger("dispatcher.lambda_host")



class LambdaHost:
    """A local AWS Lambda: serves ``functions`` at ``endpoint_url`` until closed.

    ``port=0`` picks a free port. ``region`` and ``account_id`` only shape ARNs
    (``invokedFunctionArn``, error messages) and ``AWS_REGION``. ``worker_output``
    receives the workers' stdout and stderr (default: the host's stderr; pass
    ``subprocess.DEVNULL`` to discard). ``node`` and ``python`` are the interpreters
    that run the workers; ``node_runtime`` the Node.js runtime client (default: the one
    shipped in this package). ``max_queued_event_bytes`` bounds, per function, the ``Event``
    payloads waiting for a concurrency slot (beyond it: 429).
    """

    def __init__(
        self,
        functions: Iterable[FunctionSpec],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT,
        init_timeout: float = 10.0,
        shutdown_grace: float = 5.0,
        worker_output: int | IO[Any] | None = None,
        node: str = "node",
        node_runtime: Path = NODE_RUNTIME,
        python: str = sys.executable,
        max_queued_event_bytes: int = DEFAULT_MAX_QUEUED_EVENT_BYTES,
    ) -> None:
        self.specs = list(functions)
        names = [s.name for s in self.specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"function {duplicates[0]!r} is defined more than once")
        if init_timeout <= 0:
            raise ConfigError(f"'init_timeout' must be > 0, got {init_timeout:g}")
        if max_queued_event_bytes < MAX_ASYNC_PAYLOAD:
            raise ConfigError(
                f"'max_queued_event_bytes' must be >= {MAX_ASYNC_PAYLOAD} (one Event "
                f"payload), got {max_queued_event_bytes}"
            )
        self.host = host
        self.port = port
        self.region = region
        self.account_id = account_id
        self._init_timeout = init_timeout
        self._shutdown_grace = shutdown_grace
        self._max_queued_event_bytes = max_queued_event_bytes
        self._config = WorkerConfig(region=region, python=python, node=node,
                                    node_runtime=node_runtime, output=worker_output)
        self._config.check({s.runtime for s in self.specs})
        self._pools: dict[str, FunctionPool] = {}
        self._stack: AsyncExitStack | None = None
        self._invoke_api: InvokeApi | None = None
        self._site: web.SockSite | None = None

    def __repr__(self) -> str:
        url = self.endpoint_url if self._site is not None else "(not started)"
        return f"<LambdaHost {url} {list(self._pools.values()) or self.specs}>"

    @property
    def endpoint_url(self) -> str:
        """``http://HOST:PORT`` of the Invoke API (the bound port when ``port=0``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def function_arn(self, name: str) -> str:
        """The ARN of function ``name`` in this host's region and account."""
        partition = partition_for_region(self.region)
        return f"arn:{partition}:lambda:{self.region}:{self.account_id}:function:{name}"

    def stats(self) -> dict[str, FunctionStats]:
        """Per-function counters (invocations, errors, throttles, timeouts, workers...)."""
        return {name: pool.stats() for name, pool in self._pools.items()}

    def pids(self) -> dict[str, list[int]]:
        """Process ids of the live workers of each function."""
        return {
            name: sorted(w.process.pid for w in pool.workers if w.process is not None)
            for name, pool in self._pools.items()
        }

    async def __aenter__(self) -> LambdaHost:
        # Bound first, outside the task group: a busy port is a plain ConfigError.
        sock = self._listen()
        try:
            return await self._start(sock)
        except BaseException:
            sock.close()
            raise

    async def _start(self, sock: socket.socket) -> LambdaHost:
        async with AsyncExitStack() as stack:
            tg = await stack.enter_async_context(anyio.create_task_group())
            # Runs last on exit, just before the task group waits for its tasks: by then
            # every worker is reaped, so what is left (queued Event invokes) is cancelled.
            stack.callback(tg.cancel_scope.cancel)
            # Closed last (callbacks run in reverse): after every worker is reaped.
            lifeline, keep_alive = os.pipe()
            stack.callback(os.close, lifeline)
            stack.callback(os.close, keep_alive)
            config = dataclasses.replace(self._config, lifeline=lifeline)
            runtime_api = RuntimeApi(self._pools)
            await runtime_api.setup()
            stack.push_async_callback(runtime_api.aclose)
            for spec in self.specs:
                self._pools[spec.name] = FunctionPool(
                    spec, config=config, task_group=tg, sites=runtime_api,
                    init_timeout=self._init_timeout,
                )
            invoke_api = InvokeApi(
                self._pools, task_group=tg, function_arn=self.function_arn, bind=self.host,
                max_queued_event_bytes=self._max_queued_event_bytes,
            )
            await invoke_api.runner.setup()
            stack.push_async_callback(_shielded(invoke_api.runner.cleanup))
            self._site = web.SockSite(invoke_api.runner, sock)
            await self._site.start()
            self.port = sock.getsockname()[1]
            stack.push_async_callback(self._stop_workers)
            self._invoke_api = invoke_api
            self._stack = stack.pop_all()
        return self

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        sock.listen(1024)
        return sock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    async def _stop_workers(self) -> None:
        """Stop accepting, drain within the grace period, kill and reap every worker."""
        with anyio.CancelScope(shield=True):
            if self._invoke_api is not None:
                self._invoke_api.accepting = False
            if self._site is not None:
                await self._site.stop()
            pools = list(self._pools.values())
            with anyio.move_on_after(self._shutdown_grace):
                for pool in pools:
                    await pool.wait_until_idle()
            for pool in pools:
                pool.kill_all()
            # The watchers reap the killed workers: wait, so that none outlives the host.
            with anyio.move_on_after(10):
                for pool in pools:
                    await pool.wait_until_reaped()
            left = [w for p in pools for w in p.unreaped]
            if left:  # pragma: no cover - SIGKILLed processes are reaped within ms
                log.error("workers not reaped at shutdown: %s", left)


def _shielded(func: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        with anyio.CancelScope(shield=True):
            await func()

    return call


def serve(
    functions: Iterable[FunctionSpec],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    ready: Callable[[LambdaHost], None] | None = None,
    **options: Any,
) -> int:
    """Run a host until SIGINT or SIGTERM; print one ready line to stdout; return 0.

    ``options`` are passed to ``LambdaHost``; ``ready`` replaces the ready line. A
    ``host`` that is not loopback gets a warning on stderr first: anyone who can reach
    it can run the functions.
    """
    specs = list(functions)
    if not is_loopback(host):
        print(f"warning: the Lambda host will listen on {host}, not loopback: its Invoke API "
              "has no authentication, so anyone who can reach that address can invoke "
              "the functions", file=sys.stderr, flush=True)

    async def main() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with LambdaHost(specs, host=host, port=port, **options) as lambda_host:
                if ready is not None:
                    ready(lambda_host)
                else:
                    names = ", ".join(s.name for s in specs)
                    print(f"Lambda host listening on {lambda_host.endpoint_url} "
                          f"(functions: {names})", flush=True)
                async for signum in signals:
                    log.info("received %s, shutting down", signal.Signals(signum).name)
                    break

    anyio.run(main, backend="asyncio")
    return 0


__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_PORT", "LambdaHost", "serve"]
