"""In-process Python hooks: ``handler(event, context)``, sync or ``async def``.

The function gets its own decoded copy of the event, exactly as in Lambda, and a
Lambda-like ``context``. Sync handlers run in a pool of *daemon* threads so a slow or
blocking handler never stalls the event loop; an attempt that times out cannot stop its
thread, so its result is discarded (as Lambda would kill it, and we cannot), and since
the thread is a daemon it never keeps the process alive once the run is over.

An ``async def`` handler runs on the event loop itself: it must not block (use a plain
``def`` for blocking work). One that does is caught by the invoke policy, which fails
an attempt that returns after its time-out (see ``dispatcher.hooks.invoke``); a hook
that cannot be trusted belongs on the local Lambda host (``dispatcher lambda serve``),
whose worker processes are killed at the deadline.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import queue
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.errors import ConfigError, HookAttemptError

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The subset of Lambda's Python context object that hooks use."""

    def __init__(self, function_name: str, deadline: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = "128"
        # uuid4() reads os.urandom, a syscall that gives the GIL away on every call.
        self.aws_request_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(spec: str, *, file: str | None = None, key: str | None = None) -> Handler:
    """Import ``path/to/file.py:name`` or ``package.module:name``."""
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ConfigError(f"hook file {target!r} does not exist", file=file, key=key)
            mod_name = f"_dispatcher_hook_{abs(hash(str(path.resolve())))}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(f"hook module {target!r} not found ({exc})", file=file, key=key) from None
    except Exception as exc:  # the user's module failed while importing
        raise ConfigError(
            f"hook module {target!r} failed to import: {type(exc).__name__}: {exc}",
            file=file,
            key=key,
        ) from None
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise ConfigError(f"{target!r} has no callable {attr!r}", file=file, key=key)
    return handler  # type: ignore[no-any-return]


_REASON_LIMIT = 500


def _clip(text: str) -> str:
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


class DaemonThreads:
    """Runs blocking calls on daemon threads and awaits them without blocking the loop.

    At most ``size`` calls run at once; a call whose awaiting task is cancelled (its
    attempt timed out) keeps its thread until it returns, and a replacement thread
    serves the others, up to ``size * 4`` threads in all. Daemon threads never keep
    the process alive. (asyncio only: the dispatcher runs on asyncio, as aiohttp does.)
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._max_threads = size * 4
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        self._lock = threading.Lock()
        self._slots = anyio.CapacityLimiter(size)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._slots:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[tuple[bool, Any]] = loop.create_future()

            def settle(outcome: tuple[bool, Any]) -> None:
                if not done.done():  # the waiter may have given up (cancelled)
                    done.set_result(outcome)

            def job() -> None:
                try:
                    outcome: tuple[bool, Any] = (True, fn(*args))
                except BaseException as exc:  # handed to the awaiting task, re-raised there
                    outcome = (False, exc)
                try:
                    loop.call_soon_threadsafe(settle, outcome)
                except RuntimeError:
                    pass  # the loop is closed: nobody is waiting any more

            self._submit(job)
            ok, value = await done
        if ok:
            return value
        raise value

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0 and self._threads < self._max_threads
            if spawn:
                self._threads += 1
        self._jobs.put(job)
        if spawn:
            threading.Thread(target=self._work, name="dispatcher-hook", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            job()


class PythonTransport:
    """Calls a Python handler in process, one attempt per ``invoke``."""

    def __init__(self, name: str, handler: Handler, *, concurrency: int = 16) -> None:
        self.name = name
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.concurrency = concurrency
        """Calls it carries at once (threads for a sync handler): the hook stage's bound."""
        self._threads = DaemonThreads(concurrency)

    async def invoke(self, event: bytes) -> Any:
        payload = orjson.loads(event)
        context = LambdaContext(self.name, time.monotonic() + 900)
        try:
            if self.is_async:
                return await self.handler(payload, context)
            return await self._threads.run(self.handler, payload, context)
        except Exception as exc:
            raise HookAttemptError(
                _clip(f"{type(exc).__name__}: {exc}"), function=self.name
            ) from exc

    async def aclose(self) -> None:
        return None
