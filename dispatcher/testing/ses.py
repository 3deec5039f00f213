"""A minimal wire-compatible Amazon SES v2 endpoint: ``SendEmail`` and ``GetAccount``.

moto implements SES v2 ``SendEmail`` and is what the success-path tests use; it cannot
inject faults, handles ~250 calls/s and has no ``GetAccount``. This server answers ``POST
/v2/email/outbound-emails`` (rest-json) with ``{"MessageId": ...}`` and records each
request in ``messages`` (``MessageId`` added). Errors carry ``x-amzn-ErrorType`` and
``{"message": ...}`` like SES's.

``GET /v2/email/account`` answers ``account`` (``SendQuota.MaxSendRate`` 14 by default);
``POST /_test/account`` merges a JSON object into it; an ``"error"`` member
(``{"code", "message", "status"}``) makes it fail instead, e.g. ``AccessDeniedException``.

Faults (see ``dispatcher.testing._base.Faults``): ``throttle_next`` / ``throttle_addresses`` /
``throttle_rate`` (429 ``TooManyRequestsException``), ``error_next`` (5xx), ``drop_next``,
``delay``, ``fail_addresses`` keyed by To address, e.g. ``{"a@x": {"code": "MessageRejected",
"message": "Email address is not verified."}}`` (400 unless ``status`` says otherwise).

Run: ``python -m dispatcher.testing.ses --port 0``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from aiohttp import web

from dispatcher.testing._base import Drop, WireServer

ACCOUNT: dict[str, Any] = {
    "DedicatedIpAutoWarmupEnabled": False,
    "EnforcementStatus": "HEALTHY",
    "ProductionAccessEnabled": True,
    "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0},
    "SendingEnabled": True,
}
"""``GetAccount``'s answer for a production account with the default quota."""


class SesServer(WireServer):
    """SES v2 ``SendEmail`` (Simple, Raw or Template content is recorded as sent)."""

    name = "ses"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.account: dict[str, Any] = copy.deepcopy(ACCOUNT)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/email/outbound-emails", self._send_email),
            web.get("/v2/email/account", self._get_account),
            web.post("/_test/account", self._post_account),
        ]

    def reset(self) -> None:
        super().reset()
        self.account = copy.deepcopy(ACCOUNT)

    async def _get_account(self, request: web.Request) -> web.Response:
        error = self.account.get("error")
        if error:
            return self.error(error.get("code", "AccessDeniedException"),
                              error.get("message", "not authorized to perform ses:GetAccount"),
                              int(error.get("status", 403)))  # fmt: skip
        return self.json(self.account)

    async def _post_account(self, request: web.Request) -> web.Response:
        self.account.update(orjson.loads(await request.read()))
        return self.json({"ok": True})

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
        to = (req.get("Destination") or {}).get("ToAddresses") or []
        self.arrived(request, max(1, len(to)))  # SES's MaxSendRate counts recipients
        faults = self.faults
        if faults.take("drop_next"):
            raise Drop
        if faults.take("error_next"):
            return self.error("InternalFailure", "Internal error", faults.error_status)
        if (faults.take("throttle_next") or faults.throttle_addresses.intersection(to)
                or self.over_quota(request, max(1, len(to)))):  # fmt: skip
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
