"""Segments in Amazon S3: one object, or every object under a prefix (a Pinpoint export).

``s3://bucket/key`` names one object; ``s3://bucket/prefix/`` (or a key that does not
exist but is a "folder") names every object under it, in key order, subfolders
included. Zero-byte "folder" objects and hidden markers (``_SUCCESS``, ``.keep``) are
skipped. Each object's format comes from its name (``.csv[.gz]`` is CSV, anything else
JSON lines) unless one is given; gzip is recognised by its magic bytes.

S3 adds only what is S3's: listing, and the ranged, ETag-pinned, resumable reader
(``s3io.ObjectReader``). Its bytes then go through the same stages as a local file's
(``records``), so an object gives exactly the Records the same file would. ``Line`` is
global across the objects of a prefix: the nth line of their concatenation, each CSV
header not counted, so one ``Line`` identifies one record of a multi-object source.
Each object is a file of its own: a UTF-8 BOM is dropped at the start of every object,
and every CSV object has a header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from botocore.exceptions import ClientError

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, SegmentError
from dispatcher.model import Record
from dispatcher.segments.lines import DEFAULT_MAX_RECORD_BYTES, check_max_record_bytes
from dispatcher.segments.records import (
    BATCH_SIZE,
    Batcher,
    batched,
    build_records,
    check_batch_size,
    check_format,
    detect_format,
    lines_added,
    record_builder,
    text_stream,
)
from dispatcher.segments.s3io import (
    CHUNK_SIZE,
    S3_ERRORS,
    ObjectReader,
    S3Object,
    describe_s3_error,
    error_code,
    retrying,
)

# -- URLs and listing ----------------------------------------------------------------------


def is_s3_url(spec: str) -> bool:
    """Whether ``spec`` names an S3 location rather than a local path."""
    return spec.startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
    if not is_s3_url(url):
        raise ConfigError(
            f"{url!r} is not an S3 URL; expected s3://bucket/key or s3://bucket/prefix/"
        )
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"{url!r} has no bucket name; expected s3://bucket/key")
    return bucket, key


def is_data_key(key: str) -> bool:
    """Whether a listed key holds segment data (not a folder or a ``_SUCCESS`` marker)."""
    if key.endswith("/"):
        return False
    base = key.rsplit("/", 1)[-1]
    return not base.startswith(("_", "."))


async def _call(url: str, operation: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
    """One S3 call with the transient errors retried; others become ``SegmentError``."""
    try:
        return await retrying(operation, **kwargs)
    except S3_ERRORS as exc:
        raise SegmentError(describe_s3_error(url, exc)) from exc


async def _list_prefix(s3: Any, bucket: str, prefix: str) -> list[S3Object]:
    url = f"s3://{bucket}/{prefix}"
    objects: list[S3Object] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = await _call(url, s3.list_objects_v2, **kwargs)
        for item in page.get("Contents", ()):
            objects.append(S3Object(bucket, item["Key"], int(item["Size"]), item.get("ETag", "")))
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
    return objects


async def list_objects(url: str, clients: AwsClients) -> list[S3Object]:
    """The data objects a segment URL names, in key order.

    A URL ending in ``/`` (or naming only a bucket) is a prefix. Any other URL is one
    object; if no such object exists, it is read as the prefix ``key/``. A location
    with nothing at all under it is a ``SegmentError``; one holding only markers or
    empty objects is an empty segment.
    """
    bucket, key = parse_s3_url(url)
    s3 = await clients.client("s3")
    if key and not key.endswith("/"):
        try:
            head = await retrying(s3.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise SegmentError(describe_s3_error(url, exc)) from exc
        except S3_ERRORS as exc:
            raise SegmentError(describe_s3_error(url, exc)) from exc
        else:
            return [S3Object(bucket, key, int(head["ContentLength"]), head.get("ETag", ""))]
        key += "/"
    listed = await _list_prefix(s3, bucket, key)
    if not listed:
        raise SegmentError(f"{url}: no such object, and no objects under it")
    listed.sort(key=lambda o: o.key)
    return [o for o in listed if o.size > 0 and is_data_key(o.key)]


def object_format(key: str, fmt: str | None) -> str:
    """The format to read an object in: ``fmt`` if given, else from the key's extension."""
    return check_format(fmt) or detect_format(key)


# -- the source ------------------------------------------------------------------------------


class S3Source:
    """A segment in S3 (one object or a prefix), streamed; implements ``SegmentSource``."""

    def __init__(
        self, url: str, clients: AwsClients, fmt: str | None = None, *,
        batch_size: int = BATCH_SIZE, chunk_size: int = CHUNK_SIZE,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:  # fmt: skip
        parse_s3_url(url)
        if chunk_size < 1:
            raise ConfigError(f"'chunk_size' must be > 0, got {chunk_size}")
        self.url = url
        self.name = url
        self.format = check_format(fmt)
        self.clients = clients
        self.batch_size = check_batch_size(batch_size)
        self.chunk_size = chunk_size
        self.max_record_bytes = check_max_record_bytes(max_record_bytes)
        self._objects: list[S3Object] | None = None

    async def objects(self) -> list[S3Object]:
        """The objects read, listed once (call it early to fail before any work)."""
        if self._objects is None:
            self._objects = await list_objects(self.url, self.clients)
        return self._objects

    def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
        return self._batches(start_line)

    async def _batches(self, start_line: int) -> AsyncIterator[list[Record]]:
        s3 = await self.clients.client("s3")
        batcher = Batcher(self.batch_size)
        max_bytes = self.max_record_bytes
        base = 0
        for obj in await self.objects():
            fmt = object_format(obj.key, self.format)
            raw = ObjectReader(s3, obj, chunk_size=self.chunk_size)
            try:
                stream, _, bom = await text_stream(raw, obj.url, block_size=self.chunk_size)
                builder = record_builder(fmt, obj.url, base + 1, start_line=start_line,
                                         max_bytes=max_bytes)  # fmt: skip
                parts = build_records(stream, builder, fmt=fmt, max_bytes=max_bytes,
                                      batch_size=self.batch_size)  # fmt: skip
                async for batch in batched(parts, batcher):
                    yield batch
            finally:
                await raw.aclose()
            base += lines_added(fmt, builder.lines, bom)
        rest = batcher.rest()
        if rest:
            yield rest


__all__ = [
    "CHUNK_SIZE",
    "S3_ERRORS",
    "S3Object",
    "S3Source",
    "describe_s3_error",
    "error_code",
    "is_s3_url",
    "list_objects",
    "object_format",
    "parse_s3_url",
    "retrying",
]
