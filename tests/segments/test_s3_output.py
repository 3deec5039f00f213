"""A fleet run's outputs written to S3 (moto): shard parts, retries, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError
from dispatcher.fleet.s3output import S3OutputError, put_json_lines, shard_part_url
from tests.segments.s3_proxy import S3Proxy

pytestmark = pytest.mark.anyio


async def get(s3: Any, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return await body.read(), response


async def test_shard_parts_are_json_lines_objects_overwritten_on_rerun(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    url = shard_part_url(f"s3://{bucket}/runs/RUN/", "outcomes", 12)
    assert url == f"s3://{bucket}/runs/RUN/outcomes/shard-000012.jsonl"
    await put_json_lines(url, [b'{"Line": 1}', b'{"Line": 2}'], clients)
    await put_json_lines(url, [b'{"Line": 1}', b'{"Line": 2}', b'{"Line": 3}'], clients)
    body, _ = await get(s3, bucket, "runs/RUN/outcomes/shard-000012.jsonl")
    assert body.splitlines() == [b'{"Line": 1}', b'{"Line": 2}', b'{"Line": 3}']
    assert body.endswith(b"\n")
    await put_json_lines(url, [], clients)
    assert (await get(s3, bucket, "runs/RUN/outcomes/shard-000012.jsonl"))[0] == b""


async def test_a_write_that_fails_for_good_raises_with_the_s3_code(
    clients: AwsClients, tmp_path: Path
) -> None:
    with pytest.raises(S3OutputError, match=r"the bucket does not exist \(NoSuchBucket\)") as info:
        await put_json_lines("s3://no-such-out-bucket/p/shard-000001.jsonl", [b"{}"], clients)
    assert info.value.code == "NoSuchBucket"


async def test_transient_write_errors_are_retried(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str
) -> None:
    proxy.fail("PUT", "part.jsonl", status=503, code="SlowDown", times=2)
    await put_json_lines(f"s3://{bucket}/part.jsonl", [b"1"], clients)
    assert (await get(s3, bucket, "part.jsonl"))[0] == b"1\n"
    assert sum(1 for m, p, _, _ in proxy.requests if m == "PUT" and "part.jsonl" in p) == 3


async def test_bad_arguments_are_config_errors(clients: AwsClients) -> None:
    with pytest.raises(ConfigError, match="names no object"):
        await put_json_lines("s3://bucket/prefix/", [b"{}"], clients)
    with pytest.raises(ConfigError, match="not an S3 URL"):
        shard_part_url("bucket/prefix", "outcomes", 1)
