"""The local Lambda host's API limits and errors, invocation types and handler specs,
through the stock aiobotocore Lambda client."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from dispatcher.errors import ConfigError
from dispatcher.lambda_host import FunctionSpec, LambdaHost
from tests.lambda_host.conftest import (
    CREDIT_SCORE,
    HANDLERS,
    alive,
    error_code,
    invoke,
    lambda_client,
    wait_until,
)

pytestmark = pytest.mark.anyio

PY = HANDLERS / "py_handlers.py"


@pytest.fixture(scope="module")
async def host() -> AsyncIterator[LambdaHost]:
    def fn(name: str, handler: str, **kw: Any) -> FunctionSpec:
        return FunctionSpec.from_handler(name, handler, cwd=HANDLERS, **kw)

    specs = [
        fn("py_echo", f"{PY}:echo"),
        fn("py_size", f"{PY}:size"),
        fn("py_hold", f"{PY}:hold", concurrency=1, timeout=60),
        fn("py_touch", f"{PY}:touch"),
        fn("py_big", f"{PY}:big"),
    ]
    async with LambdaHost(specs, port=0, worker_output=subprocess.DEVNULL) as h:
        yield h


@pytest.fixture(scope="module")
async def client(host: LambdaHost) -> AsyncIterator[Any]:
    async with lambda_client(host.endpoint_url, max_pool_connections=32) as c:
        yield c


# -- API errors ------------------------------------------------------------------------------


async def test_unknown_function_is_404(client: Any) -> None:
    with pytest.raises(ClientError) as err:
        await invoke(client, "no-such-function", {})
    code, status, headers = error_code(err.value)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert err.value.response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function"
    )
    assert headers["x-amzn-errortype"] == "ResourceNotFoundException"


async def test_payload_limit_is_6291456_bytes(client: Any) -> None:
    limit = 6 * 1024 * 1024
    at_limit = b'"' + b"a" * (limit - 2) + b'"'
    _, body = await invoke(client, "py_size", Payload=at_limit)
    assert json.loads(body)["length"] == limit - 2
    with pytest.raises(ClientError) as err:
        await invoke(client, "py_size", Payload=at_limit + b" ")
    code, status, _ = error_code(err.value)
    assert (code, status) == ("RequestTooLargeException", 413)
    assert "6291456" in err.value.response["Error"]["Message"]


async def test_invalid_json_payload_is_400(client: Any) -> None:
    with pytest.raises(ClientError) as err:
        await invoke(client, "py_echo", Payload=b"{not json")
    assert error_code(err.value)[:2] == ("InvalidRequestContentException", 400)
    with pytest.raises(ClientError) as err:
        await invoke(client, "py_echo", {}, ClientContext="not base64 json!")
    assert error_code(err.value)[:2] == ("InvalidRequestContentException", 400)


async def test_response_over_the_limit_is_a_functionerror_code(client: Any) -> None:
    response, body = await invoke(client, "py_big", {"size": 6 * 1024 * 1024 + 200})
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"
    response, body = await invoke(client, "py_big", {"size": 6 * 1024 * 1024 - 2})
    assert "FunctionError" not in response
    assert len(body) == 6 * 1024 * 1024  # the JSON string: the size plus two quotes


async def test_init_timeout_kills_the_worker(tmp_path: Path) -> None:
    spec = FunctionSpec.from_handler("slow", f"{HANDLERS / 'slow_import.py'}:handler")
    async with LambdaHost([spec], init_timeout=0.5, worker_output=subprocess.DEVNULL) as small, \
            lambda_client(small.endpoint_url) as c:
        response, body = await invoke(c, "slow", {})
        [pid] = small.pids()["slow"] or [None]  # killed, maybe not reaped yet
        stats = small.stats()["slow"]
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(body)
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 0.50 seconds")
    assert stats.timeouts == 1 and stats.workers == 0
    assert pid is None or not alive(pid)


async def test_throttled_beyond_the_concurrency_limit(
    host: LambdaHost, client: Any, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    results: list[bytes] = []

    async def first() -> None:
        event = {"started": str(started), "release": str(release)}
        _, body = await invoke(client, "py_hold", event)
        results.append(body)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await wait_until(started.exists)
        with pytest.raises(ClientError) as err:
            await invoke(client, "py_hold", {"started": str(tmp_path / "x"), "release": ""})
        # An Event invocation is queued instead, and runs once the slot is free.
        later = tmp_path / "later"
        event = {"started": str(later), "release": str(release)}
        queued, _ = await invoke(client, "py_hold", event, InvocationType="Event")
        assert queued["StatusCode"] == 202
        assert not later.exists()
        release.touch()
        await wait_until(later.exists)
    code, status, headers = error_code(err.value)
    assert (code, status) == ("TooManyRequestsException", 429)
    assert err.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert int(headers["retry-after"]) >= 1
    assert not (tmp_path / "x").exists()  # the throttled call never reached the function
    assert json.loads(results[0])["released"] is True
    stats = host.stats()["py_hold"]
    assert stats.throttles == 1 and stats.workers_started == 1


async def test_concurrency_limit_bounds_workers(host: LambdaHost, tmp_path: Path) -> None:
    """Many concurrent calls to a limit-2 function: never more than 2 workers or in flight."""
    spec = FunctionSpec.from_handler("pair", f"{PY}:sleep", concurrency=2, cwd=HANDLERS)
    async with LambdaHost([spec], worker_output=subprocess.DEVNULL) as small, \
            lambda_client(small.endpoint_url, max_pool_connections=16) as c:
        codes: list[str] = []
        peak = 0

        async def call() -> None:
            try:
                await invoke(c, "pair", {"seconds": 0.3})
                codes.append("ok")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])

        async def watch() -> None:
            nonlocal peak
            while True:
                s = small.stats()["pair"]
                peak = max(peak, s.workers, s.in_flight)
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as calls:
                for _ in range(8):
                    calls.start_soon(call)
            tg.cancel_scope.cancel()
        stats = small.stats()["pair"]
    assert set(codes) <= {"ok", "TooManyRequestsException"}
    assert codes.count("ok") >= 2
    assert stats.throttles == codes.count("TooManyRequestsException")
    assert stats.workers_started <= 2 and peak <= 2


# -- invocation types ------------------------------------------------------------------------


async def test_event_invocation_runs_in_the_background(client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    response, body = await invoke(client, "py_touch", {"path": str(marker)}, InvocationType="Event")
    assert response["StatusCode"] == 202
    assert body == b""
    await wait_until(lambda: marker.exists() and marker.read_text() != "")
    assert marker.read_text() == response["ResponseMetadata"]["RequestId"]


async def test_dry_run_checks_without_invoking(host: LambdaHost, client: Any) -> None:
    before = host.stats()["py_echo"].invocations
    response, body = await invoke(client, "py_echo", {}, InvocationType="DryRun")
    assert body == b""
    assert response["StatusCode"] == 204
    assert host.stats()["py_echo"].invocations == before
    with pytest.raises(ClientError) as err:
        await invoke(client, "nope", {}, InvocationType="DryRun")
    assert error_code(err.value)[:2] == ("ResourceNotFoundException", 404)


# -- configuration ---------------------------------------------------------------------------


def test_bad_handler_specs_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "my.hooks.js").write_text("exports.handler = async () => 1;")
    bad = [
        "no-equals-sign",
        "x=missing.js:handler",
        f"x={tmp_path / 'my.hooks.js'}:handler",
        f"x={PY}:not-a-name",
        "x=some/dir:handler",
        "bad name=mod:handler",
    ]
    for text in bad:
        with pytest.raises(ConfigError):
            FunctionSpec.parse(text)
    with pytest.raises(ConfigError, match="concurrency"):
        FunctionSpec.parse(f"x={PY}:echo", concurrency=0)
    with pytest.raises(ConfigError, match="defined more than once"):
        LambdaHost([FunctionSpec.parse(f"x={PY}:echo"), FunctionSpec.parse(f"x={PY}:boom")])


def test_handler_spec_forms() -> None:
    js = FunctionSpec.parse(f"credit={CREDIT_SCORE}:handler")
    assert (js.runtime, js.task_root, js.handler) == (
        "node", CREDIT_SCORE.parent, "credit-score.handler")
    py = FunctionSpec.parse(f"p={PY}:echo", timeout=3, concurrency=2)
    assert (py.runtime, py.task_root, py.handler, py.timeout, py.concurrency) == (
        "python", HANDLERS, "py_handlers.echo", 3, 2)
    mod = FunctionSpec.from_handler("m", "lh_hookpkg.filters:handler", cwd=HANDLERS)
    assert (mod.runtime, mod.task_root, mod.handler) == (
        "python", HANDLERS, "lh_hookpkg.filters.handler")
