"""S3 calls beneath the segment sources: error classification, retries, and the
ranged, ETag-pinned, resumable object reader.

Every failure becomes a ``SegmentError`` naming the location and the S3 error code;
transient ones (network trouble, throttling, 5xx) are retried first with jittered
backoff, at most ``STREAM_ATTEMPTS`` times in a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import anyio
from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError

from dispatcher.aws.errors import classify
from dispatcher.aws.retry import backoff_delay, call
from dispatcher.errors import SegmentError
from dispatcher.segments.streams import BLOCK_SIZE

T = TypeVar("T")

CHUNK_SIZE = BLOCK_SIZE
"""Bytes asked of the HTTP body per read."""
STREAM_ATTEMPTS = 4
"""Failed attempts in a row to get (or resume) one object before giving up."""
RESUME_PROGRESS = 1 << 20
"""Bytes that must arrive after a failure before the failures no longer count as in a row
(so a connection that always breaks after a few bytes cannot loop for ever)."""
RETRY_DELAY = 0.2
"""First back-off in seconds between attempts; doubles after each failure."""

_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "the object does not exist",
    "404": "not found",
    "NotFound": "not found",
    "AccessDenied": "access denied",
    "403": "access denied",
    "AllAccessDisabled": "access denied",
    "InvalidAccessKeyId": "the access key is not valid",
    "SignatureDoesNotMatch": "the request signature does not match (check the secret key)",
    "ExpiredToken": "the credentials have expired",
    "PreconditionFailed": "the object has changed since it was listed: its ETag differs",
    "InvalidRange": "the byte range is past the end of the object",
    "PermanentRedirect": "the bucket is in another region",
}


# -- errors ------------------------------------------------------------------------------


def error_code(exc: ClientError) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchBucket``, ``403``...)."""
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def describe_s3_error(url: str, exc: BaseException) -> str:
    """A one-line message naming the location, what went wrong and the S3 error code."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        reason = _REASONS.get(code) or exc.response.get("Error", {}).get("Message") or "failed"
        return f"{url}: {reason} ({code})"
    if isinstance(exc, BotoCoreError):
        return f"{url}: {exc}"
    return f"{url}: {type(exc).__name__}: {exc}"


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: network trouble, throttling, 5xx, a body cut
    short (S3 reads are safe to repeat, so an unknown outcome is retried too)."""
    fault = classify(exc)
    return fault is not None and fault.retryable(idempotent=True)


async def backoff(failures: int) -> None:
    """Sleep before attempt ``failures + 1``."""
    await anyio.sleep(backoff_delay(failures, base=RETRY_DELAY, cap=5.0))


S3_ERRORS: tuple[type[BaseException], ...] = (
    ClientError,
    BotoCoreError,
    aiohttp.ClientError,
    TimeoutError,
)
"""What an S3 call can raise: callers map these to the dispatcher's own errors."""


async def retrying(operation: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
    """``await operation(**kwargs)`` under the AWS retry policy (``STREAM_ATTEMPTS``
    attempts in all); the last error is re-raised as it is."""
    return await call(operation, attempts=STREAM_ATTEMPTS, base=RETRY_DELAY, **kwargs)


# -- objects -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Object:
    """One listed object: where it is, how big, and which version (ETag) was listed."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ObjectReader:
    """The bytes ``[start, end)`` of one object (``end=None``: to its end), resumed
    after transient failures with a ranged GET from the current offset.

    ``get_object`` is pinned to the listed ETag (``If-Match``), so a resumed or ranged
    read never mixes two versions of an object.
    """

    def __init__(
        self, s3: Any, obj: S3Object, *, start: int = 0, end: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:  # fmt: skip
        self._s3 = s3
        self._obj = obj
        self._pos = start
        self._end = end
        self._chunk_size = chunk_size
        self._body: Any = None
        self._failures = 0
        self._since_failure = 0
        self._done = False
        self.requests = 0
        """GET requests made (the first and every resume)."""

    async def read(self) -> bytes:
        while not self._done and (self._end is None or self._pos < self._end):
            if self._body is None:
                self._body = await self._open()
                if self._body is None:
                    break
            size = (
                self._chunk_size
                if self._end is None
                else min(self._chunk_size, self._end - self._pos)
            )
            try:
                chunk: bytes = await self._body.read(size)
            except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
                await self._failed(exc)
                continue
            if not chunk:
                if self._end is None:
                    break  # the end of the object: aiobotocore checked Content-Length
                await self._failed(IncompleteReadError(
                    actual_bytes=self._pos, expected_bytes=self._end))  # fmt: skip
                continue
            self._pos += len(chunk)
            self._since_failure += len(chunk)
            if self._since_failure >= RESUME_PROGRESS:
                self._failures = 0
            return chunk
        self._done = True
        await self.aclose()
        return b""

    async def _open(self) -> Any:
        while True:
            kwargs: dict[str, Any] = {"Bucket": self._obj.bucket, "Key": self._obj.key}
            if self._obj.etag:
                kwargs["IfMatch"] = self._obj.etag
            if self._end is not None:
                kwargs["Range"] = f"bytes={self._pos}-{self._end - 1}"
            elif self._pos > 0:
                kwargs["Range"] = f"bytes={self._pos}-"
            self.requests += 1
            try:
                response = await self._s3.get_object(**kwargs)
            except ClientError as exc:
                if self._end is None and self._pos > 0 and error_code(exc) == "InvalidRange":
                    return None  # resumed exactly at the end of the object
                await self._failed(exc)
                continue
            except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
                await self._failed(exc)
                continue
            return response["Body"]

    async def _failed(self, exc: BaseException) -> None:
        await self.aclose()
        self._failures += 1
        self._since_failure = 0
        if not is_transient(exc) or self._failures >= STREAM_ATTEMPTS:
            raise SegmentError(describe_s3_error(self._obj.url, exc)) from exc
        await backoff(self._failures)

    async def aclose(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()


__all__ = [
    "CHUNK_SIZE",
    "S3_ERRORS",
    "ObjectReader",
    "S3Object",
    "describe_s3_error",
    "error_code",
    "is_transient",
    "retrying",
]
