"""Fixtures for the fleet tests that run in an event loop (the SIGKILL test starts its
own moto and drives subprocesses from plain pytest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.moto import MotoServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server
