"""``dispatcher lambda serve`` as a subprocess: ready line, invocations, clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from tests.lambda_host.conftest import (
    CREDIT_SCORE,
    HANDLERS,
    REPO,
    lambda_client,
    marked,
    node_ready,
    process_group,
    wait_until,
)

pytestmark = pytest.mark.anyio

READY = re.compile(r"^Lambda host listening on (http://127\.0\.0\.1:\d+) \(functions: (.*)\)$")


def _groups(marker: str, host: int) -> set[int | None]:
    """The process groups of the host's marked workers (one per worker: the worker, its
    watchdog and whatever its handler started)."""
    return {process_group(pid) for pid in marked(marker) if pid != host}


@asynccontextmanager
async def serve(
    *functions: str, marker: str, function_timeout: int = 10
) -> AsyncIterator[tuple[Process, str, str]]:
    """Start ``dispatcher lambda serve`` and yield (process, endpoint url, functions)."""
    env = {**os.environ, "LH_TEST_MARKER": marker}
    command = [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0",
               "--worker-logs", "discard", "--timeout", str(function_timeout), *functions]
    process = await anyio.open_process(command, cwd=REPO, env=env, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        match = READY.match(line.decode().strip())
        assert match, line
        yield process, match[1], match[2]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


async def _invoke(url: str, name: str, event: dict[str, Any]) -> dict[str, Any]:
    async with lambda_client(url) as client:
        response = await client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
        assert "FunctionError" not in response
        return json.loads(await response["Payload"].read())  # type: ignore[no-any-return]


def _functions() -> list[str]:
    functions = [f"py={HANDLERS / 'py_handlers.py'}:echo"]
    if node_ready():
        functions.append(f"credit={CREDIT_SCORE}:handler")
    return functions


async def test_serve_then_sigterm_leaves_no_worker() -> None:
    marker = uuid.uuid4().hex
    async with serve(*_functions(), marker=marker) as (process, url, names):
        assert names == ", ".join(f.split("=")[0] for f in _functions())
        result = await _invoke(url, "py", {"hello": "world"})
        assert result["event"] == {"hello": "world"}
        if node_ready():
            endpoints = await _invoke(url, "credit", {"Endpoints": {"e": {"Address": "a"}}})
            assert "CreditScore" in endpoints["e"]["Attributes"]
        groups = _groups(marker, process.pid)
        assert result["pid"] in groups
        assert len(groups) == len(_functions())
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await process.wait() == 0
        assert marked(marker) == []


async def test_sigint_stops_the_host_too() -> None:
    marker = uuid.uuid4().hex
    async with serve(f"py={HANDLERS / 'py_handlers.py'}:echo", marker=marker) as (process, url, _):
        await _invoke(url, "py", {})
        assert len(_groups(marker, process.pid)) == 1
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            assert await process.wait() == 0
        assert marked(marker) == []


async def test_workers_die_with_a_killed_host(tmp_path: Path) -> None:
    """SIGKILL gives the host no chance to clean up: PR_SET_PDEATHSIG does it, even for
    a worker busy in a long invocation (an idle one would also notice the lost socket)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux-only")
    marker = uuid.uuid4().hex
    functions = [*_functions(), f"hold={HANDLERS / 'py_handlers.py'}:hold"]
    started = tmp_path / "started"
    event = {"started": str(started), "release": str(tmp_path / "never")}

    async def busy(url: str) -> None:
        async with lambda_client(url) as client:
            with pytest.raises(Exception):  # the host dies under the call  # noqa: B017
                await client.invoke(FunctionName="hold", Payload=json.dumps(event).encode())

    async with serve(*functions, marker=marker, function_timeout=600) as (process, url, _), \
            anyio.create_task_group() as tg:
        await _invoke(url, "py", {})
        if node_ready():
            await _invoke(url, "credit", {"Endpoints": {}})
        tg.start_soon(busy, url)
        await wait_until(started.exists)
        assert len(_groups(marker, process.pid)) == len(functions)
        process.kill()
        await process.wait()
        await wait_until(lambda: not marked(marker), within=10)


def test_bad_function_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0",
         "x=does/not/exist.js:handler"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dispatcher: handler file 'does/not/exist.js' of function 'x' does not exist"
    ]
    assert result.stdout == ""


def test_unknown_override_name_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0",
         "--timeout", "typo=3", f"py={HANDLERS / 'py_handlers.py'}:echo"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "'typo'" in result.stderr


def test_add_permission_cli(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    command = [
        sys.executable, "-m", "dispatcher", "lambda", "add-permission",
        "--policy-file", str(policy), "--function-name", "credit", "--statement-id", "sid",
        "--action", "lambda:InvokeFunction", "--principal", "pinpoint.us-east-1.amazonaws.com",
        "--source-account", "111122223333",
        "--source-arn", "arn:aws:mobiletargeting:us-east-1:111122223333:apps/app-1/campaigns/*",
        "--account-id", "111122223333",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    statement = json.loads(json.loads(result.stdout)["Statement"])
    assert statement["Sid"] == "sid"
    assert statement["Resource"] == "arn:aws:lambda:us-east-1:111122223333:function:credit"
    assert json.loads(policy.read_text())["Statement"] == [statement]
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert "The statement id (sid) provided already exists" in again.stderr
