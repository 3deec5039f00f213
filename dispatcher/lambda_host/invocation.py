"""One invocation on its way through the host, and the error payloads the host writes.

Error payloads that the *runtime* reports (a thrown exception, an init error) are passed
to the caller byte for byte, as Lambda does: Node.js runtimes send ``errorType``,
``errorMessage`` and ``trace``; Python sends ``errorType``, ``errorMessage``,
``requestId`` and ``stackTrace``. Errors only the *host* can see (a timeout, a runtime
that exited, a response over the size limit) use Lambda's own wording.

Bodies, from callers and from workers alike, are read with ``read_capped``: never more
than their limit is held, however much is sent.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import anyio
import orjson
from aiohttp import web

UNHANDLED = "Unhandled"
"""``X-Amz-Function-Error`` for every function error.

Lambda's API reference still lists ``Handled`` ("the runtime caught an error thrown by
the function and formatted it"), but current runtimes report every error, thrown,
passed to a callback, a timeout or a crash, as ``Unhandled``; so does the host.
"""

MAX_RESPONSE_PAYLOAD = 6 * 1024 * 1024 + 100
"""Lambda's synchronous response limit, 6291556 bytes."""


@dataclass(eq=False)
class Invocation:
    """An invocation: the event in, the result (or function error) out."""

    payload: bytes
    invoked_arn: str
    client_context: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    delivered: anyio.Event = field(default_factory=anyio.Event)
    finished: anyio.Event = field(default_factory=anyio.Event)
    started: float = 0.0
    deadline_ms: int = 0
    result: bytes = b""
    function_error: str | None = None
    bounced: bool = False

    def deliver(self, timeout: float) -> None:
        """The worker took it: the function's clock starts now."""
        self.started = time.monotonic()
        self.deadline_ms = int(time.time() * 1000 + timeout * 1000)
        self.delivered.set()

    def bounce(self) -> None:
        """Its warm worker exited before taking it: wake the runner to pick another."""
        self.bounced = True
        self.delivered.set()

    def rearm(self) -> None:
        self.bounced = False
        self.delivered = anyio.Event()

    def finish(self, result: bytes, function_error: str | None = None) -> bool:
        """Record the outcome once; False if it was already decided (e.g. timed out)."""
        if self.finished.is_set():
            return False
        self.result = result
        self.function_error = function_error
        self.delivered.set()
        self.finished.set()
        return True

    def fail(self, error_type: str, message: str) -> bool:
        """Finish with an error the host detected, in Lambda's ``RequestId: ..`` form."""
        return self.finish(host_error(error_type, f"RequestId: {self.request_id} Error: {message}"),
                           UNHANDLED)


_CHUNK = 256 * 1024


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes.

    An oversized body is never held whole: at most ``limit`` plus one chunk. aiohttp
    reads and drops the rest after the response (its lingering close), so the sender
    gets the answer instead of a reset connection.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def host_error(error_type: str, message: str) -> bytes:
    """A function-error payload written by the host: ``{"errorType", "errorMessage"}``."""
    return orjson.dumps({"errorType": error_type, "errorMessage": message})


def timeout_message(seconds: float) -> str:
    return f"Task timed out after {seconds:.2f} seconds"


__all__ = [
    "MAX_RESPONSE_PAYLOAD",
    "UNHANDLED",
    "Invocation",
    "host_error",
    "read_capped",
    "timeout_message",
]
