"""The hook transport protocol: how one event reaches one function and comes back.

A transport performs exactly one attempt. Deadlines, attempt counts and backoff are
the invoke policy's business (``dispatcher.hooks.invoke``), so every transport gets the
same retry semantics and the attempt count in ``summary.json`` is the project's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dispatcher.errors import HookResultError

if TYPE_CHECKING:
    import aiohttp

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit (6 MiB = 6291456 bytes), request side."""

MAX_RESPONSE = MAX_SYNC_PAYLOAD + 100
"""The largest hook answer read: Lambda's synchronous response limit (6 MiB, plus the
~100 bytes Lambda is measured to allow). A larger one fails the attempt unread."""


async def read_capped(
    response: aiohttp.ClientResponse, function: str, limit: int = MAX_RESPONSE
) -> bytes:
    """The response body, read in pieces and never more than ``limit`` bytes of it."""
    length = response.content_length
    if length is not None and length > limit:
        raise _too_large(function, limit, f"{length} bytes announced")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(function, limit, "more")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(function: str, limit: int, got: str) -> HookResultError:
    return HookResultError(
        f"the hook's answer is over the {limit}-byte limit ({got}); not read",
        function=function,
    )


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
