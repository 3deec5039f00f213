"""In-process Python hooks: ``handler(event, context)``, sync or ``async def``.

The function gets its own decoded copy of the event, exactly as in Lambda, and a
Lambda-like ``context``. Sync handlers run in worker threads so a slow or blocking
handler never stalls the event loop; an attempt that times out cannot stop its thread,
so its result is discarded (as Lambda would kill it, and we cannot).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
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


class PythonTransport:
    """Calls a Python handler in process, one attempt per ``invoke``."""

    def __init__(self, name: str, handler: Handler, *, concurrency: int = 16) -> None:
        self.name = name
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self._threads = anyio.CapacityLimiter(concurrency)

    async def invoke(self, event: bytes) -> Any:
        payload = orjson.loads(event)
        context = LambdaContext(self.name, time.monotonic() + 900)
        try:
            if self.is_async:
                return await self.handler(payload, context)
            # abandon_on_cancel: a timed-out sync handler is left to finish in its thread.
            return await anyio.to_thread.run_sync(
                self.handler, payload, context, limiter=self._threads, abandon_on_cancel=True
            )
        except Exception as exc:
            raise HookAttemptError(f"{type(exc).__name__}: {exc}", function=self.name) from exc

    async def aclose(self) -> None:
        return None
