"""What a failed AWS call means, decided in one place.

``classify(exc)`` reads any exception an aiobotocore call (or the HTTP stack under it)
raises and says what kind of failure it is:

=================  ==================================================  ============
kind               what happened                                        retry?
=================  ==================================================  ============
throttled          the service said slow down (429, Throttling...)      yes
transient          a 5xx, or the connection failed before the request   yes
                   left
unknown_outcome    the request left and no answer came (time-out, cut   idempotent
                   response): the service may have acted on it          calls only
condition          a conditional write's condition failed               no
credentials        no, expired or rejected credentials                  no
rejected           any other 4xx: the request itself is wrong           no
=================  ==================================================  ============

``retry_after`` reads a ``Retry-After`` header (seconds, or an HTTP date).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

__all__ = [
    "AUTH_CODES",
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "AwsFault",
    "FaultKind",
    "classify",
    "retry_after",
]

FaultKind = Literal[
    "throttled", "transient", "unknown_outcome", "condition", "credentials", "rejected"
]

THROTTLING_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
        "RequestLimitExceeded", "SlowDown", "RequestThrottled", "RequestThrottledException",
        "ProvisionedThroughputExceededException", "KMSThrottlingException",
        "TransactionInProgressException", "BandwidthLimitExceeded",
    }
)  # fmt: skip
"""Error codes that mean "slow down", whatever the HTTP status."""

TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
        "InternalFailureException", "InternalServerError", "InternalServerException",
        "InternalError", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    }
)  # fmt: skip
"""Error codes of a service-side failure that another attempt may not meet."""

AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
        "SignatureDoesNotMatch", "IncompleteSignature", "IncompleteSignatureException",
        "MissingAuthenticationToken", "MissingAuthenticationTokenException", "ExpiredToken",
        "ExpiredTokenException", "RequestExpired", "InvalidAccessKeyId",
    }
)  # fmt: skip
"""Credential errors: every call would fail the same way."""

_CONDITION_CODES = frozenset({"ConditionalCheckFailedException", "PreconditionFailed", "412"})


@dataclass(frozen=True, slots=True)
class AwsFault:
    """One failed call, classified: ``kind`` (see the module doc), the service's ``code``
    and ``message``, the HTTP ``status`` (0 when no answer came), ``retry_after``."""

    kind: FaultKind
    code: str
    message: str
    status: int = 0
    retry_after: float | None = None
    response: Mapping[str, Any] | None = None
    """The parsed error response (``ClientError.response``), when there was one."""

    def retryable(self, *, idempotent: bool) -> bool:
        """Whether another attempt is safe and may succeed."""
        if self.kind in ("throttled", "transient"):
            return True
        return idempotent and self.kind == "unknown_outcome"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def classify(exc: BaseException) -> AwsFault | None:
    """What ``exc`` means as an AWS failure; None for an exception that is not one."""
    if isinstance(exc, ClientError):
        return _client_error(exc)
    name = type(exc).__name__
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return AwsFault("credentials", name, str(exc))
    if isinstance(exc, ParamValidationError):  # never left the process
        return AwsFault("rejected", name, str(exc))
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return AwsFault("unknown_outcome", "ReadTimeout", "no answer in time")
    # An aiohttp exception can exist only once aiohttp is loaded: looked up, not imported,
    # so the CLI's start does not pay for aiohttp on runs that never use it.
    aiohttp = sys.modules.get("aiohttp")
    if isinstance(exc, ConnectionClosedError):
        if aiohttp is not None and isinstance(exc.kwargs.get("error"), aiohttp.ClientPayloadError):
            # The answer had started: the service processed the request.
            return AwsFault("unknown_outcome", "ConnectionClosed", str(exc))
        return AwsFault("transient", "ConnectionClosed", str(exc))
    if isinstance(exc, EndpointConnectionError):  # refused, reset, DNS, connect time-out
        return AwsFault("transient", name, str(exc))
    if isinstance(exc, ResponseStreamingError | IncompleteReadError):  # a body cut short
        return AwsFault("unknown_outcome", name, str(exc))
    if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectorError):
        return AwsFault("transient", name, str(exc))
    if isinstance(exc, BotocoreConnectionError | HTTPClientError | OSError) or (
            aiohttp is not None and isinstance(exc, aiohttp.ClientError)):  # fmt: skip
        # The connection failed at an unknown point: the request may have been processed.
        return AwsFault("unknown_outcome", name, str(exc))
    if isinstance(exc, BotoCoreError):
        return AwsFault("rejected", name, str(exc))
    return None


def _client_error(exc: ClientError) -> AwsFault:
    response: Mapping[str, Any] = exc.response
    error = response.get("Error") or {}
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    meta = response.get("ResponseMetadata") or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    wait = retry_after(meta.get("HTTPHeaders") or {})
    kind: FaultKind
    if code in _CONDITION_CODES:
        kind = "condition"
    elif code in AUTH_CODES:
        kind = "credentials"
    elif (
        code in THROTTLING_CODES
        or status == 429
        or (code == "LimitExceededException" and "rate" in message.lower())
    ):
        kind = "throttled"
    elif code in TRANSIENT_CODES or status >= 500:
        kind = "transient"
    else:
        kind = "rejected"
    return AwsFault(kind, code, message, status, wait, response)


def retry_after(
    headers: Mapping[str, str] | str | None, *, now: float | None = None
) -> float | None:
    """A ``Retry-After`` value (a header map, or the value) as seconds from now: delta
    seconds or an HTTP date; None when absent or unreadable."""
    value = headers if isinstance(headers, str) or headers is None else (
        headers.get("retry-after") or headers.get("Retry-After"))  # fmt: skip
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
