"""Fixtures for the S3 segment and output tests: a moto server, real aiobotocore clients.

The session's one moto server (``moto_server``, tests/conftest.py) serves them; every test
gets its own bucket (``bucket`` fixture), so no reset is needed between tests or
hypothesis examples.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.aws import AwsClients
from dispatcher.model import Record
from dispatcher.testing.moto import MotoServer
from tests.segments.s3_proxy import S3Proxy

REGION = "us-east-1"
_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-scoped, so one event loop and one ``AwsClients`` serve every test here
    (creating clients costs ~0.5 s)."""
    return "asyncio"


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3")


def set_aws_env(mp: pytest.MonkeyPatch, endpoint: str, config_dir: Path) -> None:
    """Dummy credentials, every AWS endpoint on ``endpoint``, no shared config."""
    for name, value in AWS_ENV.items():
        mp.setenv(name, value)
    mp.setenv("AWS_CONFIG_FILE", str(config_dir / "aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "aws-credentials"))
    mp.setenv("AWS_ENDPOINT_URL", endpoint)
    for name in UNSET:
        mp.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_server: MotoServer) -> None:
    set_aws_env(monkeypatch, moto_server.url, tmp_path)


@pytest.fixture(scope="session")
async def session_clients(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AwsClients]:
    """Clients shared by the tests here, their S3 client made (from the environment,
    as in production) while the environment names moto; it is restored at once so
    that nothing leaks into other test directories."""
    clients = AwsClients(REGION, connect_timeout=2.0, read_timeout=10.0)
    try:
        with pytest.MonkeyPatch.context() as mp:
            set_aws_env(mp, moto_server.url, tmp_path_factory.mktemp("aws"))
            await clients.client("s3")
            await clients.client("s3", endpoint_url=moto_server.url)
        yield clients
    finally:
        await clients.aclose()


@pytest.fixture
async def clients(
    session_clients: AwsClients, request: pytest.FixtureRequest
) -> AsyncIterator[AwsClients]:
    """What the code under test gets: the shared clients (S3 on moto through
    ``AWS_ENDPOINT_URL``), or fresh ones that go through the ``proxy`` when the test
    uses it (a client's endpoint is fixed when it is made)."""
    if "proxy" not in request.fixturenames:
        yield session_clients
        return
    request.getfixturevalue("proxy")
    fresh = AwsClients(REGION, connect_timeout=2.0, read_timeout=10.0)
    try:
        yield fresh
    finally:
        await fresh.aclose()


@pytest.fixture
async def s3(session_clients: AwsClients, moto_server: MotoServer) -> Any:
    """An S3 client straight to moto, for setting up and checking buckets."""
    return await session_clients.client("s3", endpoint_url=moto_server.url)


@pytest.fixture
async def bucket(s3: Any) -> str:
    """A fresh, empty bucket for this test."""
    name = f"seg-test-{next(_bucket_numbers)}"
    await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def proxy(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3Proxy]:
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


async def collect(
    source: Any, *, start_line: int = 1, batch_size: int | None = None
) -> list[Record]:
    out: list[Record] = []
    async for batch in source.batches(start_line=start_line):
        assert batch, "a source never yields an empty batch"
        if batch_size is not None:
            assert len(batch) <= batch_size
        out.extend(batch)
    return out
