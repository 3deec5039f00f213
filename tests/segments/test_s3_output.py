"""Run outputs written to S3 (moto): single puts, multipart uploads, shard parts, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError
from dispatcher.s3output import (
    MIN_PART_SIZE,
    S3OutputError,
    check_output_location,
    put_json_lines,
    shard_part_url,
    upload_file,
    upload_outputs,
)
from tests.segments.s3_proxy import S3Proxy

pytestmark = pytest.mark.anyio


async def get(s3: Any, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return await body.read(), response


async def test_run_outputs_are_uploaded_small_ones_whole_large_ones_in_parts(
    clients: AwsClients, s3: Any, bucket: str, tmp_path: Path
) -> None:
    outcomes = b"".join(
        orjson.dumps({"EndpointId": f"ep-{i}", "Line": i, "Status": "SUCCESS"}) + b"\n"
        for i in range(200_000)
    )
    assert len(outcomes) > 2 * MIN_PART_SIZE
    (tmp_path / "outcomes.jsonl").write_bytes(outcomes)
    (tmp_path / "summary.json").write_bytes(b'{"Total": 200000}\n')
    (tmp_path / "unrelated.txt").write_bytes(b"not an output")

    urls = await upload_outputs(tmp_path, f"s3://{bucket}/runs/r1/", clients,
                                part_size=MIN_PART_SIZE, concurrency=2)  # fmt: skip

    assert urls == [f"s3://{bucket}/runs/r1/outcomes.jsonl", f"s3://{bucket}/runs/r1/summary.json"]
    listed = await s3.list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in listed["Contents"]) == ["runs/r1/outcomes.jsonl",
                                                            "runs/r1/summary.json"]  # fmt: skip
    body, response = await get(s3, bucket, "runs/r1/outcomes.jsonl")
    assert body == outcomes
    parts = -(-len(outcomes) // MIN_PART_SIZE)
    assert response["ETag"].endswith(f'-{parts}"')  # a multipart upload of that many parts
    assert response["ContentType"] == "application/x-ndjson"
    body, response = await get(s3, bucket, "runs/r1/summary.json")
    assert body == b'{"Total": 200000}\n'
    assert "-" not in response["ETag"]
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_explicit_names_must_exist(clients: AwsClients, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_bytes(b"{}\n")
    urls = await upload_outputs(tmp_path, f"s3://{bucket}/r", clients, names=["events.jsonl"])
    assert urls == [f"s3://{bucket}/r/events.jsonl"]
    with pytest.raises(ConfigError, match=r"outbox\.jsonl' does not exist"):
        await upload_outputs(tmp_path, f"s3://{bucket}/r", clients, names=["outbox.jsonl"])


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


async def test_a_missing_bucket_is_a_config_error_before_the_run(clients: AwsClients) -> None:
    with pytest.raises(ConfigError, match=r"output bucket 'no-such-out-bucket' does not exist"):
        await check_output_location("s3://no-such-out-bucket/runs/", clients)


async def test_access_denied_is_a_config_error_before_the_run(
    proxy: S3Proxy, clients: AwsClients, bucket: str
) -> None:
    proxy.fail("HEAD", bucket, status=403, code="AccessDenied", times=-1)
    with pytest.raises(ConfigError, match=rf"access to output bucket '{bucket}' is denied \(403\)"):
        await check_output_location(f"s3://{bucket}/runs/", clients)


async def test_a_write_that_fails_for_good_raises_with_the_s3_code(
    clients: AwsClients, tmp_path: Path
) -> None:
    with pytest.raises(S3OutputError, match=r"the bucket does not exist \(NoSuchBucket\)") as info:
        await put_json_lines("s3://no-such-out-bucket/p/shard-000001.jsonl", [b"{}"], clients)
    assert info.value.code == "NoSuchBucket"


async def test_a_failed_multipart_upload_is_aborted(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_bytes(os.urandom(2 * MIN_PART_SIZE + 10))
    proxy.fail("PUT", "outcomes.jsonl", query_contains="partNumber=2", status=403,
               code="AccessDenied", times=-1)  # fmt: skip

    with pytest.raises(S3OutputError, match=r"access denied \(AccessDenied\)") as info:
        await upload_file(path, f"s3://{bucket}/r/outcomes.jsonl", clients,
                          part_size=MIN_PART_SIZE)  # fmt: skip

    assert info.value.code == "AccessDenied"
    assert any(m == "DELETE" and "uploadId" in q for m, _, q, _ in proxy.requests)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    assert "Contents" not in await s3.list_objects_v2(Bucket=bucket)


async def test_transient_write_errors_are_retried(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str
) -> None:
    proxy.fail("PUT", "part.jsonl", status=503, code="SlowDown", times=2)
    await put_json_lines(f"s3://{bucket}/part.jsonl", [b"1"], clients)
    assert (await get(s3, bucket, "part.jsonl"))[0] == b"1\n"
    assert sum(1 for m, p, _, _ in proxy.requests if m == "PUT" and "part.jsonl" in p) == 3


async def test_bad_arguments_are_config_errors(clients: AwsClients, tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError, match="'part_size' must be >= 5242880"):
        await upload_file(path, "s3://b/x", clients, part_size=1024)
    with pytest.raises(ConfigError, match="names no object"):
        await put_json_lines("s3://bucket/prefix/", [b"{}"], clients)
    with pytest.raises(ConfigError, match="not an S3 URL"):
        await upload_outputs(tmp_path, "bucket/prefix", clients)
