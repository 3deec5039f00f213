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
body not JSON, bad client context  400   ``InvalidRequestContentException``
bad invocation type / qualifier    400   ``InvalidParameterValueException``
no free concurrency slot           429   ``TooManyRequestsException``, Reason
                                         ``ReservedFunctionConcurrentInvocationLimit
                                         Exceeded``, ``Retry-After``
host shutting down                 503   ``ServiceException``
=================================  ====  ===========================================

``X-Amz-Log-Type: Tail`` is accepted but returns no ``X-Amz-Log-Result``: worker output
goes to the host's stderr (or is discarded). Failed ``Event`` invocations are logged,
not retried.

Errors carry ``X-Amzn-ErrorType`` and a JSON body with ``Type`` and ``message`` (or
``Message``, following the botocore model) so that botocore raises ``ClientError``
with the right ``Code``. Every response has an ``X-Amzn-RequestId``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from anyio.abc import TaskGroup

from dispatcher.lambda_host.function import FunctionPool, Throttled
from dispatcher.lambda_host.invocation import Invocation

log = logging.getLogger("dispatcher.lambda_host")

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
"""Synchronous request limit: 6291456 bytes; a larger body is a 413."""

MAX_ASYNC_PAYLOAD = 1024 * 1024
"""``Event`` request limit (Lambda raised it from 256 KB to 1 MB in 2025)."""

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
    """Serves ``Invoke`` for the functions of one host."""

    def __init__(
        self,
        pools: Mapping[str, FunctionPool],
        *,
        task_group: TaskGroup,
        function_arn: Callable[[str], str],
    ) -> None:
        self._pools = pools
        self._tg = task_group
        self._function_arn = function_arn
        self._queued_events: dict[str, int] = {name: 0 for name in pools}
        self.accepting = True
        app = web.Application(client_max_size=MAX_SYNC_PAYLOAD + 1)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)

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
        limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
        payload = await _read_payload(request, limit)
        client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
        if not self.accepting:
            raise InvokeError(503, "ServiceException", "The Lambda host is shutting down.",
                              message_key="Message")
        if invocation_type == "DryRun":
            return web.Response(status=204, headers={"X-Amzn-RequestId": request_id})
        inv = Invocation(payload, arn, client_context, request_id=request_id)
        if invocation_type == "Event":
            self._enqueue_event(pool, inv)
            return web.Response(status=202, headers={"X-Amzn-RequestId": request_id})
        try:
            pool.try_acquire()
        except Throttled:
            raise InvokeError(
                429, "TooManyRequestsException", "Rate Exceeded.",
                extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        try:
            await pool.run(inv)
        finally:
            pool.release()
        headers = {"X-Amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if inv.function_error is not None:
            headers["X-Amz-Function-Error"] = inv.function_error
        return web.Response(body=inv.result, headers=headers, content_type="application/json")

    def _enqueue_event(self, pool: FunctionPool, inv: Invocation) -> None:
        name = pool.spec.name
        if self._queued_events[name] >= MAX_QUEUED_EVENTS:
            raise InvokeError(
                429, "TooManyRequestsException", "Rate Exceeded.",
                extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._queued_events[name] += 1
        self._tg.start_soon(self._run_event, pool, inv, name=f"event {inv.request_id}")

    async def _run_event(self, pool: FunctionPool, inv: Invocation) -> None:
        try:
            await pool.acquire()
        finally:
            self._queued_events[pool.spec.name] -= 1
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


async def _read_payload(request: web.Request, limit: int) -> bytes:
    """The request body; 413 over ``limit`` (the whole body is read, then dropped)."""
    length = request.content_length
    if length is not None and length <= limit:
        payload = await request.read()
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
        if size > limit:
            raise InvokeError(
                413, "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
            )
        payload = b"".join(chunks)
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
    "MAX_ASYNC_PAYLOAD",
    "MAX_SYNC_PAYLOAD",
    "InvokeApi",
    "InvokeError",
    "Target",
    "parse_function_name",
]
