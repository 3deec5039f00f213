"""EMAIL through Amazon SES v2 ``SendEmail`` (Simple content), one recipient per call.

``Message.title`` is the subject, ``html_body`` the HTML part, ``body`` the text part;
``Message.address`` the To address. The campaign's ``EmailMessage`` (``Message.template``)
supplies ``FromAddress``, ``ReplyToAddresses``, ``FeedbackForwardingAddress`` and
``Headers`` unless the channel's options override them.

Options (``[channels.EMAIL]``): ``from_address``, ``reply_to`` (string or list),
``configuration_set``, ``feedback_forwarding_address``, ``endpoint_url``, ``region``,
``max_batch`` (messages per ``send`` call, default 10, sent concurrently),
``max_concurrency`` (SendEmail calls in flight per sender, default 64),
``max_per_second`` (this channel's own ceiling), ``account_quota`` (default true: read
the account's ``MaxSendRate`` with SES v2 ``GetAccount`` and keep under it).

The account's quota: ``open()`` (at the start of a run; else before the first paced
send) reads ``SendQuota.MaxSendRate`` -- recipients per second for the whole account in
this region -- and every ``SendEmail`` then also takes its permit from a ceiling of that
rate, under this channel's and the campaign's. Reading it needs ``ses:GetAccount``;
without it (or any failure) the run goes on without that ceiling, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from dispatcher.aws.errors import classify
from dispatcher.aws.retry import call
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

__all__ = ["SesSender", "create"]

log = logging.getLogger("dispatcher.channels.ses")

QUOTA_TIMEOUT = 10.0
"""Seconds to wait for ``GetAccount`` before going on without the account's quota."""

# --------------------------------------------------------------------------------------
# SES
# --------------------------------------------------------------------------------------

_UTF8 = "UTF-8"
_Static = tuple[dict[str, Any], list[dict[str, str]] | None]
"""Request fields shared by a template's messages, and the Simple content's headers."""


class SesSender:
    """``Sender`` for the EMAIL channel (SES v2 ``SendEmail``, Simple content)."""

    def __init__(
        self,
        ctx: SenderContext,
        *,
        from_address: str | None = None,
        reply_to: list[str] | None = None,
        configuration_set: str | None = None,
        feedback_forwarding_address: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_batch: int = 10,
        max_concurrency: int = 64,
        max_per_second: float | None = None,
        account_quota: bool = True,
        channel: str = "EMAIL",
    ) -> None:
        self.max_batch = max_batch
        self.max_per_second = max_per_second
        self.channel = channel
        self.account_rate: float | None = None
        """The account's ``MaxSendRate``, once ``open()`` read it."""
        self._account_quota = account_quota
        self._opened = False
        self._open_lock = anyio.Lock()
        self._pacing: Pacing | None = None
        self._limiter: Limiter | None = None
        self._clients = ctx.clients
        self._endpoint_url = endpoint_url
        # The project's region unless the channel names its own (a fleet worker's clients
        # default to the worker's region, not the campaign's).
        region = region or ctx.region
        self._region = region
        self._quota_region = region
        self._client: Any = None
        self._from = from_address
        self._reply_to = reply_to
        self._configuration_set = configuration_set
        self._feedback = feedback_forwarding_address
        self._in_flight = anyio.Semaphore(max_concurrency)
        self._template: Mapping[str, Any] | None = None
        self._static: _Static | SendResult = ({}, None)
        self._send_email = LeanCall(
            ctx.clients, "sesv2", "SendEmail", path="/v2/email/outbound-emails",
            headers={"Content-Type": "application/json"}, endpoint_url=endpoint_url,
            region=region, concurrency=max_concurrency,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"SesSender(from={self._from!r}, max_batch={self.max_batch})"

    async def open(self) -> str | None:
        """Make the client and read the account's ``MaxSendRate`` (``GetAccount``).

        Returns the note the run prints on stderr: the quota now a ceiling, or why it is
        not. Called once at the start of a run; a paced ``send`` calls it if no one did.
        """
        async with self._open_lock:
            if self._opened:
                return None
            if self._client is None:
                self._client = await self._clients.client(
                    "sesv2", endpoint_url=self._endpoint_url, region=self._region
                )
            self._opened = True
            if not self._account_quota:
                return None
            note = await self._read_quota()
        self._limiter = None  # rebuilt with the quota by the next paced send
        return note

    async def _read_quota(self) -> str:
        where = f"{self.channel}: SES account MaxSendRate ({self._quota_region})"
        try:
            with anyio.fail_after(QUOTA_TIMEOUT):
                answer = await call(self._client.get_account, attempts=2)
            rate = float(answer["SendQuota"]["MaxSendRate"])
        except PROVIDER_ERRORS as exc:  # TimeoutError included
            fault = classify(exc)
            # One line on stderr, even when an endpoint answers a page of HTML.
            reason = " ".join(str(fault or type(exc).__name__).split())
            return f"{where} not read, not a ceiling: {reason[:160]}"
        except (KeyError, TypeError, ValueError) as exc:
            return f"{where} not read, not a ceiling: no SendQuota.MaxSendRate ({exc!r})"
        if not rate > 0:
            return f"{where} is {rate:g}: sending is paused for this account, not a ceiling"
        # SES counts recipients per second; a ceiling below 1/s cannot be a window of 1 s.
        self.account_rate = max(1.0, rate)
        return f"{where} {rate:g}/s is a ceiling under the campaign's (GetAccount)"

    def pace(self, pacing: Pacing) -> None:
        """Take each ``SendEmail``'s permit from ``pacing`` (and the account's quota)."""
        self._pacing = pacing
        self._limiter = None

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        if self._pacing is not None and not self._opened:
            note = await self.open()
            if note:
                log.warning("%s", note)
        if self._client is None:
            # Before the first permit: a slow first client must not eat into the window.
            self._client = await self._clients.client(
                "sesv2", endpoint_url=self._endpoint_url, region=self._region
            )
            await self._send_email.open()
        paced = None if self._pacing is None else self._paced_limiter
        return await send_each(messages, self._send_one, self._in_flight, paced)

    def _paced_limiter(self, message: Message) -> Limiter:
        limiter = self._limiter
        if limiter is None:
            assert self._pacing is not None
            limiter = self._pacing.limiter
            if self.account_rate is not None:
                name = f"ses/{self._quota_region}/MaxSendRate"
                limiter = self._pacing.ceiling(name, self.account_rate)
            self._limiter = limiter
        return limiter

    async def aclose(self) -> None:
        """Nothing to release: the client belongs to the process-wide ``AwsClients``."""

    async def _send_one(self, message: Message) -> SendResult:
        static = self._static_for(message.template)
        if isinstance(static, SendResult):
            return static
        fields, headers = static
        body: dict[str, Any] = {}
        if message.body:
            body["Text"] = {"Data": message.body, "Charset": _UTF8}
        if message.html_body:
            body["Html"] = {"Data": message.html_body, "Charset": _UTF8}
        if not body:
            return SendResult(Status.PERMANENT_FAILURE, "InvalidMessage: no text or HTML body")
        simple: dict[str, Any] = {
            "Subject": {"Data": message.title or "", "Charset": _UTF8},
            "Body": body,
        }
        headers = message.headers or headers
        if headers:
            simple["Headers"] = headers
        try:
            response = await self._send_email({
                **fields,
                "Destination": {"ToAddresses": [message.address]},
                "Content": {"Simple": simple},
            })  # fmt: skip
        except PROVIDER_ERRORS as exc:
            return failure_result(exc)
        return SendResult(Status.SUCCESS, None, response.get("MessageId"))

    def _static_for(self, template: Mapping[str, Any]) -> _Static | SendResult:
        """The request fields shared by every message of one campaign template (cached)."""
        if template is not self._template:
            self._static = self._build_static(template)
            self._template = template
        return self._static

    def _build_static(self, template: Mapping[str, Any]) -> _Static | SendResult:
        from_address = self._from or template.get("FromAddress")
        if not from_address:
            return SendResult(
                Status.PERMANENT_FAILURE,
                "NoFromAddress: set channels.EMAIL.from_address or the campaign's "
                "EmailMessage.FromAddress",
            )
        fields: dict[str, Any] = {"FromEmailAddress": from_address}
        reply_to = self._reply_to or _as_list(template.get("ReplyToAddresses"))
        if reply_to:
            fields["ReplyToAddresses"] = reply_to
        feedback = self._feedback or template.get("FeedbackForwardingAddress")
        if feedback:
            fields["FeedbackForwardingEmailAddress"] = feedback
        if self._configuration_set:
            fields["ConfigurationSetName"] = self._configuration_set
        simple = template.get("SimpleEmail")
        raw_headers = template.get("Headers") or (
            simple.get("Headers") if isinstance(simple, Mapping) else None
        )
        headers = [
            {"Name": str(h["Name"]), "Value": str(h["Value"])}
            for h in raw_headers or ()
            if isinstance(h, Mapping) and "Name" in h and "Value" in h
        ]
        return fields, headers or None


def _as_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        return [str(v) for v in value]
    return None


def create(channel: str, options: Mapping[str, Any], ctx: SenderContext) -> SesSender:
    """Build the EMAIL sender from its options table (``ConfigError`` on a bad option)."""
    opts = Options(
        channel, options, ctx,
        {"from_address", "reply_to", "configuration_set", "feedback_forwarding_address",
         "max_concurrency", "account_quota"},
    )  # fmt: skip
    account_quota = opts.flag("account_quota")
    return SesSender(
        ctx,
        from_address=opts.string("from_address"),
        reply_to=opts.strings("reply_to"),
        configuration_set=opts.string("configuration_set"),
        feedback_forwarding_address=opts.string("feedback_forwarding_address"),
        endpoint_url=opts.endpoint_url(),
        region=opts.string("region"),
        max_batch=opts.integer("max_batch", 10, low=1, high=100) or 10,
        max_concurrency=opts.integer("max_concurrency", 64, low=1, high=10_000) or 64,
        max_per_second=opts.max_per_second(),
        account_quota=True if account_quota is None else account_quota,
        channel=channel,
    )
