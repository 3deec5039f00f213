"""The hook transport protocol: how one event reaches one function and comes back.

A transport performs exactly one attempt. Deadlines, attempt counts and backoff are
the invoke policy's business (``dispatcher.hooks.invoke``), so every transport gets the
same retry semantics and the attempt count in ``summary.json`` is the project's own.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit (6 MiB = 6291456 bytes), request side."""


@runtime_checkable
class HookTransport(Protocol):
    """Delivers a serialized event to one function and returns its decoded result.

    ``invoke`` makes one attempt. It raises ``HookAttemptError`` for a failed attempt
    (``retryable=False`` when another attempt cannot help, e.g. a 404) and
    ``HookResultError`` when the function answered but its result cannot be decoded.
    The event is passed as bytes so that every transport, in process or remote, gives
    the function its own copy, exactly as Lambda does.
    """

    name: str

    async def invoke(self, event: bytes) -> Any: ...

    async def aclose(self) -> None: ...
