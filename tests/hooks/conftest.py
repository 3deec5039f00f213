"""Fixtures for the hook transports: real servers on 127.0.0.1, a clean AWS environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from dispatcher.aws import AwsClients
from tests.hooks.lambda_api_server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    SESSION_TOKEN,
    InvokeApi,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Dummy credentials from the environment and nothing else from the machine."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in (
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
        ):
            monkeypatch.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("aws") / "none"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


@pytest.fixture
async def lambda_api() -> AsyncIterator[InvokeApi]:
    api = InvokeApi(
        region=REGION,
        credentials={ACCESS_KEY: (SECRET_KEY, SESSION_TOKEN)},
        functions={"echo", "Thumbnail"},
    )
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


@pytest.fixture
async def aws() -> AsyncIterator[AwsClients]:
    clients = AwsClients(REGION, max_pool_connections=8)
    try:
        yield clients
    finally:
        await clients.aclose()


@pytest.fixture
def region() -> Iterator[str]:
    yield REGION
