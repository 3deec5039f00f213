"""A wire-compatible AWS End User Messaging SMS (``pinpoint-sms-voice-v2``) endpoint.

JSON 1.0 protocol: ``POST /`` with ``X-Amz-Target: PinpointSMSVoiceV2.SendTextMessage``
and an ``application/x-amz-json-1.0`` body; errors are ``{"__type": code, "Message": ...}``
(modeled fields such as ``Reason`` beside it). Only ``SendTextMessage`` is implemented.

Faults (see ``dispatcher.testing._base.Faults``): ``throttle_next`` / ``throttle_addresses`` /
``throttle_rate`` answer ``ThrottlingException``; ``error_next`` an ``InternalServerException`` with
``error_status``; ``fail_addresses`` any error, e.g.
``{"+15550100": {"code": "ConflictException", "reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT"}}``.

Run: ``python -m dispatcher.testing.sms --port 0``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from dispatcher.testing._base import Drop, WireServer

TARGET_PREFIX = "PinpointSMSVoiceV2."
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


class SmsServer(WireServer):
    """``SendTextMessage`` recorded in ``messages`` (the request fields plus ``MessageId``)."""

    name = "sms"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/", self._handle)]

    @staticmethod
    def error(
        code: str, message: str, status: int = 400, *, headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> web.Response:  # fmt: skip
        body = {"__type": code, "Message": message, "message": message, **extra}
        return web.Response(
            body=orjson.dumps(body), status=status, headers=headers,
            content_type="application/x-amz-json-1.0",
        )  # fmt: skip

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self.error("MissingAuthenticationTokenException", "Missing Authentication Token")
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error("SerializationException", "body is not JSON")
        # The credential scope names the region the request was signed for, as AWS checks.
        scope = request.headers["Authorization"].split("Credential=", 1)[-1].split(",", 1)[0]
        region = scope.split("/")[2] if scope.count("/") >= 3 else None
        self.calls.append({"Target": target, "Request": payload, "Region": region})
        if target != TARGET_PREFIX + "SendTextMessage":
            return self.error("UnknownOperationException", f"unknown operation {target!r}")
        self.arrived(request)
        return await self._send_text_message(request, payload)

    async def _send_text_message(self, request: web.Request, req: dict[str, Any]) -> web.Response:
        faults = self.faults
        if faults.take("drop_next"):
            raise Drop
        if faults.take("error_next"):
            return self.error(
                "InternalServerException", "Internal error", faults.error_status,
                RequestId=self.new_id(),
            )  # fmt: skip
        number = req.get("DestinationPhoneNumber")
        if (faults.take("throttle_next") or number in faults.throttle_addresses
                or self.over_quota(request)):  # fmt: skip
            return self.error("ThrottlingException", "Rate exceeded", headers=self.retry_headers())
        if not isinstance(number, str) or not _E164.match(number):
            return self.error(
                "ValidationException", "DestinationPhoneNumber must be in E.164 format",
                Reason="INVALID_PARAMETER",
                Fields=[{"Name": "DestinationPhoneNumber", "Message": "invalid"}],
            )  # fmt: skip
        failure = faults.fail_addresses.get(number)
        if failure is not None:
            extra = {"Reason": failure["reason"]} if failure.get("reason") else {}
            return self.error(
                failure.get("code", "ValidationException"),
                failure.get("message", "rejected"),
                int(failure.get("status", 400)),
                **extra,
            )
        message_id = self.new_id()
        self.messages.append({**req, "MessageId": message_id})
        await self.maybe_delay()
        return web.Response(
            body=orjson.dumps({"MessageId": message_id}),
            content_type="application/x-amz-json-1.0",
        )


if __name__ == "__main__":
    SmsServer.main()
