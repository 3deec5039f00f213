"""What the AWS senders share: provider errors mapped to ``SendResult``, the option
reader, and bounded, paced fan-out of one batch."""

from __future__ import annotations

import math
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import anyio
import orjson
import yarl
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from dispatcher.aws.errors import classify
from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.errors import ConfigError, SendError
from dispatcher.model import Status
from dispatcher.ratelimit import Limiter, Permit

if TYPE_CHECKING:
    from dispatcher.aws import AwsClients

PROVIDER_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError, ClientError, aiohttp.ClientError, OSError,
)  # fmt: skip
"""What a provider call may raise; ``failure_result`` maps each to a ``SendResult``.
(``TimeoutError`` is an ``OSError``.) Anything else is a bug and propagates."""

NOT_RETRIED = "not retried: the request was sent and may have been delivered (no duplicates)"


def failure_result(exc: BaseException) -> SendResult:
    """Map a provider exception (one of ``PROVIDER_ERRORS``) to a ``SendResult``.

    ``dispatcher.aws.classify`` reads it. Throttling -> THROTTLED, retryable (with the
    server's ``Retry-After``); a 5xx answer or a connection that failed before any answer
    -> TEMPORARY_FAILURE, retryable; a time-out after the request left -> TEMPORARY_FAILURE,
    not retryable (a send is not repeated when it may have been delivered); any other
    rejection -> PERMANENT_FAILURE with ``"Code: message"``. Raises ``SendError`` for
    missing or rejected credentials, which make the sender unusable.
    """
    fault = classify(exc)
    if fault is None:
        raise exc
    if fault.kind == "credentials":
        raise SendError(fault.code, fault.message) from exc
    detail = (fault.response or {}).get("Reason")  # e.g. DESTINATION_PHONE_NUMBER_OPTED_OUT
    reason = f"{fault.code}: {detail}: {fault.message}" if detail else str(fault)
    if fault.kind == "throttled":
        return SendResult(Status.THROTTLED, reason, retryable=True, retry_after=fault.retry_after)
    if fault.kind == "transient":
        if fault.status:
            reason = f"{reason} (HTTP {fault.status})"
        return SendResult(Status.TEMPORARY_FAILURE, reason, retryable=True,
                          retry_after=fault.retry_after)  # fmt: skip
    if fault.kind == "unknown_outcome":
        return SendResult(Status.TEMPORARY_FAILURE, f"{reason}; {NOT_RETRIED}")
    return SendResult(Status.PERMANENT_FAILURE, reason)


async def send_each(
    messages: Sequence[Message],
    send_one: Callable[[Message], Awaitable[SendResult]],
    in_flight: anyio.Semaphore,
    limiter_for: Callable[[Message], Limiter] | None = None,
) -> list[SendResult]:
    """Send a batch one call per message, concurrently, at most ``in_flight`` calls at once.

    A slot is taken *before* a task starts, so a batch never parks tasks on a semaphore;
    with ``limiter_for``, so is the call's permit from its message's limiter (after the
    slot: a permit is held from right before the call until its answer), and a throttled
    answer is reported to that limiter.
    """
    results: list[SendResult | None] = [None] * len(messages)
    owed: dict[int, Permit] = {}  # slot and permit taken, task not finished

    async def run(index: int, message: Message, permit: Permit, limiter: Limiter | None) -> None:
        try:
            with permit:
                result = await send_one(message)
            if limiter is not None and result.status is Status.THROTTLED:
                limiter.throttled(result.retry_after)
            results[index] = result
        finally:
            del owed[index]
            in_flight.release()

    async def start(index: int, message: Message) -> tuple[Permit, Limiter | None]:
        await in_flight.acquire()
        try:
            limiter = None if limiter_for is None else limiter_for(message)
            permit = _NO_PERMIT if limiter is None else await limiter.acquire(1)
        except BaseException:
            in_flight.release()
            raise
        owed[index] = permit
        return permit, limiter

    try:
        if len(messages) == 1:
            await run(0, messages[0], *await start(0, messages[0]))
            return results  # type: ignore[return-value]
        try:
            async with anyio.create_task_group() as tg:
                for index, message in enumerate(messages):
                    tg.start_soon(run, index, message, *await start(index, message))
        except* SendError as group:
            raise_first(group)
    finally:
        # A task cancelled before its first step never ran its own cleanup: an open
        # permit would hold its share of every ceiling for the rest of the run.
        for permit in owed.values():
            permit.done()
            in_flight.release()
    return results  # type: ignore[return-value]


_NO_PERMIT = Permit([])


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

    def rates(self, key: str) -> dict[str, float]:
        """A table of name -> messages per second (each a number >= 1), e.g. per identity."""
        value = self.options.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not value:
            example = '{ "+12065550100" = 1 }'
            raise self.error(key, f"must be a table such as {example}, got {value!r}")
        out: dict[str, float] = {}
        for name, rate in value.items():
            where = f'{key}."{name}"'
            if not isinstance(name, str) or not name.strip():
                raise self.error(where, "must be a non-empty name")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not (
                    math.isfinite(rate) and rate >= 1):  # fmt: skip
                raise self.error(where, f"must be a number of messages per second >= 1, "
                                        f"got {rate!r}")  # fmt: skip
            out[name] = float(rate)
        return out


# --------------------------------------------------------------------------------------
# The lean request path: one JSON operation as a signed aiohttp POST
# --------------------------------------------------------------------------------------


class LeanCall:
    """One AWS JSON operation (SES v2 ``SendEmail``, SMS v2 ``SendTextMessage``) sent as
    a SigV4-signed aiohttp POST, without botocore's per-call machinery.

    A stock aiobotocore call costs ~3-4x a plain POST in client CPU: parameter
    validation, serialization through the service model, an event-hook chain, a fresh
    ``AWSRequest`` and a full SigV4 derivation, response parsing through the model. Here
    the endpoint, the signing name and region come from the stock client once
    (``AWS_ENDPOINT_URL_*``, config files and ``endpoint_url`` honoured as before); the
    request is the operation's JSON body (these operations have no blobs or timestamps:
    the parameters *are* the wire body); signing is ``dispatcher.aws.signing``'s
    precomputed ``InvokeSigner``. Failures are raised as botocore's own exception types,
    mapped as aiobotocore maps them, so ``failure_result`` classifies them unchanged.
    """

    def __init__(
        self, clients: AwsClients, service: str, operation: str, *, path: str = "/",
        headers: Mapping[str, str], endpoint_url: str | None, region: str | None,
        concurrency: int,
    ) -> None:  # fmt: skip
        self._clients = clients
        self._service = service
        self._operation = operation
        self._path = path
        self._headers = dict(headers)
        self._endpoint_url = endpoint_url
        self._region = region
        self._concurrency = concurrency
        self._open: _LeanOpen | None = None
        self._lock = anyio.Lock()

    async def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded answer; a botocore exception (or ``OSError``) on failure."""
        lean = self._open or await self.open()
        body = orjson.dumps(params)
        source = lean.credentials
        if source is None:
            raise NoCredentialsError()
        headers = lean.signer.sign(await source.get(), body)
        try:
            async with lean.session.post(lean.url, data=body, headers=headers,
                                         allow_redirects=False, proxy=lean.proxy) as response:
                raw = await response.read()
                status = response.status
                if status >= 300:
                    return _raise_client_error(status, response.headers, raw, self._operation)
        except aiohttp.ClientError as exc:
            raise _transport_error(exc, lean.url_text) from exc
        except TimeoutError as exc:  # sock_read: the request left, no answer in time
            raise ReadTimeoutError(endpoint_url=lean.url_text, error=exc) from exc
        try:
            answer = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            answer = {}  # accepted (2xx); only the id is missing
        return answer if isinstance(answer, dict) else {}

    async def open(self) -> _LeanOpen:
        """Resolve the endpoint and credentials, make the session (once)."""
        async with self._lock:
            if self._open is None:
                self._open = await self._build()
            return self._open

    async def _build(self) -> _LeanOpen:
        from dispatcher.aws.signing import InvokeSigner
        from dispatcher.hooks.lambda_lean import FrozenCredentials, proxy_for, user_agent

        stock = await self._clients.client(self._service, endpoint_url=self._endpoint_url,
                                           region=self._region)  # fmt: skip
        url = str(stock.meta.endpoint_url).rstrip("/") + self._path
        signer = InvokeSigner(
            url, region=stock.meta.region_name, service=stock.meta.service_model.signing_name,
            static_headers=self._headers, unsigned_headers={"User-Agent": user_agent()},
        )  # fmt: skip
        source = await self._clients.session.get_credentials()
        options = self._clients.config_options
        ssl_context: ssl.SSLContext | bool = True
        if url.startswith("https:"):
            ca_bundle = self._clients.session.get_config_variable("ca_bundle")
            if not ca_bundle:
                from botocore.httpsession import get_cert_path

                ca_bundle = get_cert_path(True)
            ssl_context = ssl.create_default_context(cafile=ca_bundle)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=0,
                                           ssl=ssl_context, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=None, connect=options["connect_timeout"],
                                          sock_read=options["read_timeout"]),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Content-Type",),  # the signed one is sent
            trust_env=False,  # proxies resolved once below, not per request
        )  # fmt: skip
        self._clients.close_with(session.close)
        return _LeanOpen(
            session=session, url=yarl.URL(url, encoded=True), url_text=url,
            proxy=proxy_for(url), signer=signer,
            credentials=None if source is None else FrozenCredentials(source),
        )  # fmt: skip


@dataclass(slots=True)
class _LeanOpen:
    session: aiohttp.ClientSession
    url: yarl.URL
    url_text: str
    proxy: str | None
    signer: Any
    credentials: Any


def _raise_client_error(
    status: int, headers: Mapping[str, str], raw: bytes, operation: str
) -> NoReturn:
    """An error answer as the ``ClientError`` botocore would raise (rest-json and JSON
    1.0: the code from ``X-Amzn-ErrorType`` or ``__type``, modeled fields such as SMS's
    ``Reason`` at the top level of the response)."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(headers.get("X-Amzn-ErrorType") or body.get("__type") or body.get("code")
               or body.get("Code") or status)  # fmt: skip
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = str(body.get("message") or body.get("Message") or "")
    response: dict[str, Any] = {
        k: v for k, v in body.items() if k not in ("__type", "code", "Code", "message", "Message")
    }
    response["Error"] = {"Code": code, "Message": message}
    response["ResponseMetadata"] = {
        "HTTPStatusCode": status, "HTTPHeaders": {k.lower(): v for k, v in headers.items()},
    }  # fmt: skip
    raise ClientError(response, operation)


def _transport_error(exc: aiohttp.ClientError, url: str) -> Exception:
    """aiohttp's error as the botocore exception aiobotocore raises for it."""
    error: Exception  # botocore's exception types are untyped
    if isinstance(exc, aiohttp.ClientSSLError):
        error = SSLError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        error = ProxyConnectionError(proxy_url=url, error=exc)
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        error = ConnectionClosedError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        connecting = str(exc).lower().startswith("connect")
        timeout = ConnectTimeoutError if connecting else ReadTimeoutError
        error = timeout(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ClientConnectionError):
        error = EndpointConnectionError(endpoint_url=url, error=exc)
    else:
        error = HTTPClientError(error=exc)
    return error
