"""The webhook hook transport (``Hook.WebUrl`` / ``[functions.NAME] url``).

Amazon Pinpoint documented ``WebUrl`` only as "the web URL that Amazon Pinpoint calls
to invoke the AWS Lambda function over HTTPS", so the wire format is ours:

* ``POST`` to the configured URL, ``Content-Type: application/json``, body = exactly
  the event JSON a Lambda hook receives; the response body (2xx) is the endpoints map.
* Signed Slack/Stripe-style: ``X-Dispatcher-Timestamp: <unix seconds>`` and
  ``X-Dispatcher-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>``.
  Receivers check it with ``verify_signature`` (stdlib only; copy it freely) and reject
  timestamps more than 5 minutes away from their clock (replay protection).
* ``https://`` only; plain ``http://`` is accepted for loopback hosts (127.0.0.0/8,
  ``::1``, ``localhost``) so hooks can be developed locally. Redirects are not followed.
* 2xx with a JSON body: the result. 2xx with an empty or non-JSON body:
  ``HookResultError`` (never retried). 408, 429 and 5xx: a retryable failed attempt,
  with ``Retry-After`` (seconds or HTTP date) as ``retry_after``. Other 3xx/4xx: not
  retryable. Refused/reset connections and time-outs: retryable.

Attempts are at-least-once, as with Lambda: an attempt that timed out may have been
processed, and the next one carries the same body. Hooks must be idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
import ssl
import time
from collections.abc import Mapping
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import orjson
import yarl

from dispatcher.aws.errors import retry_after as parse_retry_after
from dispatcher.errors import ConfigError, HookAttemptError, HookResultError
from dispatcher.hooks.base import read_capped
from dispatcher.hooks.tracebacks import RemoteTraceback
from dispatcher.net import is_loopback

__all__ = [
    "APPLICATION_HEADER",
    "CAMPAIGN_HEADER",
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "WebhookTransport",
    "compute_signature",
    "sign_request",
    "validate_webhook_url",
    "verify_signature",
]

TIMESTAMP_HEADER = "X-Dispatcher-Timestamp"
SIGNATURE_HEADER = "X-Dispatcher-Signature"
APPLICATION_HEADER = "X-Dispatcher-Application-Id"
CAMPAIGN_HEADER = "X-Dispatcher-Campaign-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300
"""Seconds a receiver accepts between the request's timestamp and its own clock."""

MIN_SECRET_LENGTH = 16

_RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Content-Type",
        "Content-Length",
        "Host",
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
        APPLICATION_HEADER,
        CAMPAIGN_HEADER,
    )
)


# ---------------------------------------------------------------------------------------
# Signatures (sender and receiver side)
# ---------------------------------------------------------------------------------------


def compute_signature(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}." + body`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def sign_request(
    secret: str | bytes, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The two signature headers for ``body`` (timestamp: now, in unix seconds)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: f"{SIGNATURE_VERSION}={compute_signature(secret, ts, body)}",
    }


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    body: bytes,
    header: str | None,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True if ``header`` (``X-Dispatcher-Signature``) signs ``timestamp`` + ``body``.

    ``timestamp`` is the ``X-Dispatcher-Timestamp`` header and must be within
    ``tolerance`` seconds of ``now`` (default: the current time). ``header`` may hold
    several comma-separated ``v1=<hex>`` entries (a sender rotating its secret); one
    valid entry is enough. Unknown versions are ignored. Compare on the raw request
    body bytes, before any JSON parsing.
    """
    if not timestamp or not header or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, body)
    valid = False
    for entry in header.split(","):
        version, _, value = entry.strip().partition("=")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value.strip(), expected):
            valid = True
    return valid


# ---------------------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------------------


def _redacted(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def validate_webhook_url(url: str) -> yarl.URL:
    """Check the https-only rule (http for loopback hosts) and return the parsed URL."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"webhook URL {url!r} is empty")
    shown = _redacted(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ConfigError(f"webhook URL {shown!r} is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise ConfigError(
            f"webhook URL {shown!r} must be an absolute https:// URL (e.g. "
            "'https://hooks.example.com/pinpoint')"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"webhook URL {shown!r} must not carry credentials (user:password@); "
            "the request is signed with the webhook secret instead"
        )
    if scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"webhook URL {shown!r} must use https://; plain http:// is accepted only for "
            "loopback hosts (127.0.0.0/8, ::1, localhost)"
        )
    return yarl.URL(url)


def _resolve_secret(name: str, secret: str | None, secret_env: str | None) -> bytes:
    if secret is not None and secret_env is not None:
        raise ConfigError(f"webhook {name!r}: set either 'secret' or 'secret_env', not both")
    if secret is None and secret_env is None:
        raise ConfigError(
            f"webhook {name!r} needs a signing secret: set 'secret_env' to the name of an "
            "environment variable that holds it (or 'secret')"
        )
    if secret_env is not None:
        secret = os.environ.get(secret_env)
        if not secret:
            raise ConfigError(
                f"webhook {name!r}: environment variable {secret_env} (its 'secret_env') "
                "is not set or empty"
            )
    if not secret:
        raise ConfigError(f"webhook {name!r}: the signing secret is empty")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"webhook {name!r}: the signing secret must be at least {MIN_SECRET_LENGTH} "
            f"characters long (got {len(secret)}); use e.g. `openssl rand -hex 32`"
        )
    return secret.encode()


def _user_agent() -> str:
    try:
        version = metadata.version("segment-dispatcher")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"segment-dispatcher/{version} (webhook) Python/{platform.python_version()}"


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# The transport
# ---------------------------------------------------------------------------------------


class WebhookTransport:
    """POSTs each event to a URL, signed with HMAC-SHA256; one attempt per call.

    ``secret`` or ``secret_env`` (the name of an environment variable holding it,
    so no secret need sit in the config file) is required. ``timeout`` bounds one
    attempt (connect + request + response), ``connect_timeout`` the connection set-up.
    ``application_id`` / ``campaign_id``, when given, are sent as
    ``X-Dispatcher-Application-Id`` / ``X-Dispatcher-Campaign-Id`` so receivers can
    route or reject a request before parsing its body. ``headers`` are static extra
    request headers (e.g. an API gateway key); they may not replace the content type,
    the signature or the context headers. ``concurrency`` sizes the connection pool.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        secret_env: str | None = None,
        name: str | None = None,
        concurrency: int = 64,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        application_id: str | None = None,
        campaign_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        self.url = validate_webhook_url(url)
        self.name = name or f"{self.url.host}{self.url.path}"
        if concurrency < 1:
            raise ConfigError(f"'concurrency' must be >= 1, got {concurrency}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("'timeout' and 'connect_timeout' must be > 0")
        self._secret = _resolve_secret(self.name, secret, secret_env)
        extra = dict(headers or {})
        clash = sorted(k for k in extra if k.lower() in _RESERVED_HEADERS)
        if clash:
            raise ConfigError(f"webhook {self.name!r}: headers {clash} are set by the dispatcher")
        self._static_headers = {
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
            **extra,
        }
        if application_id:
            self._static_headers[APPLICATION_HEADER] = application_id
        if campaign_id:
            self._static_headers[CAMPAIGN_HEADER] = campaign_id
        self.concurrency = concurrency
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._ca_bundle = ca_bundle
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"WebhookTransport({self.name!r}, url={str(self.url)!r})"

    async def __aenter__(self) -> WebhookTransport:
        self._client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _client(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            ssl_context: ssl.SSLContext | bool = True
            if self._ca_bundle:
                ssl_context = ssl.create_default_context(cafile=self._ca_bundle)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, ssl=ssl_context),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                # HTTPS_PROXY / NO_PROXY as the AWS SDKs honour them, except for a
                # loopback hook: signed events with endpoint data never leave the host.
                trust_env=not is_loopback(self.url.host or ""),
            )
            self._session = session
        return session

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            with anyio.CancelScope(shield=True):
                await session.close()

    async def invoke(self, event: bytes) -> Any:
        """POST ``event`` once and return the decoded endpoints map."""
        session = self._session or self._client()
        headers = dict(self._static_headers)
        headers.update(sign_request(self._secret, event))
        try:
            async with session.post(
                self.url, data=event, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    body = await read_capped(response, self.name)
                else:
                    body = await response.content.read(1024)
                    location = response.headers.get("Location")
                    retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise HookAttemptError(
                f"webhook did not answer within {self.timeout:g} s", function=self.name
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise HookAttemptError(
                _clip(f"connection error: {type(exc).__name__}: {exc}"), function=self.name
            ) from exc
        if 200 <= status < 300:
            return self._decode(status, body)
        snippet = body[:200].decode("utf-8", "replace").strip()
        if 300 <= status < 400:
            raise HookAttemptError(
                f"webhook answered HTTP {status} redirect to {location!r}; redirects are not "
                "followed: configure the final URL",
                retryable=False,
                function=self.name,
            )
        retryable = status in (408, 429) or status >= 500
        reason = f"webhook answered HTTP {status}" + (f": {snippet}" if snippet else "")
        # The whole body read (1 KiB) is logged at debug level, once per distinct error.
        body_text = RemoteTraceback(body.decode("utf-8", "replace")) if snippet else None
        raise HookAttemptError(
            _clip(reason),
            retryable=retryable,
            retry_after=parse_retry_after(retry_after) if retryable else None,
            function=self.name,
            throttled=status == 429,
        ) from body_text

    def _decode(self, status: int, body: bytes) -> Any:
        if not body.strip():
            raise HookResultError(
                f"webhook answered HTTP {status} with an empty body; expected the endpoints "
                "map as JSON ({} to filter out every endpoint)",
                function=self.name,
            )
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HookResultError(
                _clip(f"webhook response is not JSON ({exc}); first bytes: {body[:80]!r}"),
                function=self.name,
            ) from exc
