"""Fixtures for the local Lambda host, driven by the stock aiobotocore Lambda client."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

HANDLERS = Path(__file__).parent / "handlers"
REPO = Path(__file__).parents[2]
CREDIT_SCORE = REPO / "config" / "credit-score.js"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def node_ready() -> bool:
    """Node.js handlers run wherever ``node`` is: the runtime client ships with the package."""
    return shutil.which("node") is not None


@pytest.fixture
def node() -> None:
    """Node.js tests skip locally without Node.js; in CI (``CI`` set) they fail instead."""
    if node_ready():
        return
    message = "Node.js is not on the PATH"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def lambda_client(endpoint_url: str, **config: Any) -> Any:
    """A stock aiobotocore Lambda client with dummy credentials and no retries."""
    return get_session().create_client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=AioConfig(retries={"total_max_attempts": 1}, read_timeout=60, **config),
    )


async def wait_until(predicate: Callable[[], bool], *, within: float = 30) -> None:
    """Poll ``predicate`` (state owned by another process: files, /proc) until true."""
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - no event to wait on across processes
            await anyio.sleep(0.01)


def marked(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose environment has ``LH_TEST_MARKER=marker``.

    Read from /proc, as an operator would look for leftovers: whatever a worker started
    inherits its environment, so this finds workers, their children and orphans alike.
    """
    found = []
    needle = f"LH_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def process_group(pid: int) -> int | None:
    """The process group of ``pid`` (None if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


async def invoke(
    client: Any, name: str, event: Any = None, **kw: Any
) -> tuple[dict[str, Any], bytes]:
    """One Invoke through a botocore client: (the response, the payload bytes)."""
    payload = kw.pop("Payload", None)
    if payload is None:
        payload = json.dumps(event if event is not None else {}).encode()
    response = await client.invoke(FunctionName=name, Payload=payload, **kw)
    body = await response["Payload"].read() if "Payload" in response else b""
    return response, body


def error_code(exc: ClientError) -> tuple[str, int, dict[str, Any]]:
    """(Error code, HTTP status, headers) of an Invoke that botocore raised."""
    meta = exc.response["ResponseMetadata"]
    return exc.response["Error"]["Code"], meta["HTTPStatusCode"], meta["HTTPHeaders"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive either (reaped by the host's watcher, normally).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # it went away while we looked
        return False
