"""EMAIL through Amazon SES v2 ``SendEmail`` (Simple content), one recipient per call.

``Message.title`` is the subject, ``html_body`` the HTML part, ``body`` the text part;
``Message.address`` the To address. The campaign's ``EmailMessage`` (``Message.template``)
supplies ``FromAddress``, ``ReplyToAddresses``, ``FeedbackForwardingAddress`` and
``Headers`` unless the channel's options override them.

Options (``[channels.EMAIL]``): ``from_address``, ``reply_to`` (string or list),
``configuration_set``, ``feedback_forwarding_address``, ``endpoint_url``, ``region``,
``max_batch`` (messages per ``send`` call, default 10, sent concurrently),
``max_concurrency`` (SendEmail calls in flight per sender, default 64),
``max_per_second`` (this channel's own ceiling, read by the send stage).

This module also holds what the AWS senders share (``sms`` and ``push`` import it): the
mapping of provider errors to ``SendResult``, the option reader and bounded fan-out.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, NoReturn

import aiohttp
import anyio
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.errors import ConfigError, SendError
from dispatcher.model import Status

__all__ = [
    "PROVIDER_ERRORS",
    "SesSender",
    "create",
    "failure_result",
    "raise_first",
    "retry_after_seconds",
    "send_each",
]

# --------------------------------------------------------------------------------------
# Shared by the AWS senders
# --------------------------------------------------------------------------------------

PROVIDER_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError, ClientError, aiohttp.ClientError, OSError,
)  # fmt: skip
"""What a provider call may raise; ``failure_result`` maps each to a ``SendResult``.
(``TimeoutError`` is an ``OSError``.) Anything else is a bug and propagates."""

THROTTLING_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
        "RequestLimitExceeded", "SlowDown", "RequestThrottled", "RequestThrottledException",
        "ProvisionedThroughputExceededException", "TransactionInProgressException",
    }
)  # fmt: skip
"""Error codes that mean "slow down" whatever the HTTP status."""

AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
        "SignatureDoesNotMatch", "IncompleteSignature", "IncompleteSignatureException",
        "MissingAuthenticationToken", "MissingAuthenticationTokenException", "ExpiredToken",
        "ExpiredTokenException", "RequestExpired",
    }
)  # fmt: skip
"""Credential errors: every send would fail the same way, so the sender is unusable."""

NOT_RETRIED = "not retried: the request was sent and may have been delivered (no duplicates)"


def failure_result(exc: BaseException) -> SendResult:
    """Map a provider exception (one of ``PROVIDER_ERRORS``) to a ``SendResult``.

    Throttling -> THROTTLED, retryable (with the server's ``Retry-After``); a 5xx answer or
    a connection that failed before any answer -> TEMPORARY_FAILURE, retryable; a time-out
    after the request left -> TEMPORARY_FAILURE, not retryable; any other rejection ->
    PERMANENT_FAILURE with ``"Code: message"``. Raises ``SendError`` for missing or
    rejected credentials, which make the sender unusable.
    """
    if isinstance(exc, ClientError):
        return _client_error_result(exc)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        raise SendError(type(exc).__name__, str(exc)) from exc
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return SendResult(
            Status.TEMPORARY_FAILURE, f"ReadTimeout: no answer in time; {NOT_RETRIED}"
        )
    if isinstance(exc, ConnectionClosedError):
        cause = exc.kwargs.get("error")
        if isinstance(cause, aiohttp.ClientPayloadError):
            # The answer had started: the provider processed the request.
            return SendResult(Status.TEMPORARY_FAILURE, f"ConnectionClosed: {exc}; {NOT_RETRIED}")
        return SendResult(Status.TEMPORARY_FAILURE, f"ConnectionClosed: {exc}", retryable=True)
    if isinstance(exc, EndpointConnectionError):  # refused, reset, DNS, connect time-out
        return SendResult(Status.TEMPORARY_FAILURE, f"{type(exc).__name__}: {exc}", retryable=True)
    if isinstance(exc, ParamValidationError):  # never left the process
        return SendResult(Status.PERMANENT_FAILURE, f"ParamValidationError: {exc}")
    if isinstance(exc, ResponseStreamingError):
        return SendResult(Status.TEMPORARY_FAILURE, f"ResponseStreamingError: {exc}; {NOT_RETRIED}")
    # Other transport errors: whether the request reached the provider is unknown.
    return SendResult(Status.TEMPORARY_FAILURE, f"{type(exc).__name__}: {exc}; {NOT_RETRIED}")


def _client_error_result(exc: ClientError) -> SendResult:
    response: Mapping[str, Any] = exc.response
    error = response.get("Error") or {}
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    meta = response.get("ResponseMetadata") or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    headers = meta.get("HTTPHeaders") or {}
    detail = response.get("Reason")  # modeled field, e.g. DESTINATION_PHONE_NUMBER_OPTED_OUT
    reason = f"{code}: {detail}: {message}" if detail else f"{code}: {message}"
    if code in AUTH_CODES:
        raise SendError(code, message) from exc
    if (
        code in THROTTLING_CODES
        or status == 429
        or (code == "LimitExceededException" and "rate" in message.lower())
    ):
        return SendResult(
            Status.THROTTLED, reason, retryable=True, retry_after=retry_after_seconds(headers)
        )
    if status >= 500:
        return SendResult(
            Status.TEMPORARY_FAILURE, f"{reason} (HTTP {status})", retryable=True,
            retry_after=retry_after_seconds(headers),
        )  # fmt: skip
    return SendResult(Status.PERMANENT_FAILURE, reason)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


async def send_each(
    messages: Sequence[Message],
    send_one: Callable[[Message], Awaitable[SendResult]],
    in_flight: anyio.Semaphore,
) -> list[SendResult]:
    """Send a batch one call per message, concurrently, at most ``in_flight`` calls at once.

    A slot is taken *before* a task starts, so a batch never parks tasks on a semaphore.
    """
    if len(messages) == 1:
        async with in_flight:
            return [await send_one(messages[0])]
    results: list[SendResult | None] = [None] * len(messages)

    async def run(index: int, message: Message) -> None:
        try:
            results[index] = await send_one(message)
        finally:
            in_flight.release()

    try:
        async with anyio.create_task_group() as tg:
            for index, message in enumerate(messages):
                await in_flight.acquire()
                tg.start_soon(run, index, message)
    except* SendError as group:
        raise_first(group)
    return results  # type: ignore[return-value]


def raise_first(group: BaseExceptionGroup[SendError]) -> NoReturn:
    """Re-raise a task group's ``SendError`` as itself: the sender is unusable, once."""
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    raise first


class Options:
    """Reads one channel's options table; every problem is a ``ConfigError`` with its key."""

    COMMON = frozenset({"endpoint_url", "region", "max_per_second", "max_batch"})

    def __init__(
        self, channel: str, options: Mapping[str, Any], ctx: SenderContext,
        allowed: Collection[str],
    ) -> None:  # fmt: skip
        self.channel = channel
        self.options = options
        self.file = ctx.config_file
        known = self.COMMON | set(allowed)
        for key in options:
            if key not in known:
                raise self.error(key, f"unknown option; expected one of {', '.join(sorted(known))}")

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=f"channels.{self.channel}.{key}")

    def string(self, key: str) -> str | None:
        value = self.options.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def strings(self, key: str) -> list[str] | None:
        value = self.options.get(key)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(v, str) and v.strip() for v in items)
        ):
            raise self.error(key, f"must be a string or a non-empty list of strings, got {value!r}")
        return list(items)

    def choice(self, key: str, choices: Collection[str]) -> str | None:
        value = self.string(key)
        if value is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(sorted(choices))}, got {value!r}")
        return value

    def integer(self, key: str, default: int | None, *, low: int, high: int) -> int | None:
        value = self.options.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"must be an integer from {low} to {high}, got {value!r}")
        return value

    def number(self, key: str, *, low: float) -> float | None:
        value = self.options.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= low)
        ):
            raise self.error(key, f"must be a number >= {low:g}, got {value!r}")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.options.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def endpoint_url(self) -> str | None:
        value = self.string("endpoint_url")
        if value is not None and not value.startswith(("http://", "https://")):
            raise self.error("endpoint_url", f"must be an http:// or https:// URL, got {value!r}")
        return value

    def max_per_second(self) -> float | None:
        return self.number("max_per_second", low=1)


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
    ) -> None:
        self.max_batch = max_batch
        self.max_per_second = max_per_second
        self._clients = ctx.clients
        self._endpoint_url = endpoint_url
        self._region = region
        self._client: Any = None
        self._from = from_address
        self._reply_to = reply_to
        self._configuration_set = configuration_set
        self._feedback = feedback_forwarding_address
        self._in_flight = anyio.Semaphore(max_concurrency)
        self._template: Mapping[str, Any] | None = None
        self._static: _Static | SendResult = ({}, None)

    def __repr__(self) -> str:
        return f"SesSender(from={self._from!r}, max_batch={self.max_batch})"

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        if self._client is None:
            self._client = await self._clients.client(
                "sesv2", endpoint_url=self._endpoint_url, region=self._region
            )
        return await send_each(messages, self._send_one, self._in_flight)

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
        if headers:
            simple["Headers"] = headers
        try:
            response = await self._client.send_email(
                **fields,
                Destination={"ToAddresses": [message.address]},
                Content={"Simple": simple},
            )
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
         "max_concurrency"},
    )  # fmt: skip
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
    )
