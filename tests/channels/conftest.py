"""Channel test fixtures: AWS env, real aiobotocore clients, local servers, virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from dispatcher.aws import AwsClients
from dispatcher.channels.base import Message, SenderContext
from dispatcher.testing.moto import MotoServer
from dispatcher.testing.push import PushServer
from dispatcher.testing.ses import SesServer
from dispatcher.testing.sms import SmsServer

REGION = "us-east-1"
APP_ID = "app0123456789abcdef"
READ_TIMEOUT = 1.0
"""Client read time-out in these tests; the servers' ``delay`` fault exceeds it."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials; no shared config, no instance metadata, no real endpoints."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def aws_clients() -> AsyncIterator[AwsClients]:
    """A fresh process-style client cache with a short read time-out."""
    clients = AwsClients(REGION, connect_timeout=1.0, read_timeout=READ_TIMEOUT)
    try:
        yield clients
    finally:
        await clients.aclose()


@pytest.fixture
def sender_ctx(aws_clients: AwsClients, tmp_path: Path) -> SenderContext:
    return SenderContext(
        application_id=APP_ID,
        region=REGION,
        account_id="123456789012",
        clients=aws_clients,
        out_dir=tmp_path,
        config_file="campaign.toml",
        concurrency=8,
    )


@pytest.fixture
def offline_ctx(tmp_path: Path) -> SenderContext:
    """A context for factory-only tests (sync): its ``AwsClients`` never makes a client."""
    return SenderContext(
        application_id=APP_ID,
        region=REGION,
        account_id="123456789012",
        clients=AwsClients(REGION),
        out_dir=tmp_path,
        config_file="campaign.toml",
    )


@pytest.fixture
async def sms_server() -> AsyncIterator[SmsServer]:
    async with SmsServer() as server:
        yield server


@pytest.fixture
async def push_server() -> AsyncIterator[PushServer]:
    async with PushServer() as server:
        yield server


@pytest.fixture
async def ses_server() -> AsyncIterator[SesServer]:
    async with SesServer() as server:
        yield server


@pytest.fixture(scope="session")
def _sesv2_loaded(moto_server: MotoServer) -> None:
    """moto imports a service's backend on its first request, which can take longer than
    the tests' 1 s read time-out on a loaded machine: pay it once, unhurried."""
    try:
        urllib.request.urlopen(f"{moto_server.url}/v2/email/identities", timeout=60).close()
    except urllib.error.URLError:
        pass  # any answer will do: the backend is loaded


@pytest.fixture
def moto(moto: MotoServer, _sesv2_loaded: None) -> MotoServer:
    """The session's moto server, emptied, with its SES v2 backend loaded."""
    return moto


@pytest.fixture
def make_message():
    """``make_message(address, channel_type, **fields)`` -> a rendered ``Message``."""
    counter = itertools.count(1)

    def make(address: str, channel_type: str = "EMAIL", **fields: Any) -> Message:
        line = next(counter)
        fields.setdefault("title", f"Title {line}")
        fields.setdefault("body", f"Body {line}")
        return Message(
            endpoint_id=fields.pop("endpoint_id", f"ep-{line}"),
            line=line,
            channel_type=channel_type,
            address=address,
            **fields,
        )

    return make


class VirtualClock:
    """Virtual time for asyncio tests: ``clock()`` reads it, ``await clock.sleep(d)`` waits.

    Time only moves while ``driving()`` is active, and only when every other task is
    blocked: the driver then jumps to the earliest sleeper's deadline and wakes it. So
    a test runs thousands of virtual seconds in milliseconds, and the order of events
    is exactly what it would be in real time with instantaneous computation.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps += 1
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._seq), event))
        await event.wait()

    @asynccontextmanager
    async def driving(self) -> AsyncIterator[VirtualClock]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def _drive(self) -> None:
        while True:
            await _all_other_tasks_blocked()
            if not self._sleepers:
                continue
            deadline = self._sleepers[0][0]
            self.now = max(self.now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self.now:
                heapq.heappop(self._sleepers)[2].set()


async def _all_other_tasks_blocked() -> None:
    this = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        for task in asyncio.all_tasks():
            if task is this:
                continue
            waiter = task._fut_waiter  # type: ignore[attr-defined]
            if waiter is None or waiter.done():
                break
        else:
            return


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(scope="session")
def virtual_clock_type() -> type[VirtualClock]:
    """The class, for tests that need a fresh clock per example (hypothesis)."""
    return VirtualClock
