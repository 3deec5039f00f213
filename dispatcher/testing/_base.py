"""What every local wire-compatible server shares: lifecycle, recording, fault injection.

A server runs in-process (``async with SmsServer() as s: s.url``; it binds 127.0.0.1 on a
free port in the current event loop) or as a subprocess (``python -m dispatcher.testing.sms
--port N``; ``--port 0`` picks a free port; the first stdout line is ``READY <url>``).

Test endpoints, the same on every server:

* ``GET  /_test/messages``  every accepted message, in arrival order (``server.messages``)
* ``GET  /_test/calls``     every API call's decoded request (``server.calls``)
* ``GET  /_test/arrivals``  ``[t, n]`` per API call: its arrival time (``time.monotonic()``
  of the server, system-wide on Linux) and how many messages it carries (push: its
  addresses), refused calls included (``server.arrivals``); what the send-rate ceiling
  is checked against
* ``POST /_test/faults``    merge a JSON object into the fault plan (``server.faults``)
* ``POST /_test/reset``     forget messages, calls and faults
* ``GET  /_test/stats``     call count, most calls in flight at once
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import orjson
from aiohttp import web


@dataclass
class Faults:
    """What the server does wrong, consumed call by call.

    Counters (``*_next``) apply to the next N API calls. Per-address faults apply to
    every message to that address until reset.
    """

    throttle_next: int = 0
    """Answer the next N calls with the service's throttling error."""
    throttle_addresses: set[str] = field(default_factory=set)
    """Throttle every call that contains one of these addresses."""
    throttle_rate: int = 0
    """A provider's own quota: throttle a call whose messages would make more than this
    many accepted in the trailing second (0: no quota)."""
    retry_after: float | None = None
    """Send ``Retry-After`` with throttling answers."""
    error_next: int = 0
    """Answer the next N calls with a 5xx error."""
    error_status: int = 500
    drop_next: int = 0
    """Close the connection without answering the next N calls (after reading them)."""
    delay: float = 0.0
    """Seconds to wait before answering (after recording the message)."""
    delay_next: int = -1
    """How many calls ``delay`` applies to; -1 means every call."""
    fail_addresses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Address -> ``{"code", "message", "status", "reason"}``: a permanent error."""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Push only: address -> ``MessageResult`` fields to answer for it."""

    def update(self, data: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in data.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; expected one of {sorted(names)}")
            if key == "throttle_addresses":
                value = set(value)
            setattr(self, key, value)

    def take(self, counter: str) -> bool:
        """Consume one unit of a ``*_next`` counter; True if the fault applies now."""
        left = getattr(self, counter)
        if left == 0:
            return False
        if left > 0:
            setattr(self, counter, left - 1)
        return True


_ARRIVED: Any = web.RequestKey("arrived", float) if hasattr(web, "RequestKey") else "arrived"
"""The request attribute holding its arrival time (a typed key on aiohttp >= 3.12)."""


class Drop(Exception):
    """Raised by a handler to close the connection without an answer."""


class WireServer:
    """Base class: subclasses add their API routes in ``routes()``."""

    name: ClassVar[str] = "server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.arrivals: list[tuple[float, int]] = []
        self._accepted: deque[tuple[float, int]] = deque()  # for ``throttle_rate``
        self.faults = Faults()
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_test/messages", self._get_messages)
        app.router.add_get("/_test/calls", self._get_calls)
        app.router.add_get("/_test/arrivals", self._get_arrivals)
        app.router.add_get("/_test/stats", self._get_stats)
        app.router.add_post("/_test/faults", self._post_faults)
        app.router.add_post("/_test/reset", self._post_reset)
        app.router.add_routes(self.routes())
        return app

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def start(self) -> Self:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def reset(self) -> None:
        self.messages.clear()
        self.calls.clear()
        self.arrivals.clear()
        self._accepted.clear()
        self.faults = Faults()
        self.max_in_flight = 0

    # -- helpers for subclasses ------------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def arrived(self, request: web.Request, messages: int = 1) -> None:
        """Record an API call carrying ``messages`` messages, stamped when it arrived."""
        self.arrivals.append((request[_ARRIVED], messages))

    def over_quota(self, request: web.Request, messages: int = 1) -> bool:
        """The ``throttle_rate`` fault: True (throttle) if ``messages`` more would exceed
        it in the second before this call's arrival; else count them as accepted."""
        quota = self.faults.throttle_rate
        if quota <= 0:
            return False
        now = request[_ARRIVED]
        accepted = self._accepted
        while accepted and accepted[0][0] <= now - 1.0:
            accepted.popleft()
        if sum(n for _, n in accepted) + messages > quota:
            return True
        accepted.append((now, messages))
        return False

    async def maybe_delay(self) -> None:
        if self.faults.delay > 0 and self.faults.take("delay_next"):
            await asyncio.sleep(self.faults.delay)

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            body=orjson.dumps(data), status=status, headers=headers,
            content_type="application/json",
        )  # fmt: skip

    def retry_headers(self) -> dict[str, str]:
        ra = self.faults.retry_after
        return {} if ra is None else {"Retry-After": f"{ra:g}"}

    # -- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_test/"):
            return await handler(request)  # type: ignore[no-any-return]
        # Stamped before anything else runs for this request: the provider's clock.
        request[_ARRIVED] = time.monotonic()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except Drop:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPInternalServerError() from None  # never reaches the client
        finally:
            self.in_flight -= 1

    async def _get_messages(self, request: web.Request) -> web.Response:
        return self.json(self.messages)

    async def _get_calls(self, request: web.Request) -> web.Response:
        return self.json(self.calls)

    async def _get_arrivals(self, request: web.Request) -> web.Response:
        return self.json(self.arrivals)

    async def _get_stats(self, request: web.Request) -> web.Response:
        return self.json(
            {"calls": len(self.calls), "messages": len(self.messages),
             "max_in_flight": self.max_in_flight}
        )  # fmt: skip

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(orjson.loads(await request.read()))
        except (ValueError, TypeError) as exc:
            return self.json({"message": str(exc)}, status=400)
        return self.json({"ok": True})

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return self.json({"ok": True})

    # -- subprocess entry point --------------------------------------------------------------

    @classmethod
    def main(cls, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"python -m dispatcher.testing.{cls.name}")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
        args = parser.parse_args(argv)

        async def serve() -> None:
            server = await cls(args.host, args.port).start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            print(f"READY {server.url}", flush=True)
            try:
                await stop.wait()
            finally:
                await server.aclose()

        asyncio.run(serve())
        sys.exit(0)
