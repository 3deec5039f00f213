"""SMS through AWS End User Messaging SMS (``pinpoint-sms-voice-v2`` ``SendTextMessage``).

Each message is one call: ``DestinationPhoneNumber`` = ``Message.address``,
``MessageBody`` = ``Message.body``. The campaign's ``SMSMessage`` (``Message.template``)
maps onto the v2 request as follows, each overridable by the channel's options:

=====================  ===========================================  =====================
SMSMessage field       SendTextMessage field                        option
=====================  ===========================================  =====================
OriginationNumber      OriginationIdentity                          origination_identity
SenderId               OriginationIdentity (if no OriginationNumber) origination_identity
MessageType            MessageType (TRANSACTIONAL / PROMOTIONAL)    message_type
Keyword                Keyword                                      keyword
EntityId               DestinationCountryParameters.IN_ENTITY_ID    entity_id
TemplateId             DestinationCountryParameters.IN_TEMPLATE_ID  template_id
=====================  ===========================================  =====================

In the v2 API a sender ID is one kind of origination identity (no separate field), and
India's DLT entity and template IDs are destination-country parameters. ``MediaUrl``
(MMS) is not sent: ``SendTextMessage`` carries text only.

Other options: ``configuration_set``, ``max_price`` (string, USD per part),
``time_to_live`` (seconds), ``protect_configuration_id``, ``dry_run``, ``endpoint_url``,
``region``, ``max_batch`` (default 10, sent concurrently), ``max_concurrency`` (calls in
flight per sender, default 64), ``max_per_second``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from dispatcher.channels._aws import PROVIDER_ERRORS, Options, failure_result, send_each
from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.model import Status

__all__ = ["MESSAGE_TYPES", "SmsSender", "create"]

MESSAGE_TYPES = frozenset({"TRANSACTIONAL", "PROMOTIONAL"})


class SmsSender:
    """``Sender`` for the SMS channel."""

    def __init__(
        self,
        ctx: SenderContext,
        *,
        origination_identity: str | None = None,
        message_type: str | None = None,
        keyword: str | None = None,
        configuration_set: str | None = None,
        entity_id: str | None = None,
        template_id: str | None = None,
        max_price: str | None = None,
        time_to_live: int | None = None,
        protect_configuration_id: str | None = None,
        dry_run: bool = False,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_batch: int = 10,
        max_concurrency: int = 64,
        max_per_second: float | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_per_second = max_per_second
        self._clients = ctx.clients
        self._endpoint_url = endpoint_url
        self._region = region
        self._client: Any = None
        self._overrides = {
            "OriginationIdentity": origination_identity,
            "MessageType": message_type,
            "Keyword": keyword,
            "IN_ENTITY_ID": entity_id,
            "IN_TEMPLATE_ID": template_id,
        }
        fixed: dict[str, Any] = {
            "ConfigurationSetName": configuration_set,
            "MaxPrice": max_price,
            "TimeToLive": time_to_live,
            "ProtectConfigurationId": protect_configuration_id,
            "DryRun": dry_run or None,
        }
        self._fixed = {k: v for k, v in fixed.items() if v is not None}
        self._in_flight = anyio.Semaphore(max_concurrency)
        self._template: Mapping[str, Any] | None = None
        self._static: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SmsSender(origination={self._overrides['OriginationIdentity']!r})"

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        if self._client is None:
            self._client = await self._clients.client(
                "pinpoint-sms-voice-v2", endpoint_url=self._endpoint_url, region=self._region
            )
        return await send_each(messages, self._send_one, self._in_flight)

    async def aclose(self) -> None:
        """Nothing to release: the client belongs to the process-wide ``AwsClients``."""

    async def _send_one(self, message: Message) -> SendResult:
        if not message.body:
            return SendResult(Status.PERMANENT_FAILURE, "InvalidMessage: empty SMS body")
        template = message.template
        if template is not self._template:
            self._static = self._build_static(template)
            self._template = template
        try:
            response = await self._client.send_text_message(
                DestinationPhoneNumber=message.address,
                MessageBody=message.body,
                **self._static,
            )
        except PROVIDER_ERRORS as exc:
            return failure_result(exc)
        return SendResult(Status.SUCCESS, None, response.get("MessageId"))

    def _build_static(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """The request fields shared by every message of one campaign template."""
        over = self._overrides

        def pick(option: str, *fields: str) -> Any:
            if over[option] is not None:
                return over[option]
            for name in fields:
                value = template.get(name)
                if value not in (None, ""):
                    return value
            return None

        static: dict[str, Any] = dict(self._fixed)
        origination = pick("OriginationIdentity", "OriginationNumber", "SenderId")
        if origination:
            static["OriginationIdentity"] = str(origination)
        message_type = pick("MessageType", "MessageType")
        if message_type:
            static["MessageType"] = str(message_type).upper()
        keyword = pick("Keyword", "Keyword")
        if keyword:
            static["Keyword"] = str(keyword)
        country: dict[str, str] = {}
        entity = pick("IN_ENTITY_ID", "EntityId")
        if entity:
            country["IN_ENTITY_ID"] = str(entity)
        dlt_template = pick("IN_TEMPLATE_ID", "TemplateId")
        if dlt_template:
            country["IN_TEMPLATE_ID"] = str(dlt_template)
        if country:
            static["DestinationCountryParameters"] = country
        return static


def create(channel: str, options: Mapping[str, Any], ctx: SenderContext) -> SmsSender:
    """Build the SMS sender from its options table (``ConfigError`` on a bad option)."""
    opts = Options(
        channel, options, ctx,
        {"origination_identity", "message_type", "keyword", "configuration_set", "entity_id",
         "template_id", "max_price", "time_to_live", "protect_configuration_id", "dry_run",
         "max_concurrency"},
    )  # fmt: skip
    max_price = _max_price(opts, options.get("max_price"))
    return SmsSender(
        ctx,
        origination_identity=opts.string("origination_identity"),
        message_type=opts.choice("message_type", MESSAGE_TYPES),
        keyword=opts.string("keyword"),
        configuration_set=opts.string("configuration_set"),
        entity_id=opts.string("entity_id"),
        template_id=opts.string("template_id"),
        max_price=max_price,
        time_to_live=opts.integer("time_to_live", None, low=5, high=259_200),
        protect_configuration_id=opts.string("protect_configuration_id"),
        dry_run=bool(opts.flag("dry_run")),
        endpoint_url=opts.endpoint_url(),
        region=opts.string("region"),
        max_batch=opts.integer("max_batch", 10, low=1, high=100) or 10,
        max_concurrency=opts.integer("max_concurrency", 64, low=1, high=10_000) or 64,
        max_per_second=opts.max_per_second(),
    )


_PRICE = re.compile(r"[0-9]{0,2}\.[0-9]{1,5}")


def _max_price(opts: Options, value: Any) -> str | None:
    """``MaxPrice`` is a string like ``"0.05"`` (USD per message part)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = f"{float(value):.5f}".rstrip("0")
        value = text + "0" if text.endswith(".") else text
    if not isinstance(value, str) or not _PRICE.fullmatch(value) or float(value) <= 0:
        raise opts.error("max_price", f'must be a price in USD such as "0.05", got {value!r}')
    return value
