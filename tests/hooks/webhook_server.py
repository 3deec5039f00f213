"""A webhook receiver for tests: checks the signature the way a real receiver would.

Every POST is verified with ``dispatcher.hooks.webhook.verify_signature`` (what the
README tells receivers to copy); an invalid one gets 401. Valid requests echo the
event's ``Endpoints`` unless a ``Reply`` is configured for the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import orjson
from aiohttp import web

from dispatcher.hooks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


class WebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.replies: dict[str, Reply] = {}
        self.requests: list[Seen] = []
        self.release = anyio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify_signature(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER),
            body,
            request.headers.get(SIGNATURE_HEADER),
        )
        self.requests.append(Seen(request.path, dict(request.headers), body, ok))
        if not ok:
            return web.json_response({"error": "bad signature"}, status=401)
        reply = self.replies.get(request.path)
        if reply is not None and (reply.times is None or reply.times > 0):
            if reply.times is not None:
                reply.times -= 1
            if reply.delay:
                with anyio.move_on_after(reply.delay):
                    await self.release.wait()
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        event = orjson.loads(body)
        return web.Response(body=orjson.dumps(event["Endpoints"]), content_type="application/json")
