"""A Lambda Invoke API that is slow and small, as a busy real function is.

``ThrottlingLambda`` speaks the same wire protocol as ``InvokeApi`` (it is one: SigV4 is
verified the same way, a FILTER hook's event is echoed back) with two differences:

* every accepted call answers after ``latency`` seconds (the function "runs");
* at most ``limit`` calls run at once. A call that arrives while ``limit`` are running
  is throttled the way Lambda throttles it, before the function runs: HTTP 429 with
  ``X-Amzn-ErrorType: TooManyRequestsException`` and the service's JSON body
  (``Reason: ReservedFunctionConcurrentInvocationLimitExceeded``), plus ``Retry-After``
  if ``retry_after`` is set.

It counts what it saw: accepted calls, throttled calls, the most calls running at once
(never more than ``limit``, by construction) and the most calls *asked for* at once
(running plus the one being refused), so a test can say how hard a client pushed past
the limit.
"""

from __future__ import annotations

import anyio
import orjson
from aiohttp import web

from tests.hooks.lambda_api_server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    SESSION_TOKEN,
    InvokeApi,
)

THROTTLE_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"


class ThrottlingLambda(InvokeApi):
    """The server (``await start()`` ... ``await stop()``); counters are plain ints."""

    def __init__(
        self,
        *,
        limit: int,
        latency: float,
        retry_after: float | None = None,
        region: str = REGION,
    ) -> None:
        super().__init__(region=region, credentials={ACCESS_KEY: (SECRET_KEY, SESSION_TOKEN)})
        if limit < 1:
            raise ValueError(f"'limit' must be >= 1, got {limit}")
        self.limit = limit
        self.latency = latency
        self.retry_after = retry_after
        self.running = 0
        self.max_running = 0
        self.max_asked = 0
        self.accepted = 0
        self.throttled = 0
        self.endpoints = 0
        """Endpoints in accepted events (each endpoint once per accepted call)."""

    async def _invoke(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = self._verify(request, body)
        if problem is not None:
            return _error(403, "InvalidSignatureException", f"bad signature: {problem}")
        self.max_asked = max(self.max_asked, self.running + 1)
        if self.running >= self.limit:
            self.throttled += 1
            headers = {}
            if self.retry_after is not None:
                headers["Retry-After"] = f"{self.retry_after:g}"
            return _error(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                headers=headers,
                extra={"Reason": THROTTLE_REASON},
            )
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await anyio.sleep(self.latency)
            endpoints = orjson.loads(body).get("Endpoints", {})
        finally:
            self.running -= 1
        self.accepted += 1
        self.endpoints += len(endpoints)
        return web.Response(
            body=orjson.dumps(endpoints),
            headers={"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"},
        )


def _error(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> web.Response:
    """A Lambda service error as the service sends it (botocore's rest-json shape)."""
    return web.Response(
        status=status,
        body=orjson.dumps({"Type": "User", "message": message, **(extra or {})}),
        headers={"X-Amzn-ErrorType": code, "Content-Type": "application/json", **(headers or {})},
    )
