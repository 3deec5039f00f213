"""The Lambda Runtime API (``2018-06-01``), as the runtime interface clients use it.

=====================================================  ==================================
``GET  /2018-06-01/runtime/invocation/next``           block until the next event: 200,
                                                       body = event, ``Lambda-Runtime-*``
                                                       headers
``POST /2018-06-01/runtime/invocation/{id}/response``  the result: 202
``POST /2018-06-01/runtime/invocation/{id}/error``     a function error: 202
``POST /2018-06-01/runtime/init/error``                init failed (the worker then
                                                       exits): 202
=====================================================  ==================================

One aiohttp application serves every worker, each on its own listening socket; the
local port a request arrived on says which worker sent it.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from aiohttp import web

from dispatcher.lambda_host.function import FunctionPool
from dispatcher.lambda_host.invocation import MAX_RESPONSE_PAYLOAD, UNHANDLED, host_error
from dispatcher.lambda_host.worker import Worker

_PREFIX = "/2018-06-01/runtime"
_ACCEPTED = orjson.dumps({"status": "OK"})
_READ_LIMIT = 64 * 1024 * 1024


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def _runtime_error(status: int, error_type: str, message: str) -> web.Response:
    return _json(status, orjson.dumps({"errorMessage": message, "errorType": error_type}))


class RuntimeApi:
    """Serves the Runtime API to the workers of every function of one host."""

    def __init__(self, pools: dict[str, FunctionPool]) -> None:
        self._pools = pools
        self._workers: dict[int, Worker] = {}
        self._sites: dict[Worker, web.SockSite] = {}
        app = web.Application(client_max_size=_READ_LIMIT)
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

    def _worker(self, request: web.Request) -> Worker:
        sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
        worker = self._workers.get(sockname[1]) if sockname else None
        if worker is None:
            raise web.HTTPGone(text="this worker has been stopped")
        return worker

    async def _next(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker(request)
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

    async def _read(self, request: web.Request) -> bytes | None:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return None

    async def _response(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker(request)
        rejected = self._check_id(worker, request)
        if rejected is not None:
            return rejected
        body = await self._read(request)
        pool = self._pools[worker.spec.name]
        if body is None or len(body) > MAX_RESPONSE_PAYLOAD:
            pool.complete(
                worker,
                host_error(
                    "Function.ResponseSizeTooLarge",
                    "Response payload size exceeded maximum allowed payload size "
                    f"({MAX_RESPONSE_PAYLOAD} bytes).",
                ),
                UNHANDLED,
                reuse=False,
            )
            return _runtime_error(413, "RequestEntityTooLarge", "response payload too large")
        pool.complete(worker, body, None)
        return _json(202, _ACCEPTED)

    async def _error(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker(request)
        rejected = self._check_id(worker, request)
        if rejected is not None:
            return rejected
        body = await self._read(request) or b""
        if not body.strip():
            error_type = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
            body = host_error(error_type, "the runtime reported an error without details")
        self._pools[worker.spec.name].complete(worker, body, UNHANDLED)
        return _json(202, _ACCEPTED)

    async def _init_error(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker(request)
        body = await self._read(request) or b""
        if not body.strip():
            error_type = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
            body = host_error(error_type, "the runtime failed to initialize")
        worker.init_error = body
        return _json(202, _ACCEPTED)

    @staticmethod
    def _check_id(worker: Worker, request: web.Request) -> web.Response | None:
        inv = worker.current
        if inv is None or inv.request_id != request.match_info["id"]:
            return _runtime_error(400, "InvalidRequestID", "Invalid request ID")
        return None


__all__ = ["RuntimeApi"]
