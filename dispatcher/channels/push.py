"""Push (GCM, APNS, APNS_SANDBOX, APNS_VOIP, APNS_VOIP_SANDBOX, ADM, BAIDU) via Pinpoint
``SendMessages``, up to 100 addresses per call.

One call carries one ``MessageConfiguration`` for all its addresses, so the per-endpoint
title and body travel as per-address ``TitleOverride`` / ``BodyOverride``
(``AddressConfiguration``); the platform messages (``GCMMessage``, ``APNSMessage``,
``ADMMessage``, ``BaiduMessage``) carry only the campaign's static fields. A batch that
mixes platforms still goes in one call (one platform message per platform); messages
whose static fields differ (e.g. A/B treatments) or whose addresses repeat go in separate
calls, since ``Addresses`` is a map.

The platform message is built from ``Message.template``, which may be in the campaign
shape (``Message{Action, Body, ImageIconUrl, ImageSmallIconUrl, ImageUrl, JsonBody,
MediaUrl, RawContent, SilentPush, TimeToLive, Title, Url}``) or the direct shape: fields
the platform message has are copied; ``ImageSmallIconUrl`` becomes ``SmallImageIconUrl``,
a ``JsonBody`` object becomes ``Data``, and ADM's ``TimeToLive`` becomes ``ExpiresAfter``;
``Title``, ``Body`` and ``Substitutions`` are dropped (the message is already rendered).

Each address's ``MessageResult`` maps back to its message: ``SUCCESSFUL`` -> SUCCESS;
``THROTTLED`` -> THROTTLED and ``TEMPORARY_FAILURE`` -> TEMPORARY_FAILURE, both retryable;
``PERMANENT_FAILURE``, ``OPT_OUT``, ``DUPLICATE`` -> PERMANENT_FAILURE; ``UNKNOWN_FAILURE``
-> TEMPORARY_FAILURE, not retryable (it may have been delivered).

Options: ``application_id`` (default: the run's), ``endpoint_url``, ``region``,
``max_batch`` (addresses per call, 1-100, default 100), ``max_per_second``.

Paced (``pace``), each call takes a permit for as many messages as it has addresses,
right before it goes out; a call never has more addresses than the limiter can grant
at once (a share of a shared ceiling may be small).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import anyio
import orjson

from dispatcher.channels._aws import (
    NOT_RETRIED,
    PROVIDER_ERRORS,
    Options,
    failure_result,
    raise_first,
)
from dispatcher.channels._lean import LeanCall
from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.errors import SendError
from dispatcher.model import Status
from dispatcher.ratelimit import Limiter, Pacing, Permit

__all__ = ["MAX_ADDRESSES", "PLATFORM_MESSAGE", "PushSender", "create", "platform_message"]

MAX_ADDRESSES = 100
"""Pinpoint ``SendMessages`` accepts at most 100 addresses per request."""

PLATFORM_MESSAGE = {
    "GCM": "GCMMessage", "APNS": "APNSMessage", "APNS_SANDBOX": "APNSMessage",
    "APNS_VOIP": "APNSMessage", "APNS_VOIP_SANDBOX": "APNSMessage", "ADM": "ADMMessage",
    "BAIDU": "BaiduMessage",
}  # fmt: skip
"""Endpoint ChannelType -> the DirectMessageConfiguration member that serves it."""

_COMMON = {"Action", "Data", "RawContent", "SilentPush", "Sound", "Url"}
_ANDROID = {"IconReference", "ImageIconUrl", "ImageUrl", "SmallImageIconUrl"}
STATIC_FIELDS: dict[str, frozenset[str]] = {
    "GCMMessage": frozenset(
        _COMMON | _ANDROID | {"CollapseKey", "PreferredAuthenticationMethod", "Priority",
                              "RestrictedPackageName", "TimeToLive"}
    ),
    "APNSMessage": frozenset(
        _COMMON | {"APNSPushType", "Badge", "Category", "CollapseId", "MediaUrl",
                   "PreferredAuthenticationMethod", "Priority", "ThreadId", "TimeToLive"}
    ),
    "ADMMessage": frozenset(_COMMON | _ANDROID | {"ConsolidationKey", "ExpiresAfter", "MD5"}),
    "BaiduMessage": frozenset(_COMMON | _ANDROID | {"TimeToLive"}),
}  # fmt: skip
"""The platform messages' fields, less Title, Body and Substitutions (rendered per address)."""

_ALIASES = {"ImageSmallIconUrl": "SmallImageIconUrl"}
_INTS = frozenset({"TimeToLive", "Badge"})


def platform_message(key: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """The static part of platform message ``key`` (e.g. ``"GCMMessage"``) from a template."""
    allowed = STATIC_FIELDS[key]
    out: dict[str, Any] = {}
    for name, value in template.items():
        if value is None:
            continue
        name = _ALIASES.get(name, name)
        if name in allowed:
            out[name] = _coerce(name, value)
    if "Data" not in out and "JsonBody" in template:
        data = _json_body(template["JsonBody"])
        if data:
            out["Data"] = data
    ttl = template.get("TimeToLive")
    if key == "ADMMessage" and "ExpiresAfter" not in out and ttl is not None:
        out["ExpiresAfter"] = str(ttl)
    return out


def _coerce(name: str, value: Any) -> Any:
    if name in _INTS:
        return int(value)
    if name == "SilentPush":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if name == "Data":
        return _string_map(value)
    return value if isinstance(value, str) else str(value)


def _json_body(value: Any) -> dict[str, str] | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return _string_map(value) if isinstance(value, Mapping) else None


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()}


class _Call:
    """The messages of one ``SendMessages`` request."""

    __slots__ = ("addresses", "indexes", "templates")

    def __init__(self) -> None:
        self.indexes: list[int] = []
        self.addresses: dict[str, dict[str, str]] = {}
        self.templates: dict[str, Mapping[str, Any]] = {}

    def accepts(self, key: str, message: Message, most: int) -> bool:
        if message.address in self.addresses or len(self.addresses) >= most:
            return False
        current = self.templates.get(key)
        return current is None or current is message.template or current == message.template


class PushSender:
    """``Sender`` for the push channels (Pinpoint ``SendMessages``)."""

    def __init__(
        self,
        ctx: SenderContext,
        *,
        application_id: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_batch: int = MAX_ADDRESSES,
        max_per_second: float | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_per_second = max_per_second
        self._pacing: Pacing | None = None
        self.application_id = application_id or ctx.application_id
        self._clients = ctx.clients
        self._endpoint_url = endpoint_url
        # The project's region unless the channel names its own (a fleet worker's clients
        # default to the worker's region, not the campaign's).
        region = region or ctx.region
        self._region = region
        self._client: Any = None
        # The request body is the MessageRequest itself (rest-json payload), the answer
        # the MessageResponse: a signed POST without botocore's per-call model walk over
        # up to 100 address maps (``LeanCall``).
        self._send_messages = LeanCall(
            ctx.clients, "pinpoint", "SendMessages",
            path=f"/v1/apps/{quote(self.application_id, safe='-_.~')}/messages",
            headers={"Content-Type": "application/json"}, endpoint_url=endpoint_url,
            region=region, concurrency=64,
        )  # fmt: skip
        self._platform_cache: dict[tuple[str, int], tuple[Mapping[str, Any], dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"PushSender(application_id={self.application_id!r}, max_batch={self.max_batch})"

    def pace(self, pacing: Pacing) -> None:
        """Take each ``SendMessages`` call's permit (one per address) from ``pacing``."""
        self._pacing = pacing

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        if self._client is None:
            # Before the first permit: a slow first client must not eat into the window.
            self._client = await self._clients.client(
                "pinpoint", endpoint_url=self._endpoint_url, region=self._region
            )
            await self._send_messages.open()
        limiter = None if self._pacing is None else self._pacing.limiter
        most = MAX_ADDRESSES if limiter is None else max(1, min(MAX_ADDRESSES, limiter.max_grant))
        results: list[SendResult | None] = [None] * len(messages)
        calls: list[_Call] = []
        for index, message in enumerate(messages):
            key = PLATFORM_MESSAGE.get(message.channel_type)
            if key is None:
                results[index] = SendResult(
                    Status.PERMANENT_FAILURE,
                    f"UnsupportedChannel: {message.channel_type} is not a push channel",
                )
                continue
            for call in calls:
                if call.accepts(key, message, most):
                    break
            else:
                call = _Call()
                calls.append(call)
            call.templates.setdefault(key, message.template)
            spec = {"ChannelType": message.channel_type}
            if message.title is not None:
                spec["TitleOverride"] = message.title
            if message.body is not None:
                spec["BodyOverride"] = message.body
            call.addresses[message.address] = spec
            call.indexes.append(index)
        if len(calls) == 1:
            permit = await _permit(limiter, calls[0])
            await self._send_call(calls[0], messages, results, permit, limiter)
        elif calls:
            permits: list[Permit] = []
            try:
                async with anyio.create_task_group() as tg:
                    for call in calls:
                        permits.append(await _permit(limiter, call))  # before the task starts
                        tg.start_soon(self._send_call, call, messages, results, permits[-1],
                                      limiter)  # fmt: skip
            except* SendError as group:
                raise_first(group)
            finally:
                for permit in permits:  # done() is idempotent; a task may never have run
                    permit.done()
        return results  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Nothing to release: the client belongs to the process-wide ``AwsClients``."""

    async def _send_call(
        self, call: _Call, messages: Sequence[Message], results: list[SendResult | None],
        permit: Permit, limiter: Limiter | None,
    ) -> None:  # fmt: skip
        with permit:
            try:
                configuration = {key: self._platform(key, t) for key, t in call.templates.items()}
            except (TypeError, ValueError) as exc:
                for index in call.indexes:
                    results[index] = SendResult(Status.PERMANENT_FAILURE, f"InvalidTemplate: {exc}")
                return
            try:
                response = await self._send_messages(
                    {"Addresses": call.addresses, "MessageConfiguration": configuration}
                )
            except PROVIDER_ERRORS as exc:
                failure = failure_result(exc)
                for index in call.indexes:
                    results[index] = dataclasses.replace(failure)
                if limiter is not None and failure.status is Status.THROTTLED:
                    limiter.throttled(failure.retry_after)
                return
        by_address = response.get("Result") or {}
        throttled = False
        for index in call.indexes:
            result = results[index] = _delivery_result(by_address.get(messages[index].address))
            throttled = throttled or result.status is Status.THROTTLED
        if limiter is not None and throttled:
            limiter.throttled()

    def _platform(self, key: str, template: Mapping[str, Any]) -> dict[str, Any]:
        cached = self._platform_cache.get((key, id(template)))
        if cached is not None and cached[0] is template:
            return cached[1]
        built = platform_message(key, template)
        if len(self._platform_cache) >= 256:  # templates are few; never grow without bound
            self._platform_cache.clear()
        self._platform_cache[(key, id(template))] = (template, built)
        return built


async def _permit(limiter: Limiter | None, call: _Call) -> Permit:
    return Permit([]) if limiter is None else await limiter.acquire(len(call.addresses))


_RETRYABLE = {"THROTTLED": Status.THROTTLED, "TEMPORARY_FAILURE": Status.TEMPORARY_FAILURE}
_PERMANENT = frozenset({"PERMANENT_FAILURE", "OPT_OUT", "DUPLICATE"})


def _delivery_result(result: Mapping[str, Any] | None) -> SendResult:
    if result is None:
        return SendResult(
            Status.TEMPORARY_FAILURE, f"NoResult: no MessageResult for this address; {NOT_RETRIED}"
        )
    delivery = result.get("DeliveryStatus")
    message_id = result.get("MessageId")
    if delivery == "SUCCESSFUL":
        return SendResult(Status.SUCCESS, None, message_id)
    reason = (
        f"{delivery}: {result.get('StatusMessage') or ''} (StatusCode {result.get('StatusCode')})"
    )
    status = _RETRYABLE.get(delivery or "")
    if status is not None:
        return SendResult(status, reason, message_id, retryable=True)
    if delivery in _PERMANENT:
        return SendResult(Status.PERMANENT_FAILURE, reason, message_id)
    return SendResult(Status.TEMPORARY_FAILURE, f"{reason}; {NOT_RETRIED}", message_id)


def create(channel: str, options: Mapping[str, Any], ctx: SenderContext) -> PushSender:
    """Build a push sender from its options table (``ConfigError`` on a bad option)."""
    opts = Options(channel, options, ctx, {"application_id"})
    return PushSender(
        ctx,
        application_id=opts.string("application_id"),
        endpoint_url=opts.endpoint_url(),
        region=opts.string("region"),
        max_batch=opts.integer("max_batch", MAX_ADDRESSES, low=1, high=MAX_ADDRESSES)
        or MAX_ADDRESSES,
        max_per_second=opts.max_per_second(),
    )
