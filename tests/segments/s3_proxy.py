"""A pass-through HTTP proxy in front of moto: records S3 requests and injects faults.

moto serves S3 faithfully but cannot misbehave. This proxy (aiohttp, in-process, on a
free loopback port) forwards every request to moto unchanged and can, for the next
matching request:

* ``cut``: send the headers (full ``Content-Length``) and only the first N body bytes of
  a GET, then drop the connection -- a body that breaks off mid-stream;
* ``fail``: answer with an S3 XML error (status and code) instead of forwarding.

``requests`` lists ``(method, path, query, range header)`` of everything forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import aiohttp
from aiohttp import web

HOP_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "te",
     "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}
)  # fmt: skip


@dataclass
class Fault:
    method: str
    path_contains: str = ""
    query_contains: str = ""
    cut_after: int | None = None
    status: int = 500
    code: str = "InternalError"
    times: int = 1

    def matches(self, request: web.Request) -> bool:
        return (
            self.times != 0
            and request.method == self.method
            and self.path_contains in request.path
            and self.query_contains in request.query_string
        )


@dataclass
class S3Proxy:
    upstream: str
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cut(self, path_contains: str, after: int, *, times: int = 1) -> None:
        """Break the body of the next ``times`` GETs of a matching path after ``after`` bytes."""
        self.faults.append(Fault("GET", path_contains, cut_after=after, times=times))

    def fail(self, method: str, path_contains: str = "", *, query_contains: str = "",
             status: int = 500, code: str = "InternalError", times: int = 1) -> None:  # fmt: skip
        """Answer the next ``times`` matching requests with an S3 error (-1: always)."""
        self.faults.append(Fault(method, path_contains, query_contains, None, status, code, times))

    def ranges(self, path_contains: str) -> list[str | None]:
        """The ``Range`` headers of the GETs forwarded for a path."""
        return [r for m, p, _, r in self.requests if m == "GET" and path_contains in p]

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)  # fmt: skip
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request):
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault(request)
        self.requests.append(
            (request.method, request.path, request.query_string, request.headers.get("Range"))
        )
        if fault is not None and fault.cut_after is None:
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                f"<Message>injected by the test proxy</Message></Error>"
            )
            return web.Response(status=fault.status, text=body, content_type="application/xml")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.rel_url.raw_path_qs,
            headers=headers, data=await request.read(), allow_redirects=False,
        ) as upstream:  # fmt: skip
            payload = await upstream.read()
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS
            }
            length = int(upstream.headers.get("Content-Length", len(payload)))
        response = web.StreamResponse(status=upstream.status, headers=out_headers)
        response.content_length = length  # for HEAD, the object's size
        await response.prepare(request)
        if fault is None:
            await response.write(payload)
            await response.write_eof()
            return response
        await response.write(payload[: fault.cut_after])
        if request.transport is not None:
            request.transport.abort()
        return response
