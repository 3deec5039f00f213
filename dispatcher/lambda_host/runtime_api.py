"""The Lambda Runtime API (``2018-06-01``), as the runtime interface clients use it.

=====================================================  ==================================
``GET  /SECRET/2018-06-01/runtime/invocation/next``    block until the next event: 200,
                                                       body = event, ``Lambda-Runtime-*``
                                                       headers
``POST /SECRET/2018-06-01/runtime/invocation/{id}/     the result: 202 (413 over
response``                                             ``MAX_RESPONSE_PAYLOAD``)
``POST /SECRET/2018-06-01/runtime/invocation/{id}/     a function error: 202
error``
``POST /SECRET/2018-06-01/runtime/init/error``         init failed (the worker then
                                                       exits): 202
anything else, or a port and secret that do not name   403, and nothing is read, taken
the same live worker                                   or completed
=====================================================  ==================================

One aiohttp application serves every worker, each on its own listening socket: the
local port a request arrived on says which worker it claims to come from, and the path
must start with that worker's secret (``AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT/SECRET``,
see ``worker``). So another process on the machine can neither take a worker's next
event (endpoint data) nor complete its invocation with a forged result.

Bodies from a worker are read in chunks and given up as soon as they pass
``MAX_RESPONSE_PAYLOAD``: a runtime that answers 200 MB costs the host 6 MB, and the
invocation fails with ``Function.ResponseSizeTooLarge``, as in Lambda.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from aiohttp import web

from dispatcher.lambda_host.function import FunctionPool
from dispatcher.lambda_host.invocation import (
    MAX_RESPONSE_PAYLOAD,
    UNHANDLED,
    Invocation,
    host_error,
    read_capped,
)
from dispatcher.lambda_host.worker import Worker

_PREFIX = "/{secret}/2018-06-01/runtime"
_ACCEPTED = orjson.dumps({"status": "OK"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def _runtime_error(status: int, error_type: str, message: str) -> web.Response:
    return _json(status, orjson.dumps({"errorMessage": message, "errorType": error_type}))


def _forbidden() -> web.Response:
    return _runtime_error(403, "AccessDeniedException",
                          "this Runtime API answers only its own worker")


class RuntimeApi:
    """Serves the Runtime API to the workers of every function of one host."""

    def __init__(self, pools: dict[str, FunctionPool]) -> None:
        self._pools = pools
        self._workers: dict[int, Worker] = {}
        self._sites: dict[Worker, web.SockSite] = {}
        app = web.Application(client_max_size=MAX_RESPONSE_PAYLOAD,
                              middlewares=[self._authenticate])
        app.router.add_get(f"{_PREFIX}/invocation/next", self._next)
        app.router.add_post(f"{_PREFIX}/invocation/{{id}}/response", self._response)
        app.router.add_post(f"{_PREFIX}/invocation/{{id}}/error", self._error)
        app.router.add_post(f"{_PREFIX}/init/error", self._init_error)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)

    async def setup(self) -> None:
        await self.runner.setup()

    async def open(self, worker: Worker) -> None:
        """Start listening on the worker's socket."""
        site = web.SockSite(self.runner, worker.sock)
        await site.start()
        self._sites[worker] = site
        self._workers[worker.port] = worker

    async def close(self, worker: Worker) -> None:
        """Stop listening for a dead worker and end its pending ``next``."""
        self._workers.pop(worker.port, None)
        site = self._sites.pop(worker, None)
        if site is not None:
            await site.stop()
        worker.close_socket()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.runner.cleanup()

    def _worker(self, request: web.Request) -> Worker | None:
        """The live worker whose Runtime API port the request came in on."""
        sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
        return self._workers.get(sockname[1]) if sockname else None

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """403 unless the path starts with the secret of the worker that owns the port.

        Checked before routing reaches any handler: a refused request takes no event,
        reads no body and completes nothing. The comparison takes the same time whatever
        the guess, so timing reveals nothing of the secret.
        """
        worker = self._worker(request)
        claimed = request.path.split("/", 2)[1].encode()
        if worker is None or not hmac.compare_digest(claimed, worker.secret.encode()):
            return _forbidden()
        return await handler(request)

    def _authenticated(self, request: web.Request) -> Worker:
        worker = self._worker(request)
        if worker is None:  # it died after the middleware's check
            raise web.HTTPGone(text="this worker has been stopped")
        return worker

    async def _next(self, request: web.Request) -> web.StreamResponse:
        worker = self._authenticated(request)
        try:
            inv = await worker.next_invocation.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise web.HTTPGone(text="this worker has been stopped") from None
        spec = worker.spec
        inv.deliver(spec.timeout)
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.invoked_arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{inv.request_id.replace('-', '')[:24]};"
            "Sampled=0",
        }
        if inv.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        return web.Response(body=inv.payload, headers=headers, content_type="application/json")

    async def _response(self, request: web.Request) -> web.StreamResponse:
        worker = self._authenticated(request)
        inv = self._current(worker, request)
        if inv is None:
            return _runtime_error(400, "InvalidRequestID", "Invalid request ID")
        body = await read_capped(request, MAX_RESPONSE_PAYLOAD)
        if body is None:
            return self._too_large(worker, inv)
        self._pools[worker.spec.name].complete(worker, inv, body, None)
        return _json(202, _ACCEPTED)

    def _too_large(self, worker: Worker, inv: Invocation) -> web.Response:
        """Fail the invocation as Lambda does; the worker is replaced."""
        self._pools[worker.spec.name].complete(
            worker,
            inv,
            host_error(
                "Function.ResponseSizeTooLarge",
                "Response payload size exceeded maximum allowed payload size "
                f"({MAX_RESPONSE_PAYLOAD} bytes).",
            ),
            UNHANDLED,
            reuse=False,
        )
        return _runtime_error(413, "RequestEntityTooLarge", "response payload too large")

    async def _error(self, request: web.Request) -> web.StreamResponse:
        worker = self._authenticated(request)
        inv = self._current(worker, request)
        if inv is None:
            return _runtime_error(400, "InvalidRequestID", "Invalid request ID")
        body = await read_capped(request, MAX_RESPONSE_PAYLOAD)
        if body is None:
            return self._too_large(worker, inv)
        if not body.strip():
            error_type = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
            body = host_error(error_type, "the runtime reported an error without details")
        self._pools[worker.spec.name].complete(worker, inv, body, UNHANDLED)
        return _json(202, _ACCEPTED)

    async def _init_error(self, request: web.Request) -> web.StreamResponse:
        worker = self._authenticated(request)
        body = await read_capped(request, MAX_RESPONSE_PAYLOAD) or b""
        if not body.strip():  # empty, or too large to pass on
            error_type = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
            body = host_error(error_type, "the runtime failed to initialize")
        worker.init_error = body
        return _json(202, _ACCEPTED)

    @staticmethod
    def _current(worker: Worker, request: web.Request) -> Invocation | None:
        """The invocation the request answers: the worker's current one, if the id is its.

        Held on to while the body is read: should the worker have moved on by then (a
        second copy of an answer), the answer cannot land on its next invocation.
        """
        inv = worker.current
        if inv is None or inv.request_id != request.match_info["id"]:
            return None
        return inv


__all__ = ["RuntimeApi"]
