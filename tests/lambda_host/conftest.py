"""Fixtures for the local Lambda host, driven by the stock aiobotocore Lambda client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from dispatcher.lambda_host.worker import NODE_PACKAGE_DIR

HANDLERS = Path(__file__).parent / "handlers"
REPO = Path(__file__).parents[2]
CREDIT_SCORE = REPO / "config" / "credit-score.js"
NODE_RIC = NODE_PACKAGE_DIR / "node_modules" / "aws-lambda-ric" / "bin" / "index.mjs"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def node_ready() -> bool:
    return shutil.which("node") is not None and NODE_RIC.is_file()


@pytest.fixture
def node() -> None:
    """Node.js tests skip locally without ``npm ci``; in CI (``CI`` set) they fail instead."""
    if node_ready():
        return
    message = f"Node.js or aws-lambda-ric missing: run `npm ci --prefix {NODE_PACKAGE_DIR}`"
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
