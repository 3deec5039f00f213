"""The Node.js runtime client shipped in the package (``node_runtime.js``), issue 15.

Node.js hooks run wherever ``node`` is, with nothing to install: these tests run whenever
it is on the PATH (and fail in CI without it). The expected results are what the
official client, ``aws-lambda-ric`` 3.3.0 from npm, produced for the same handlers
under the same host (recorded side by side; see docs/lambda-host.md), with one
deliberate difference: an async handler whose promise never settles is the error
``Runtime.NodeJsExit``, as in the official client's current source and in Lambda's
current runtimes, where 3.3.0 answered ``null``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from dispatcher.lambda_host import FunctionSpec, LambdaHost
from dispatcher.lambda_host.worker import NODE_RUNTIME
from tests.lambda_host.conftest import CREDIT_SCORE, HANDLERS, REPO, lambda_client

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("node")]

NODE = HANDLERS / "node"
CASES = NODE / "cases.js"
EVENT = {"k": "v"}


def error(error_type: str, message: str, frame: str | None = None) -> dict[str, Any]:
    """An Error as the runtime reports it; ``frame`` is the handler's own stack line."""
    expected: dict[str, Any] = {"errorType": error_type, "errorMessage": message}
    expected["trace"] = [f"{error_type}: {message}"] + ([frame] if frame else [])
    return expected


def value(error_type: str, message: str) -> dict[str, Any]:
    """A thrown or passed non-Error value: its type and text, no trace."""
    return {"errorType": error_type, "errorMessage": message, "trace": []}


def at(name: str, line: int, column: int) -> str:
    return f"    at exports.{name} [as handler] ({CASES}:{line}:{column})"


# handler -> (X-Amz-Function-Error, the payload) as the official client answered.
RESULTS: dict[str, tuple[str | None, Any]] = {
    "asyncValue": (None, {"ok": True, "event": EVENT}),
    "syncReturnIgnored": (None, None),
    "callbackValue": (None, {"via": "callback"}),
    "callbackTypeError": ("Unhandled", error("TypeError", "cb type",
                                             at("callbackTypeError", 16, 68))),
    "callbackString": ("Unhandled", value("string", "plain string error")),
    "callbackObject": ("Unhandled", value("object", "[object Object]")),
    "throwSync": ("Unhandled", error("RangeError", "sync range", at("throwSync", 20, 9))),
    "throwCustom": ("Unhandled", error("MyError", "custom", at("throwCustom", 23, 9))),
    "rejectString": ("Unhandled", value("string", "rejected string")),
    "rejectUndefined": ("Unhandled", value("string", "handled")),
    "succeed": (None, {"s": 1}),
    "fail": ("Unhandled", error("Error", "ctx fail", at("fail", 30, 49))),
    "failEmpty": ("Unhandled", value("string", "handled")),
    "done": (None, "done-value"),
    "doneError": ("Unhandled", value("string", "done-error")),
    "callbackTwice": (None, 1),
    "callbackWaits": (None, {"timer": "ran"}),
    "callbackNoWait": (None, {"timer": "pending"}),
    "callbackNever": (None, None),
    "circular": ("Unhandled", error("Error", "Unable to stringify response body")),
    "undefinedResult": (None, None),
    "unhandledRejection": ("Unhandled", error("Runtime.UnhandledPromiseRejection",
                                              "Error: floating")),
    "deleteChar": ("Unhandled", error("Error", "bad%7Fchar", at("deleteChar", 85, 9))),
    "nested.deeper.fn": (None, "nested-ok"),
    "nested": ("Unhandled", error("Runtime.HandlerNotFound", "cases.nested is not a function")),
    "notAFunction": ("Unhandled", error("Runtime.HandlerNotFound",
                                        "cases.notAFunction is not a function")),
    "nope": ("Unhandled", error("Runtime.HandlerNotFound",
                                "cases.nope is undefined or not exported")),
    "streamed": (None, "hello world"),
}

MODULES: dict[str, tuple[str | None, Any]] = {
    "common.cjs:handler": (None, {"cjs": True}),
    "esm_pkg/module_js.js:handler": (None, {"esm": "type-module"}),
    "syntax_error.js:handler": ("Unhandled", error("Runtime.UserCodeSyntaxError",
                                                   "SyntaxError: Unexpected token ';'")),
    "throws_at_load.js:handler": ("Unhandled", error(
        "Error", "load failure", f"    at Object.<anonymous> ({NODE}/throws_at_load.js:1:7)")),
    "top_level_await.mjs:handler": ("Unhandled", error(
        "Error", "tla failure", f"    at file://{NODE}/top_level_await.mjs:1:22")),
}


def _name(handler: str) -> str:
    return "f" + "".join(c if c.isalnum() else "_" for c in handler)[:60]


def _specs() -> list[FunctionSpec]:
    specs = [FunctionSpec.from_handler(_name(h), f"{CASES}:{h}", timeout=10)
             for h in [*RESULTS, "context", "uncaughtInTimer"]]
    specs += [FunctionSpec.from_handler(_name(m), f"{NODE / m}", timeout=10)
              for m in [*MODULES, "requires_missing.js:handler",
                        "esm_pkg/commonjs_in_esm.js:handler"]]
    return specs


@pytest.fixture(scope="module")
async def host() -> AsyncIterator[LambdaHost]:
    async with LambdaHost(_specs(), worker_output=subprocess.DEVNULL) as h:
        yield h


@pytest.fixture(scope="module")
async def client(host: LambdaHost) -> AsyncIterator[Any]:
    async with lambda_client(host.endpoint_url, max_pool_connections=16) as c:
        yield c


def _user_frames(payload: Any) -> Any:
    """The trace without the runtime's own frames (which name its files)."""
    if isinstance(payload, dict) and isinstance(payload.get("trace"), list):
        trace = payload["trace"]
        payload = {**payload, "trace": trace[:1] + [t for t in trace[1:] if str(NODE) in t]}
    return payload


async def invoke(client: Any, name: str, **kw: Any) -> tuple[str | None, Any]:
    response = await client.invoke(FunctionName=name, Payload=json.dumps(EVENT).encode(), **kw)
    body = await response["Payload"].read()
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        payload = body.decode()
    return response.get("FunctionError"), _user_frames(payload)


@pytest.mark.parametrize("handler", list(RESULTS))
async def test_programming_models_as_the_official_client(client: Any, handler: str) -> None:
    assert await invoke(client, _name(handler)) == RESULTS[handler]
    if RESULTS[handler][0] is None:  # a warm worker answers the same again
        assert await invoke(client, _name(handler)) == RESULTS[handler]


@pytest.mark.parametrize("module", list(MODULES))
async def test_module_forms_and_init_errors(client: Any, module: str) -> None:
    assert await invoke(client, _name(module)) == MODULES[module]


async def test_init_errors_that_name_paths(client: Any) -> None:
    kind, payload = await invoke(client, _name("requires_missing.js:handler"))
    assert kind == "Unhandled" and payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"].startswith(
        f"Error: Cannot find module 'no-such-package-xyz'\nRequire stack:\n- "
        f"{NODE}/requires_missing.js\n")
    kind, payload = await invoke(client, _name("esm_pkg/commonjs_in_esm.js:handler"))
    assert kind == "Unhandled" and payload["errorType"] == "ReferenceError"
    assert payload["errorMessage"].startswith("exports is not defined in ES module scope")


async def test_the_context_object(host: LambdaHost, client: Any) -> None:
    name = _name("context")
    custom = base64.b64encode(json.dumps({"custom": {"a": 1}}).encode()).decode()
    kind, ctx = await invoke(client, name, ClientContext=custom)
    assert kind is None
    assert ctx.pop("keys") == sorted([
        "awsRequestId", "callbackWaitsForEmptyEventLoop", "clientContext", "done", "fail",
        "functionName", "functionVersion", "getRemainingTimeInMillis", "identity",
        "invokedFunctionArn", "logGroupName", "logStreamName", "memoryLimitInMB", "succeed",
        "tenantId"])
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx.pop("logStreamName"))
    assert 0 < ctx.pop("remainingMs") <= 10_000
    assert ctx.pop("traceId").startswith("Root=1-")
    request_id = ctx.pop("awsRequestId")
    assert len(request_id) == 36
    assert ctx == {
        "functionName": name, "functionVersion": "$LATEST", "memoryLimitInMB": "128",
        "logGroupName": f"/aws/lambda/{name}", "clientContext": {"custom": {"a": 1}},
        "invokedFunctionArn": host.function_arn(name), "waits": True,
        "streamify": "function",
    }


async def test_an_uncaught_exception_fails_the_invocation_and_the_worker(
    host: LambdaHost, client: Any
) -> None:
    name = _name("uncaughtInTimer")
    for _ in range(2):  # the worker exits (129); the next invocation gets a fresh one
        kind, payload = await invoke(client, name)
        assert kind == "Unhandled"
        assert payload["errorType"] == "Error" and payload["errorMessage"] == "timer boom"
        assert any("Timeout._onTimeout" in line for line in payload["trace"])
    assert host.stats()[name].workers_started == 2


async def test_an_async_handler_that_never_settles_is_an_error(client: Any) -> None:
    """Lambda's current runtimes (and the official client's source since 3.3.0)."""
    name = _name("asyncNever")
    spec = FunctionSpec.from_handler(name, f"{CASES}:asyncNever", timeout=10)
    async with LambdaHost([spec], worker_output=subprocess.DEVNULL) as host, \
            lambda_client(host.endpoint_url) as c:
        kind, payload = await invoke(c, name)
    assert kind == "Unhandled" and payload["errorType"] == "Runtime.NodeJsExit"


@pytest.mark.parametrize("module_type", ["module", "commonjs"])
async def test_the_runtime_works_inside_any_package_type(tmp_path: Path, module_type: str) -> None:
    """A virtualenv inside a Node project with "type": "module": Node then reads the
    runtime's own .js files as ES modules. They are written to work either way."""
    (tmp_path / "package.json").write_text(json.dumps({"type": module_type}))
    for part in NODE_RUNTIME.parent.glob("node_*.js"):
        shutil.copy(part, tmp_path / part.name)
    specs = [FunctionSpec.from_handler("credit", f"{CREDIT_SCORE}:handler"),
             FunctionSpec.from_handler("esm", f"{HANDLERS / 'esm_handler.mjs'}:handler"),
             FunctionSpec.from_handler("boom", f"{CASES}:throwCustom")]
    async with LambdaHost(specs, node_runtime=tmp_path / "node_runtime.js",
                          worker_output=subprocess.DEVNULL) as host, \
            lambda_client(host.endpoint_url) as c:
        response = await c.invoke(FunctionName="credit",
                                  Payload=b'{"Endpoints": {"e": {"Address": "a"}}}')
        scored = json.loads(await response["Payload"].read())
        response = await c.invoke(FunctionName="esm", Payload=b'{"Endpoints": {}}')
        esm = json.loads(await response["Payload"].read())
        kind, payload = await invoke(c, "boom")
    assert 650 <= scored["e"]["Attributes"]["CreditScore"][0] < 850
    assert esm == {"esm": True, "endpoints": 0}
    assert (kind, payload["errorType"]) == ("Unhandled", "MyError")


# -- the Runtime API as the runtime speaks it --------------------------------------------------

Request = tuple[str, str, dict[str, str], bytes]


async def recorded_run(handler: str, events: list[dict[str, str]]) -> list[Request]:
    """Run the runtime for ``cases.HANDLER`` against a recording Runtime API that hands
    out one event per entry of ``events`` (extra headers), then 410 Gone (the runtime
    then reports the failed ``next`` and exits). Returns every request it made."""
    seen: list[Request] = []
    pending = list(events)

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path, dict(request.headers), await request.read()))
        if request.method == "POST":
            return web.json_response({"status": "OK"}, status=202)
        if not pending:
            return web.Response(status=410)
        deadline = int(time.time() * 1000) + 5000
        return web.json_response(EVENT, headers={
            "Lambda-Runtime-Aws-Request-Id": f"req-{len(seen)}",
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:1:function:f",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            **pending.pop(0)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        await web.SockSite(runner, sock).start()
        env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{sock.getsockname()[1]}/s3cr3t",
               "AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
        try:
            process = await anyio.open_process(
                ["node", str(NODE_RUNTIME), f"cases.{handler}"], cwd=NODE, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with anyio.fail_after(30):
                await process.wait()
        finally:
            await runner.cleanup()
    return seen


async def test_the_runtime_speaks_the_runtime_api() -> None:
    """The secret path prefix on every request; the deadline, Cognito identity and client
    context headers in the context; the error type header with an error."""
    seen = await recorded_run("context", [{
        "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId": "id-1"}',
        "Lambda-Runtime-Client-Context": '{"custom": {"c": 2}}'}])
    assert all(path.startswith("/s3cr3t/2018-06-01/runtime/") for _, path, _, _ in seen)
    [method, path, _, body] = seen[1]
    assert (method, path) == ("POST", "/s3cr3t/2018-06-01/runtime/invocation/req-1/response")
    ctx = json.loads(body)
    assert ctx["identity"] == {"cognitoIdentityId": "id-1"}
    assert ctx["clientContext"] == {"custom": {"c": 2}}
    assert ctx["memoryLimitInMB"] == "256" and 0 < ctx["remainingMs"] <= 5000

    seen = await recorded_run("throwCustom", [{}])
    [method, path, headers, body] = seen[1]
    assert (method, path) == ("POST", "/s3cr3t/2018-06-01/runtime/invocation/req-1/error")
    assert headers["Lambda-Runtime-Function-Error-Type"] == "MyError"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["errorType"] == "MyError"


# -- installation -------------------------------------------------------------------------------


def test_the_runtime_ships_as_package_data_with_nothing_to_install() -> None:
    """`pip install .` carries the runtime (pyproject's package-data globs match every
    file of it) and there is no npm package left to install."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["dispatcher"]
    package = REPO / "dispatcher"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    runtime = set(NODE_RUNTIME.parent.glob("node_*.js"))
    assert NODE_RUNTIME in runtime and len(runtime) == 2
    assert runtime <= shipped
    assert not (NODE_RUNTIME.parent / "package.json").exists()
    assert not (NODE_RUNTIME.parent / "node_modules").exists()


def test_without_node_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing there: no node
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0",
         f"credit={CREDIT_SCORE}:handler"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dispatcher: Node.js handlers need Node.js: 'node' is not on the PATH "
        "(install Node.js 18 or later)"
    ]
    assert result.stdout == ""
