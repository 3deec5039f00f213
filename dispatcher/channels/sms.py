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
flight per sender, default 64), ``max_per_second`` (this sender's own ceiling).

Send rate per origination identity. An origination number's throughput is small (a long
code about 1 message per second, toll-free 3, 10DLC and short codes more), so
``origination_rates`` gives identities their own ceilings, under ``max_per_second`` and
the campaign's::

    [channels.SMS]
    origination_identity = ["+12065550100", "+18005550100"]   # a pool (or one string)
    [channels.SMS.origination_rates]
    "+12065550100" = 1
    "+18005550100" = 3

With a pool, each message's identity is chosen by weighted rendezvous hashing of its
destination number, weighted by the identities' rates (1 for one without a rate): a
recipient always hears from the same number (in every run, process and worker), and the
numbers share the load in proportion to their throughput. Without a pool the identity is
the option's, else the template's ``OriginationNumber``, else its ``SenderId``; a rate in
the table applies to whichever identity a message goes out with.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from dispatcher.channels._aws import (
    PROVIDER_ERRORS,
    Options,
    failure_result,
    send_each,
)
from dispatcher.channels._lean import LeanCall
from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.model import Status
from dispatcher.ratelimit import Limiter, Pacing

__all__ = ["MESSAGE_TYPES", "SmsSender", "create", "pick_identity"]

MESSAGE_TYPES = frozenset({"TRANSACTIONAL", "PROMOTIONAL"})


class SmsSender:
    """``Sender`` for the SMS channel."""

    def __init__(
        self,
        ctx: SenderContext,
        *,
        origination_identity: str | Sequence[str] | None = None,
        origination_rates: Mapping[str, float] | None = None,
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
        self.origination_rates = dict(origination_rates or {})
        self._pool: list[tuple[str, float]] | None = None
        if origination_identity is not None and not isinstance(origination_identity, str):
            # A pool: weight = the identity's rate (1 without one), see pick_identity.
            rates = self.origination_rates
            self._pool = [(identity, rates.get(identity, 1.0)) for identity in origination_identity]
            origination_identity = None
        self._pacing: Pacing | None = None
        self._clients = ctx.clients
        self._endpoint_url = endpoint_url
        # The project's region unless the channel names its own (a fleet worker's clients
        # default to the worker's region, not the campaign's).
        region = region or ctx.region
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
        self._send_text = LeanCall(
            ctx.clients, "pinpoint-sms-voice-v2", "SendTextMessage",
            headers={"Content-Type": "application/x-amz-json-1.0",
                     "X-Amz-Target": "PinpointSMSVoiceV2.SendTextMessage"},
            endpoint_url=endpoint_url, region=region, concurrency=max_concurrency,
        )  # fmt: skip

    def __repr__(self) -> str:
        origination = self._overrides["OriginationIdentity"] or [i for i, _ in self._pool or ()]
        return f"SmsSender(origination={origination!r})"

    def pace(self, pacing: Pacing) -> None:
        """Take each ``SendTextMessage``'s permit from ``pacing`` (per identity, see above)."""
        self._pacing = pacing

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        if self._client is None:
            # Before the first permit: a slow first client must not eat into the window.
            self._client = await self._clients.client(
                "pinpoint-sms-voice-v2", endpoint_url=self._endpoint_url, region=self._region
            )
            await self._send_text.open()
        paced = None if self._pacing is None else self._limiter_for
        return await send_each(messages, self._send_one, self._in_flight, paced)

    def identity_of(self, message: Message) -> str | None:
        """The origination identity ``message`` goes out with (None: the account's default)."""
        if self._pool is not None:
            return pick_identity(self._pool, message.address)
        identity = self._static_for(message.template).get("OriginationIdentity")
        return None if identity is None else str(identity)

    def _limiter_for(self, message: Message) -> Limiter:
        assert self._pacing is not None
        identity = self.identity_of(message)
        rate = self.origination_rates.get(identity) if identity is not None else None
        if rate is None:
            return self._pacing.limiter
        return self._pacing.ceiling(f"sms/origination/{identity}", rate)

    async def aclose(self) -> None:
        """Nothing to release: the client belongs to the process-wide ``AwsClients``."""

    async def _send_one(self, message: Message) -> SendResult:
        if not message.body:
            return SendResult(Status.PERMANENT_FAILURE, "InvalidMessage: empty SMS body")
        static = self._static_for(message.template)
        if self._pool is not None:
            static = {**static, "OriginationIdentity": pick_identity(self._pool, message.address)}
        try:
            response = await self._send_text(
                {"DestinationPhoneNumber": message.address, "MessageBody": message.body,
                 **static}
            )  # fmt: skip
        except PROVIDER_ERRORS as exc:
            return failure_result(exc)
        return SendResult(Status.SUCCESS, None, response.get("MessageId"))

    def _static_for(self, template: Mapping[str, Any]) -> dict[str, Any]:
        if template is not self._template:
            self._static = self._build_static(template)
            self._template = template
        return self._static

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
        {"origination_identity", "origination_rates", "message_type", "keyword",
         "configuration_set", "entity_id", "template_id", "max_price", "time_to_live",
         "protect_configuration_id", "dry_run", "max_concurrency"},
    )  # fmt: skip
    max_price = _max_price(opts, options.get("max_price"))
    identities = opts.strings("origination_identity")
    if identities is not None and len(set(identities)) != len(identities):
        raise opts.error("origination_identity", f"lists an identity twice: {identities!r}")
    return SmsSender(
        ctx,
        # A pool of one is just that identity.
        origination_identity=identities[0] if identities and len(identities) == 1 else identities,
        origination_rates=opts.rates("origination_rates"),
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


def pick_identity(pool: Sequence[tuple[str, float]], destination: str) -> str:
    """The pool's identity for ``destination``: weighted rendezvous hashing (the identity
    with the highest ``-weight / ln(u)``, ``u`` a uniform hash of identity and
    destination), so each destination keeps its identity and identities get destinations
    in proportion to their weights."""
    best, best_score = pool[0][0], -math.inf
    for identity, weight in pool:
        digest = hashlib.blake2b(f"{identity}\x00{destination}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2.0**64
        score = -weight / math.log(u)
        if score > best_score:
            best, best_score = identity, score
    return best


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
