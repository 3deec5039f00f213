"""A minimal wire-compatible Amazon SES v2 ``SendEmail`` endpoint (for faults and benchmarks).

moto implements SES v2 ``SendEmail`` and is what the success-path tests use; it cannot
inject faults and handles ~250 calls/s. This server answers ``POST
/v2/email/outbound-emails`` (rest-json) with ``{"MessageId": ...}`` and records each
request in ``messages`` (``MessageId`` added). Errors carry ``x-amzn-ErrorType`` and
``{"message": ...}`` like SES's.

Faults (see ``tests.servers._base.Faults``): ``throttle_next`` / ``throttle_addresses``
(429 ``TooManyRequestsException``), ``error_next`` (5xx), ``drop_next``, ``delay``,
``fail_addresses`` keyed by To address, e.g. ``{"a@x": {"code": "MessageRejected",
"message": "Email address is not verified."}}`` (400 unless ``status`` says otherwise).

Run: ``python -m tests.servers.ses --port 0``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.servers._base import Drop, WireServer


class SesServer(WireServer):
    """SES v2 ``SendEmail`` (Simple, Raw or Template content is recorded as sent)."""

    name = "ses"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v2/email/outbound-emails", self._send_email)]

    def error(self, code: str, message: str, status: int) -> web.Response:
        headers = {"x-amzn-ErrorType": code}
        if code == "TooManyRequestsException":
            headers |= self.retry_headers()
        return self.json({"message": message}, status, headers)

    async def _send_email(self, request: web.Request) -> web.Response:
        try:
            req: dict[str, Any] = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error("BadRequestException", "body is not JSON", 400)
        self.calls.append(req)
        faults = self.faults
        if faults.take("drop_next"):
            raise Drop
        if faults.take("error_next"):
            return self.error("InternalFailure", "Internal error", faults.error_status)
        to = (req.get("Destination") or {}).get("ToAddresses") or []
        if faults.take("throttle_next") or faults.throttle_addresses.intersection(to):
            return self.error("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
        if not to or "Content" not in req:
            return self.error("BadRequestException", "Destination and Content are required", 400)
        for address in to:
            failure = faults.fail_addresses.get(address)
            if failure is not None:
                return self.error(
                    failure.get("code", "MessageRejected"),
                    failure.get("message", "Email address is not verified."),
                    int(failure.get("status", 400)),
                )
        message_id = self.new_id()
        self.messages.append({**req, "MessageId": message_id})
        await self.maybe_delay()
        return self.json({"MessageId": message_id})


if __name__ == "__main__":
    SesServer.main()
