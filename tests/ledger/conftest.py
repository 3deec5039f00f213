"""Fixtures for the ledger tests: one contract, two implementations.

``ledgers`` is parametrized over SQLite and DynamoDB. Its ``new()`` opens another
ledger on the same storage: another worker (DynamoDB: its own aiobotocore clients) or
the same worker after a crash. DynamoDB is the session's moto server (``moto_server``,
tests/conftest.py) behind ``DynamoProxy`` (serializing, fault-injecting), reached through
``AWS_ENDPOINT_URL`` with dummy credentials; every test gets its own table.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.ledger import SqliteLedger
from dispatcher.ledger.dynamodb import DynamoLedger
from dispatcher.testing.moto import MotoServer
from tests.ledger.dynamo_proxy import DynamoProxy

REGION = "us-east-1"
_tables = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, no shared config or instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)


class Ledgers:
    """Opens ledgers on one storage and closes them all at the end of the test."""

    def __init__(self, backend: str, *, path: Path | None = None, table: str = "",
                 proxy: DynamoProxy | None = None) -> None:  # fmt: skip
        self.backend = backend
        self.path = path
        self.table = table
        self.proxy = proxy
        self.opened: list[Any] = []

    def new(self, **dynamo_options: Any) -> Any:
        """Another ledger on the same storage; options apply to DynamoDB only."""
        ledger: Any
        if self.backend == "sqlite":
            assert self.path is not None
            ledger = SqliteLedger(self.path)
        else:
            ledger = DynamoLedger(self.table, region=REGION, **dynamo_options)
        self.opened.append(ledger)
        return ledger

    async def aclose(self) -> None:
        for ledger in self.opened:
            await ledger.aclose()


@pytest.fixture
async def dynamo_proxy(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DynamoProxy]:
    async with DynamoProxy(moto_server.url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


async def _dynamo_ledgers(proxy: DynamoProxy) -> Ledgers:
    table = f"ledger-{next(_tables)}"
    admin = DynamoLedger(table, region=REGION)
    try:
        assert await admin.create_table() is True
    finally:
        await admin.aclose()
    proxy.reset_stats()
    return Ledgers("dynamodb", table=table, proxy=proxy)


@pytest.fixture
async def dynamo(dynamo_proxy: DynamoProxy) -> AsyncIterator[Ledgers]:
    """DynamoDB only: ledgers on a fresh table, and the proxy in front of moto."""
    ledgers = await _dynamo_ledgers(dynamo_proxy)
    try:
        yield ledgers
    finally:
        await ledgers.aclose()


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def maybe_proxy(backend: str, request: pytest.FixtureRequest) -> DynamoProxy | None:
    return request.getfixturevalue("dynamo_proxy") if backend == "dynamodb" else None


@pytest.fixture
async def ledgers(
    backend: str, maybe_proxy: DynamoProxy | None, tmp_path: Path
) -> AsyncIterator[Ledgers]:
    """Both implementations, held to one contract."""
    if maybe_proxy is None:
        made = Ledgers("sqlite", path=tmp_path / "ledger.sqlite")
    else:
        made = await _dynamo_ledgers(maybe_proxy)
    try:
        yield made
    finally:
        await made.aclose()
