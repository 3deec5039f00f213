"""A fleet run's outputs in Amazon S3: each shard's part of the outcome log, the summary.

    await put_json_lines(shard_part_url("s3://bucket/runs/RUN/", "outcomes", 12), lines,
                         clients)

A shard part is written with one ``PutObject`` under a name made from the shard's
index, so a worker that runs a shard again (an SQS redelivery) overwrites its part.
Transient errors (throttling, 5xx, lost connections) are retried with jittered backoff;
anything else raises ``S3OutputError`` with the S3 error code.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, S3OutputError
from dispatcher.segments.s3 import S3_ERRORS, describe_s3_error, error_code, parse_s3_url, retrying

__all__ = ["S3OutputError", "put_json_lines", "shard_part_url"]



def shard_part_url(prefix: str, kind: str, index: int, ext: str = "jsonl") -> str:
    """Where a shard's part of a run output goes: ``PREFIX/KIND/shard-000012.jsonl``."""
    parse_s3_url(prefix)
    return f"{prefix.rstrip('/')}/{kind}/shard-{index:06d}.{ext}"


async def put_json_lines(s3_url: str, lines: list[bytes], clients: AwsClients) -> None:
    """Write ``lines`` (JSON values, without newlines) as one JSON-lines object."""
    bucket, key = parse_s3_url(s3_url)
    if not key or key.endswith("/"):
        raise ConfigError(f"{s3_url!r} names no object; expected s3://bucket/key.jsonl")
    body = b"\n".join(lines) + b"\n" if lines else b""
    s3 = await clients.client("s3")
    try:
        await retrying(s3.put_object, Bucket=bucket, Key=key, Body=body,
                       ContentType="application/x-ndjson")  # fmt: skip
    except S3_ERRORS as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else None
        raise S3OutputError(describe_s3_error(s3_url, exc), code=code, url=s3_url) from exc
