"""Fixtures for the S3 segment and output tests: a moto server, real aiobotocore clients.

One ``moto_server`` subprocess serves the whole session; every test gets its own bucket
(``bucket`` fixture), so no reset is needed between tests or hypothesis examples.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.aws import AwsClients
from dispatcher.model import Record
from tests.segments.s3_proxy import S3Proxy
from tests.servers.moto import MotoServer

REGION = "us-east-1"
_bucket_numbers = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_server: MotoServer) -> None:
    """Dummy credentials, every AWS endpoint on moto, no shared config or metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def clients() -> AsyncIterator[AwsClients]:
    clients = AwsClients(REGION, connect_timeout=2.0, read_timeout=10.0)
    try:
        yield clients
    finally:
        await clients.aclose()


@pytest.fixture
async def s3(clients: AwsClients, moto_server: MotoServer) -> Any:
    """An S3 client straight to moto, for setting up and checking buckets.

    The code under test asks ``clients.client("s3")`` and so follows
    ``AWS_ENDPOINT_URL``: moto, or the ``proxy`` in front of it.
    """
    return await clients.client("s3", endpoint_url=moto_server.url)


@pytest.fixture
async def bucket(s3: Any) -> str:
    """A fresh, empty bucket for this test."""
    name = f"seg-test-{next(_bucket_numbers)}"
    await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def proxy(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[S3Proxy]:
    """A recording, fault-injecting proxy in front of moto, set as ``AWS_ENDPOINT_URL``:
    the code under test reaches S3 through it."""
    async with S3Proxy(moto_server.url) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


async def put(s3: Any, bucket: str, key: str, data: bytes, *, gz: bool = False) -> None:
    await s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(data) if gz else data)


def as_tuples(records: list[Record]) -> list[tuple[Any, ...]]:
    """Everything a Record carries, comparable with ``==``."""
    return [(r.line, r.endpoint_id, r.definition, r.error, r.treatment) for r in records]


async def collect(source: Any, *, start_line: int = 1, batch_size: int | None = None) -> list[Record]:
    out: list[Record] = []
    async for batch in source.batches(start_line=start_line):
        assert batch, "a source never yields an empty batch"
        if batch_size is not None:
            assert len(batch) <= batch_size
        out.extend(batch)
    return out
