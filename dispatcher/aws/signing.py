"""SigV4 signing for one fixed Lambda Invoke URL, built on botocore's signer.

botocore's ``SigV4Auth.add_auth`` re-derives everything per request: it re-parses the
URL, rebuilds an ``email.message``-backed header map, re-encodes the path and query and
re-derives the signing key with four HMACs. For a transport that sends every request to
the *same* URL with the *same* header set, all of that is constant. ``InvokeSigner``
asks botocore's ``SigV4Auth`` once, at construction, for the canonical URI, the
canonical query string and the signed-header list, keeps the derived signing key per
(secret, day), and per request only hashes the body and formats the date. The string to
sign and the final HMAC still come from ``SigV4Auth`` (``string_to_sign`` and
``signature``), so the algorithm is botocore's; tests check the result against a plain
``SigV4Auth.add_auth`` byte for byte.

``BotocoreSigner`` is the unoptimised reference: ``SigV4Auth.add_auth`` on a fresh
``AWSRequest`` per call. It is kept selectable (``signer="botocore"``) for measurement
and as the oracle in tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

__all__ = ["BotocoreSigner", "InvokeSigner", "RequestSigner", "host_header"]

_SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"


def host_header(url: str) -> str:
    """The ``Host`` value SigV4 signs for ``url`` (botocore's rule: default ports dropped)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        host = f"{host}:{parts.port}"
    return host


class RequestSigner(Protocol):
    """Returns the headers to send for one request body: static, date, token, auth."""

    def sign(self, credentials: ReadOnlyCredentials, body: bytes) -> dict[str, str]: ...


class _CachedKeySigV4Auth(SigV4Auth):  # type: ignore[misc]
    """botocore's SigV4Auth with the derived signing key kept for the day.

    ``SigV4Auth.signature`` derives k_date -> k_region -> k_service -> k_signing (four
    HMACs) on every call; the key only changes with the secret or the UTC date.
    """

    def __init__(self, credentials: Any, service_name: str, region_name: str) -> None:
        super().__init__(credentials, service_name, region_name)
        self._key_for: tuple[str, str] | None = None
        self._key = b""

    def signature(self, string_to_sign: str, request: Any) -> str:
        day = request.context["timestamp"][0:8]
        secret = self.credentials.secret_key
        if self._key_for != (secret, day):
            k_date = self._sign(f"AWS4{secret}".encode(), day)
            k_region = self._sign(k_date, self._region_name)
            k_service = self._sign(k_region, self._service_name)
            self._key = self._sign(k_service, "aws4_request")
            self._key_for = (secret, day)
        return str(self._sign(self._key, string_to_sign, hex=True))


class _Context:
    """The only part of a request that ``string_to_sign``/``signature`` read."""

    __slots__ = ("context",)

    def __init__(self, timestamp: str) -> None:
        self.context = {"timestamp": timestamp}


@dataclass(slots=True)
class _Clock:
    """SigV4 timestamps, formatted once per second rather than once per request."""

    second: int = -1
    stamp: str = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.stamp = time.strftime(_SIGV4_TIMESTAMP, time.gmtime(second))
            self.second = second
        return self.stamp


@dataclass(frozen=True, slots=True)
class _Template:
    """The constant parts of a canonical request; ``None`` values are filled per call."""

    prefix: str
    lines: tuple[tuple[str, str | None], ...]
    signed_headers: str


class InvokeSigner:
    """Signs POSTs to one URL with one fixed header set (service ``lambda`` by default).

    ``static_headers`` are sent and signed on every request (e.g.
    ``X-Amz-Invocation-Type``); ``unsigned_headers`` are sent but not signed (e.g.
    ``User-Agent``, which botocore never signs either). ``Host``, ``X-Amz-Date`` and,
    for temporary credentials, ``X-Amz-Security-Token`` are added.
    """

    def __init__(
        self,
        url: str,
        *,
        region: str,
        service: str = "lambda",
        method: str = "POST",
        static_headers: dict[str, str] | None = None,
        unsigned_headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.region = region
        self.service = service
        self._auth = _CachedKeySigV4Auth(None, service, region)
        self._clock = _Clock()
        host = host_header(url)
        signed = {"host": host, **{k.lower(): v for k, v in (static_headers or {}).items()}}
        if "x-amz-date" in signed or "x-amz-security-token" in signed:
            raise ValueError("X-Amz-Date and X-Amz-Security-Token are set by the signer")
        # Canonical URI and query string exactly as botocore derives them from the URL.
        probe = AWSRequest(method=method, url=url, headers={})
        canonical_uri = self._auth._normalize_url_path(urlsplit(url).path)
        canonical_query = self._auth.canonical_query_string(probe)
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._templates = {
            with_token: self._template(method, canonical_uri, canonical_query, signed, with_token)
            for with_token in (False, True)
        }
        self._base_headers = {
            "Host": host,
            **(static_headers or {}),
            **(unsigned_headers or {}),
        }

    def _template(
        self,
        method: str,
        canonical_uri: str,
        canonical_query: str,
        signed: dict[str, str],
        with_token: bool,
    ) -> _Template:
        names: dict[str, str | None] = {**signed, "x-amz-date": None}
        if with_token:
            names["x-amz-security-token"] = None
        lines = sorted(
            (name, None if value is None else self._auth._header_value(value))
            for name, value in names.items()
        )
        return _Template(
            prefix=f"{method}\n{canonical_uri}\n{canonical_query}\n",
            lines=tuple(lines),
            signed_headers=";".join(name for name, _ in lines),
        )

    def canonical_request(self, amz_date: str, token: str | None, payload_hash: str) -> str:
        """The canonical request for one call; equal to ``SigV4Auth.canonical_request``."""
        template = self._templates[token is not None]
        parts = [template.prefix]
        for name, value in template.lines:
            if value is None:
                value = amz_date if name == "x-amz-date" else " ".join(str(token).split())
            parts.append(f"{name}:{value}\n")
        parts.append(f"\n{template.signed_headers}\n{payload_hash}")
        return "".join(parts)

    def sign(self, credentials: ReadOnlyCredentials, body: bytes) -> dict[str, str]:
        amz_date = self._clock.now()
        token = credentials.token or None
        canonical = self.canonical_request(amz_date, token, sha256(body).hexdigest())
        auth = self._auth
        auth.credentials = credentials
        ctx = _Context(amz_date)
        signature = auth.signature(auth.string_to_sign(ctx, canonical), ctx)
        headers = dict(self._base_headers)
        headers["X-Amz-Date"] = amz_date
        if token is not None:
            headers["X-Amz-Security-Token"] = token
        signed_headers = self._templates[token is not None].signed_headers
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{amz_date[:8]}"
            f"{self._scope_tail}, SignedHeaders={signed_headers}, Signature={signature}"
        )
        return headers


class BotocoreSigner:
    """The reference: ``SigV4Auth.add_auth`` on a fresh ``AWSRequest`` for every call."""

    def __init__(
        self,
        url: str,
        *,
        region: str,
        service: str = "lambda",
        method: str = "POST",
        static_headers: dict[str, str] | None = None,
        unsigned_headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.region = region
        self.service = service
        self.method = method
        self._static = {"Host": host_header(url), **(static_headers or {})}
        self._unsigned = dict(unsigned_headers or {})

    def sign(self, credentials: ReadOnlyCredentials, body: bytes) -> dict[str, str]:
        request = AWSRequest(method=self.method, url=self.url, headers=self._static, data=body)
        SigV4Auth(credentials, self.service, self.region).add_auth(request)
        headers = dict(request.headers.items())
        headers.update(self._unsigned)
        return headers
