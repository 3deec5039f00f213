"""``LambdaHost``: the Invoke API, the Runtime API and the workers, as one context manager.

    async with LambdaHost([FunctionSpec.parse("credit=config/credit-score.js:handler")],
                          port=0) as host:
        ...  # point a Lambda client at host.endpoint_url

Runs on the asyncio backend (aiohttp). Leaving the context stops taking new invocations,
lets those in flight finish for up to ``shutdown_grace`` seconds, then SIGKILLs every
worker and waits until each one is reaped: no worker outlives the host.
"""

from __future__ import annotations

import logging
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

from dispatcher.errors import ConfigError
from dispatcher.lambda_host.function import FunctionPool, FunctionStats
from dispatcher.lambda_host.invoke_api import InvokeApi
from dispatcher.lambda_host.runtime_api import RuntimeApi
from dispatcher.lambda_host.spec import FunctionSpec
from dispatcher.lambda_host.worker import WorkerConfig

log = logging.getLogger("dispatcher.lambda_host")

DEFAULT_PORT = 9001
DEFAULT_ACCOUNT = "000000000000"


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


class LambdaHost:
    """A local AWS Lambda: serves ``functions`` at ``endpoint_url`` until closed.

    ``port=0`` picks a free port. ``region`` and ``account_id`` only shape ARNs
    (``invokedFunctionArn``, error messages) and ``AWS_REGION``. ``worker_output``
    receives the workers' stdout and stderr (default: the host's stderr; pass
    ``subprocess.DEVNULL`` to discard). ``node`` / ``node_ric`` locate Node.js and the
    ``aws-lambda-ric`` package (default: ``dispatcher/lambda_host/node_modules``).
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
        node_ric: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.specs = list(functions)
        names = [s.name for s in self.specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"function {duplicates[0]!r} is defined more than once")
        if init_timeout <= 0:
            raise ConfigError(f"'init_timeout' must be > 0, got {init_timeout:g}")
        self.host = host
        self.port = port
        self.region = region
        self.account_id = account_id
        self._init_timeout = init_timeout
        self._shutdown_grace = shutdown_grace
        self._config = WorkerConfig(
            region=region, python=python, node=node, node_ric=node_ric, output=worker_output
        )
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
        partition = _partition(self.region)
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
        async with AsyncExitStack() as stack:
            tg = await stack.enter_async_context(anyio.create_task_group())
            # Runs last on exit, just before the task group waits for its tasks: by then
            # every worker is reaped, so what is left (queued Event invokes) is cancelled.
            stack.callback(tg.cancel_scope.cancel)
            runtime_api = RuntimeApi(self._pools)
            await runtime_api.setup()
            stack.push_async_callback(runtime_api.aclose)
            for spec in self.specs:
                self._pools[spec.name] = FunctionPool(
                    spec, config=self._config, task_group=tg, sites=runtime_api,
                    init_timeout=self._init_timeout,
                )
            invoke_api = InvokeApi(self._pools, task_group=tg, function_arn=self.function_arn)
            await invoke_api.runner.setup()
            stack.push_async_callback(_shielded(invoke_api.runner.cleanup))
            sock = self._listen()
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

    ``options`` are passed to ``LambdaHost``; ``ready`` replaces the ready line.
    """
    specs = list(functions)

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
