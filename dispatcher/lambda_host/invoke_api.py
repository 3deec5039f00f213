"""The Lambda Invoke API (``2015-03-31``), as AWS SDKs call it.

``POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]``, SigV4-signed
(any signature is accepted: the host never checks credentials).

``FunctionName`` may be a name, ``name:qualifier``, a partial ARN
(``123456789012:function:name``) or a full ARN; only the name selects the function.
Any qualifier (version or alias) runs the one local code, reported as
``X-Amz-Executed-Version: $LATEST``; a qualifier in the name that contradicts
``?Qualifier=`` is a 400, as in Lambda.

=================================  ====  ===========================================
outcome                            HTTP  body / headers
=================================  ====  ===========================================
RequestResponse                    200   the function's result, verbatim
function error (any runtime error,  200   the error document; ``X-Amz-Function-Error:
timeout, crash)                          Unhandled``
Event                              202   empty; runs in the background
DryRun                             204   empty
unknown function                   404   ``ResourceNotFoundException``
payload over 6291456 bytes         413   ``RequestTooLargeException`` (1 MiB for Event)
foreign ``Host``, ``Origin``       403   ``AccessDeniedException`` (see below)
body not JSON, bad client context  400   ``InvalidRequestContentException``
bad invocation type / qualifier    400   ``InvalidParameterValueException``
no free concurrency slot, or the   429   ``TooManyRequestsException``, Reason
``Event`` queue is full                  ``ReservedFunctionConcurrentInvocationLimit
                                         Exceeded``, ``Retry-After``
host shutting down                 503   ``ServiceException``
=================================  ====  ===========================================

``X-Amz-Log-Type: Tail`` is accepted but returns no ``X-Amz-Log-Result``: worker output
goes to the host's stderr (or is discarded). Failed ``Event`` invocations are logged,
not retried.

Errors carry ``X-Amzn-ErrorType`` and a JSON body with ``Type`` and ``message`` (or
``Message``, following the botocore model) so that botocore raises ``ClientError``
with the right ``Code``. Every response has an ``X-Amzn-RequestId``.

Who may call (checked before anything else, see ``callers``): a request whose ``Host``
is not a loopback name or address, or that carries an ``Origin`` or ``Sec-Fetch-Site``
header (only browsers send those), gets 403 ``AccessDeniedException``. So a web page
open in a browser on the machine cannot invoke a function, neither by posting to
``127.0.0.1`` (it sends ``Origin``) nor through a DNS name rebound to it (its ``Host``
is that name). SDKs and the AWS CLI send neither header and a loopback ``Host``.

Memory: a synchronous invoke takes its concurrency slot *before* its body is read, so
at most ``concurrency`` request bodies of up to 6 MB are held per function; ``Event``
payloads waiting for a slot are bounded per function in count (``MAX_QUEUED_EVENTS``)
and in bytes (``max_queued_event_bytes``, default ``DEFAULT_MAX_QUEUED_EVENT_BYTES``),
beyond which the host throttles (429), as Lambda does.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from anyio.abc import TaskGroup

from dispatcher.lambda_host.callers import CallerCheck
from dispatcher.lambda_host.function import FunctionPool, Throttled
from dispatcher.lambda_host.invocation import Invocation, read_capped
from dispatcher.lambda_host.spec import DEFAULT_MAX_QUEUED_EVENT_BYTES

log = logging.getLogger("dispatcher.lambda_host")

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
"""Synchronous request limit: 6291456 bytes; a larger body is a 413."""

MAX_ASYNC_PAYLOAD = 1024 * 1024
"""``Event`` request limit (Lambda raised it from 256 KB to 1 MB in October 2025)."""

MAX_QUEUED_EVENTS = 10_000
"""``Event`` invocations waiting for a slot, per function, before the host throttles."""

RETRY_AFTER_SECONDS = 1

_FUNCTION_NAME = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?"
    r"(?:(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d:)?"
    r"(?:\d{12}:)?(?:function:)?"
    r"(?P<name>[a-zA-Z0-9_.-]+)"
    r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]+))?$"
)
_QUALIFIER = re.compile(r"^(?:\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_$-]{1,128})$")


@dataclass(frozen=True)
class Target:
    name: str
    qualifier: str | None


class InvokeError(Exception):
    """An error response of the Invoke API."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        message_key: str = "message",
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.message_key = message_key
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def response(self, request_id: str) -> web.Response:
        body = {"Type": "User" if self.status < 500 else "Service", **self.extra}
        body[self.message_key] = self.message
        headers = {"X-Amzn-ErrorType": self.code, "X-Amzn-RequestId": request_id, **self.headers}
        return web.Response(
            status=self.status, body=orjson.dumps(body), headers=headers,
            content_type="application/json",
        )


def parse_function_name(raw: str, qualifier: str | None) -> Target:
    """Resolve ``FunctionName`` (+ ``Qualifier``) to a name; InvokeError 400 if invalid."""
    match = _FUNCTION_NAME.match(raw) if len(raw) <= 256 else None
    if match is None:
        raise InvokeError(
            400, "InvalidParameterValueException",
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            + _FUNCTION_NAME.pattern,
        )
    derived = match["qualifier"]
    if qualifier is not None and not _QUALIFIER.match(qualifier):
        raise InvokeError(
            400, "InvalidParameterValueException",
            f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern",
        )
    if derived is not None and qualifier is not None and derived != qualifier:
        raise InvokeError(
            400, "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified "
            "qualifier.",
        )
    return Target(match["name"], derived or qualifier)


class InvokeApi:
    """Serves ``Invoke`` for the functions of one host.

    ``bind`` is the address the host listens on (it widens which ``Host`` headers are
    accepted, see ``callers``); ``max_queued_event_bytes`` bounds, per function, the
    ``Event`` payloads waiting for a concurrency slot.
    """

    def __init__(
        self,
        pools: Mapping[str, FunctionPool],
        *,
        task_group: TaskGroup,
        function_arn: Callable[[str], str],
        bind: str = "127.0.0.1",
        max_queued_event_bytes: int = DEFAULT_MAX_QUEUED_EVENT_BYTES,
    ) -> None:
        self._pools = pools
        self._tg = task_group
        self._function_arn = function_arn
        self._callers = CallerCheck(bind)
        self._max_queued_bytes = max_queued_event_bytes
        self._queued_events: dict[str, int] = {name: 0 for name in pools}
        self._queued_bytes: dict[str, int] = {name: 0 for name in pools}
        self.accepting = True
        app = web.Application(client_max_size=MAX_SYNC_PAYLOAD + 1,
                              middlewares=[self._check_caller])
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)

    def queued_event_bytes(self) -> dict[str, int]:
        """Per function: bytes of ``Event`` payloads read or being read, not yet running."""
        return dict(self._queued_bytes)

    @web.middleware
    async def _check_caller(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """403 for web pages, before routing, reading the body or invoking anything."""
        reason = self._callers.refusal(request.headers)
        if reason is not None:
            log.warning("refused a request to %s: %s", request.path, reason)
            return InvokeError(403, "AccessDeniedException", reason).response(str(uuid.uuid4()))
        return await handler(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            return await self._invoke(request, request_id)
        except InvokeError as exc:
            return exc.response(request_id)

    async def _invoke(self, request: web.Request, request_id: str) -> web.StreamResponse:
        target = parse_function_name(request.match_info["name"], request.query.get("Qualifier"))
        arn = self._function_arn(target.name)
        if target.qualifier is not None:
            arn = f"{arn}:{target.qualifier}"
        pool = self._pools.get(target.name)
        if pool is None:
            raise InvokeError(404, "ResourceNotFoundException", f"Function not found: {arn}",
                              message_key="Message")
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            raise InvokeError(
                400, "InvalidParameterValueException",
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]",
            )
        if not self.accepting:
            raise InvokeError(503, "ServiceException", "The Lambda host is shutting down.",
                              message_key="Message")
        client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
        if invocation_type == "Event":
            return await self._accept_event(request, pool, arn, request_id)
        if invocation_type == "DryRun":  # the body is not read (nor held): nothing runs
            return web.Response(status=204, headers={"X-Amzn-RequestId": request_id})
        # The slot first, then the body: a throttled request costs no memory, and the
        # bodies held at once are bounded by the function's concurrency.
        try:
            pool.try_acquire()
        except Throttled:
            raise _throttled() from None
        try:
            payload = await _read_payload(request, MAX_SYNC_PAYLOAD)
            inv = Invocation(payload, arn, client_context, request_id=request_id)
            await pool.run(inv)
        finally:
            pool.release()
        headers = {"X-Amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if inv.function_error is not None:
            headers["X-Amz-Function-Error"] = inv.function_error
        return web.Response(body=inv.result, headers=headers, content_type="application/json")

    async def _accept_event(
        self, request: web.Request, pool: FunctionPool, arn: str, request_id: str
    ) -> web.StreamResponse:
        """Queue an ``Event`` invoke: 202, or 429 when the function's queue is full.

        Room is reserved before the body is read (its declared length, or the Event
        limit when it declares none), so that bodies being read count too.
        """
        name = pool.spec.name
        declared = request.content_length
        reserve = (declared if declared is not None and declared <= MAX_ASYNC_PAYLOAD
                   else MAX_ASYNC_PAYLOAD)
        if (self._queued_events[name] >= MAX_QUEUED_EVENTS
                or self._queued_bytes[name] + reserve > self._max_queued_bytes):
            pool.throttled()
            raise _throttled()
        self._queued_events[name] += 1
        self._queued_bytes[name] += reserve
        try:
            payload = await _read_payload(request, MAX_ASYNC_PAYLOAD)
        except BaseException:
            self._dequeue(name, reserve)
            raise
        # Account for what is held (an empty body becomes "{}").
        self._queued_bytes[name] += len(payload) - reserve
        inv = Invocation(payload, arn, None, request_id=request_id)
        self._tg.start_soon(self._run_event, pool, inv, name=f"event {inv.request_id}")
        return web.Response(status=202, headers={"X-Amzn-RequestId": request_id})

    def _dequeue(self, name: str, size: int) -> None:
        self._queued_events[name] -= 1
        self._queued_bytes[name] -= size

    async def _run_event(self, pool: FunctionPool, inv: Invocation) -> None:
        try:
            await pool.acquire()
        finally:
            self._dequeue(pool.spec.name, len(inv.payload))
        try:
            await pool.run(inv)
        except Exception:  # a background task must never take the host down
            log.exception("asynchronous invocation %s of %s failed", inv.request_id,
                          pool.spec.name)
        finally:
            pool.release()
        if inv.function_error is not None:
            detail = inv.result[:500].decode(errors="replace")
            log.warning("asynchronous invocation %s of %s: %s error: %s", inv.request_id,
                        pool.spec.name, inv.function_error, detail)


def _throttled() -> InvokeError:
    return InvokeError(
        429, "TooManyRequestsException", "Rate Exceeded.",
        extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _read_payload(request: web.Request, limit: int) -> bytes:
    """The request body; 413 over ``limit``, never holding more than ``limit`` bytes."""
    payload = await read_capped(request, limit)
    if payload is None:
        raise InvokeError(
            413, "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    if not payload:
        return b"{}"
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvokeError(
            400, "InvalidRequestContentException", "Could not parse request body into json: "
            "Unexpected character in request payload",
        ) from None
    return payload


def _client_context(header: str | None) -> str | None:
    """``X-Amz-Client-Context`` is base64 JSON; the runtime gets the JSON text."""
    if not header:
        return None
    try:
        text = base64.b64decode(header, validate=True).decode()
        orjson.loads(text)
    except (binascii.Error, UnicodeDecodeError, orjson.JSONDecodeError):
        raise InvokeError(400, "InvalidRequestContentException",
                          "Client context must be a valid Base64-encoded JSON object.") from None
    return text


__all__ = [
    "DEFAULT_MAX_QUEUED_EVENT_BYTES",
    "MAX_ASYNC_PAYLOAD",
    "MAX_QUEUED_EVENTS",
    "MAX_SYNC_PAYLOAD",
    "InvokeApi",
    "InvokeError",
    "Target",
    "parse_function_name",
]
