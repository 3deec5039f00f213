"""Run outputs in Amazon S3: the outcome log, summary and event records, and shard parts.

    await check_output_location("s3://bucket/runs/RUN/", clients)   # before any work
    ...
    await upload_outputs(out_dir, "s3://bucket/runs/RUN/", clients)  # at the end of a run
    await put_json_lines(shard_part_url("s3://bucket/runs/RUN/", "outcomes", 12), lines,
                         clients)                                    # a fleet worker, per shard

Files are streamed from disk: one ``PutObject`` up to ``part_size``, a multipart upload
above it, with at most ``concurrency`` parts (of ``part_size`` bytes each) in memory
and in flight. A failed multipart upload is aborted, so no hidden parts are left to pay
for. Transient errors (throttling, 5xx, lost connections) are retried with jittered
backoff; anything else raises ``S3OutputError`` with the S3 error code. A bucket that
does not exist or cannot be reached is found before the run by
``check_output_location`` and reported as a ``ConfigError``.

A shard part is written with one ``PutObject`` under a name made from the shard's
index, so a worker that runs a shard again (an SQS redelivery) overwrites its part.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
from botocore.exceptions import ClientError

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, DispatchError
from dispatcher.segments.s3 import (
    S3_ERRORS,
    describe_s3_error,
    error_code,
    parse_s3_url,
    retrying,
)

__all__ = [
    "DEFAULT_OUTPUTS",
    "S3OutputError",
    "check_output_location",
    "put_json_lines",
    "shard_part_url",
    "upload_file",
    "upload_outputs",
]

DEFAULT_OUTPUTS = ("outcomes.jsonl", "summary.json", "run.json", "events.jsonl")
"""The run's files uploaded by default (those that exist)."""
MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest multipart part (all but the last)."""
MAX_PARTS = 10_000
PART_SIZE = 8 * 1024 * 1024
CONCURRENCY = 4

CONTENT_TYPES = {".jsonl": "application/x-ndjson", ".json": "application/json"}


class S3OutputError(DispatchError):
    """Writing an output to S3 failed for good; ``code`` is the S3 error code."""

    def __init__(self, message: str, *, code: str | None = None, url: str | None = None) -> None:
        self.code = code
        self.url = url
        super().__init__(message)


def _join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}"


def shard_part_url(prefix: str, kind: str, index: int, ext: str = "jsonl") -> str:
    """Where a shard's part of a run output goes: ``PREFIX/KIND/shard-000012.jsonl``."""
    parse_s3_url(prefix)
    return _join(prefix, f"{kind}/shard-{index:06d}.{ext}")


def _content_type(key: str) -> str:
    return CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")


async def _call(url: str, operation: Any, **kwargs: Any) -> Any:
    try:
        return await retrying(operation, **kwargs)
    except S3_ERRORS as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else None
        raise S3OutputError(describe_s3_error(url, exc), code=code, url=url) from exc


async def check_output_location(s3_prefix: str, clients: AwsClients) -> None:
    """Fail before any work if the outputs' bucket does not exist or is not ours to use.

    ``HeadBucket`` needs ``s3:ListBucket``; write permission itself shows only at the
    first write.
    """
    bucket, _ = parse_s3_url(s3_prefix)
    s3 = await clients.client("s3")
    try:
        await retrying(s3.head_bucket, Bucket=bucket)
    except S3_ERRORS as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else None
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise ConfigError(f"output bucket {bucket!r} does not exist ({code})",
                              key=s3_prefix) from exc  # fmt: skip
        if code in ("403", "AccessDenied"):
            raise ConfigError(f"access to output bucket {bucket!r} is denied ({code})",
                              key=s3_prefix) from exc  # fmt: skip
        raise ConfigError(describe_s3_error(s3_prefix, exc)) from exc


async def put_json_lines(s3_url: str, lines: list[bytes], clients: AwsClients) -> None:
    """Write ``lines`` (JSON values, without newlines) as one JSON-lines object."""
    bucket, key = parse_s3_url(s3_url)
    if not key or key.endswith("/"):
        raise ConfigError(f"{s3_url!r} names no object; expected s3://bucket/key.jsonl")
    body = b"\n".join(lines) + b"\n" if lines else b""
    s3 = await clients.client("s3")
    await _call(s3_url, s3.put_object, Bucket=bucket, Key=key, Body=body,
                ContentType="application/x-ndjson")  # fmt: skip


async def upload_file(
    path: Path, s3_url: str, clients: AwsClients, *, part_size: int = PART_SIZE,
    concurrency: int = CONCURRENCY,
) -> None:  # fmt: skip
    """Upload one file, streamed from disk: multipart above ``part_size`` bytes."""
    if part_size < MIN_PART_SIZE:
        raise ConfigError(f"'part_size' must be >= {MIN_PART_SIZE} (5 MiB), got {part_size}")
    if concurrency < 1:
        raise ConfigError(f"'concurrency' must be > 0, got {concurrency}")
    bucket, key = parse_s3_url(s3_url)
    size = (await anyio.Path(path).stat()).st_size
    s3 = await clients.client("s3")
    if size <= part_size:
        body = await anyio.Path(path).read_bytes()
        await _call(s3_url, s3.put_object, Bucket=bucket, Key=key, Body=body,
                    ContentType=_content_type(key))  # fmt: skip
        return
    # Parts grow past part_size only for files over 10,000 parts (80 GB at 8 MiB).
    part_size = max(part_size, -(-size // MAX_PARTS))
    upload = await _call(s3_url, s3.create_multipart_upload, Bucket=bucket, Key=key,
                         ContentType=_content_type(key))  # fmt: skip
    upload_id = upload["UploadId"]
    try:
        parts = await _upload_parts(s3, path, s3_url, upload_id, size, part_size, concurrency)
        await _call(s3_url, s3.complete_multipart_upload, Bucket=bucket, Key=key,
                    UploadId=upload_id, MultipartUpload={"Parts": parts})  # fmt: skip
    except BaseException:
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            try:
                await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except S3_ERRORS:
                pass  # the original error matters more; a lifecycle rule can clean up
        raise


async def _upload_parts(
    s3: Any, path: Path, s3_url: str, upload_id: str, size: int, part_size: int,
    concurrency: int,
) -> list[dict[str, Any]]:  # fmt: skip
    bucket, key = parse_s3_url(s3_url)
    count = -(-size // part_size)
    etags: list[str | None] = [None] * count
    errors: list[BaseException] = []
    # A token is taken *before* a part is read: at most `concurrency` parts in memory.
    tokens = anyio.Semaphore(concurrency)

    async def upload_part(number: int, data: bytes, scope: anyio.CancelScope) -> None:
        try:
            response = await _call(s3_url, s3.upload_part, Bucket=bucket, Key=key,
                                   UploadId=upload_id, PartNumber=number, Body=data)  # fmt: skip
            etags[number - 1] = response["ETag"]
        except S3OutputError as exc:
            errors.append(exc)
            scope.cancel()
        finally:
            tokens.release()

    async with await anyio.open_file(path, "rb") as f, anyio.create_task_group() as tg:
        for number in range(1, count + 1):
            await tokens.acquire()
            data = await f.read(part_size)
            tg.start_soon(upload_part, number, data, tg.cancel_scope)
    if errors:
        raise errors[0]
    if any(e is None for e in etags):  # the file shrank while it was read
        raise S3OutputError(f"{s3_url}: {path} changed while it was uploaded", url=s3_url)
    return [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]


async def upload_outputs(
    out_dir: Path, s3_prefix: str, clients: AwsClients, *,
    names: Iterable[str] | None = None, part_size: int = PART_SIZE,
    concurrency: int = CONCURRENCY,
) -> list[str]:  # fmt: skip
    """Upload the run's output files to ``s3_prefix``; returns the URLs written.

    ``names=None`` uploads those of ``DEFAULT_OUTPUTS`` that exist; names given
    explicitly must exist.
    """
    parse_s3_url(s3_prefix)
    explicit = names is not None
    uploaded = []
    for name in DEFAULT_OUTPUTS if names is None else names:
        path = out_dir / name
        if not path.is_file():
            if explicit:
                raise ConfigError(f"output file {str(path)!r} does not exist")
            continue
        url = _join(s3_prefix, name)
        await upload_file(path, url, clients, part_size=part_size, concurrency=concurrency)
        uploaded.append(url)
    return uploaded
