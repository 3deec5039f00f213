"""A wire-compatible Amazon Pinpoint ``SendMessages`` endpoint (push channels).

rest-json: ``POST /v1/apps/{application-id}/messages`` with the ``MessageRequest`` as the
body; the answer is the ``MessageResponse`` (``{ApplicationId, RequestId, Result:
{address: {DeliveryStatus, StatusCode, StatusMessage, MessageId}}}``). Errors carry
``x-amzn-ErrorType`` and ``{"Message", "RequestID"}`` like Pinpoint's.

Faults (see ``dispatcher.testing._base.Faults``): whole-call ``throttle_next`` and
``throttle_rate`` (429 ``TooManyRequestsException``), ``error_next`` (5xx), ``drop_next``,
``delay``; per address ``throttle_addresses`` (``THROTTLED``), ``fail_addresses``
(``PERMANENT_FAILURE`` with ``message``/``status``) and ``results`` (any
``MessageResult``, e.g. ``OPT_OUT``).

Each delivered address is recorded in ``messages`` as ``{ApplicationId, Address,
ChannelType, TitleOverride, BodyOverride, Message (the platform message), MessageId}``;
each call's request in ``calls``.

Run: ``python -m dispatcher.testing.push --port 0``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from dispatcher.testing._base import Drop, WireServer

MAX_ADDRESSES = 100
PLATFORM_KEYS = {
    "GCM": "GCMMessage", "APNS": "APNSMessage", "APNS_SANDBOX": "APNSMessage",
    "APNS_VOIP": "APNSMessage", "APNS_VOIP_SANDBOX": "APNSMessage", "ADM": "ADMMessage",
    "BAIDU": "BaiduMessage",
}  # fmt: skip


class PushServer(WireServer):
    """``SendMessages`` for push addresses, with per-address results."""

    name = "push"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/apps/{app}/messages", self._send_messages)]

    def error(self, code: str, message: str, status: int) -> web.Response:
        headers = {"x-amzn-ErrorType": code}
        if code == "TooManyRequestsException":
            headers |= self.retry_headers()
        return self.json({"Message": message, "RequestID": self.new_id()}, status, headers)

    async def _send_messages(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        try:
            req = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error("BadRequestException", "body is not JSON", 400)
        self.calls.append({"ApplicationId": app, "MessageRequest": req})
        addresses = req.get("Addresses") if isinstance(req, dict) else None
        self.arrived(request, len(addresses) if isinstance(addresses, dict) else 0)
        faults = self.faults
        if faults.take("drop_next"):
            raise Drop
        if faults.take("error_next"):
            return self.error("InternalServerErrorException", "Internal error", faults.error_status)
        if faults.take("throttle_next"):
            return self.error("TooManyRequestsException", "Too many requests", 429)
        count = len(req.get("Addresses") or {}) if isinstance(req, dict) else 0
        if self.over_quota(request, count):
            return self.error("TooManyRequestsException", "Too many requests", 429)
        addresses = req.get("Addresses") or {}
        config = req.get("MessageConfiguration")
        if not isinstance(config, dict):
            return self.error("BadRequestException", "MessageConfiguration is required", 400)
        if len(addresses) > MAX_ADDRESSES:
            return self.error(
                "BadRequestException", f"at most {MAX_ADDRESSES} addresses per request", 400
            )
        result = {address: self._deliver(app, address, spec, config)
                  for address, spec in addresses.items()}  # fmt: skip
        await self.maybe_delay()
        return self.json({"ApplicationId": app, "RequestId": self.new_id(), "Result": result})

    def _deliver(
        self, app: str, address: str, spec: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        faults = self.faults
        if address in faults.results:
            return dict(faults.results[address])
        if address in faults.throttle_addresses:
            return {"DeliveryStatus": "THROTTLED", "StatusCode": 429,
                    "StatusMessage": "Rate exceeded"}  # fmt: skip
        failure = faults.fail_addresses.get(address)
        if failure is not None:
            return {
                "DeliveryStatus": failure.get("code", "PERMANENT_FAILURE"),
                "StatusCode": int(failure.get("status", 400)),
                "StatusMessage": failure.get("message", "Invalid token"),
            }
        channel = spec.get("ChannelType")
        key = PLATFORM_KEYS.get(channel or "")
        if key is None:
            return {"DeliveryStatus": "PERMANENT_FAILURE", "StatusCode": 400,
                    "StatusMessage": f"Unsupported ChannelType {channel!r}"}  # fmt: skip
        message_id = self.new_id()
        self.messages.append(
            {
                "ApplicationId": app,
                "Address": address,
                "ChannelType": channel,
                "TitleOverride": spec.get("TitleOverride"),
                "BodyOverride": spec.get("BodyOverride"),
                "Message": config.get(key),
                "MessageId": message_id,
            }
        )
        return {"DeliveryStatus": "SUCCESSFUL", "StatusCode": 200, "StatusMessage": "OK",
                "MessageId": message_id}  # fmt: skip


if __name__ == "__main__":
    PushServer.main()
