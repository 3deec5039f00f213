"""Whom the local Lambda host answers (issue 12, finding 5).

A worker's Runtime API answers that worker only; the Invoke API answers programs on this
machine, never a web page; ``--host`` elsewhere than loopback warns. Every attack is sent
by a raw HTTP client from the test process, as any other local process could send it,
to ports found the way such a process would find them (in /proc).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from dispatcher.lambda_host import FunctionSpec, LambdaHost
from dispatcher.lambda_host.callers import CallerCheck, host_name
from tests.lambda_host.conftest import CREDIT_SCORE, HANDLERS, REPO, lambda_client, wait_until

pytestmark = pytest.mark.anyio

PY = HANDLERS / "py_handlers.py"
PII = {"Endpoints": {"ep-1": {"ChannelType": "SMS", "Address": "+12065550100"}}}


@pytest.fixture(scope="module")
async def host() -> AsyncIterator[LambdaHost]:
    def fn(name: str, handler: str, **kw: Any) -> FunctionSpec:
        return FunctionSpec.from_handler(name, handler, cwd=HANDLERS, **kw)

    specs = [fn("touch", f"{PY}:touch"), fn("credit", f"{CREDIT_SCORE}:handler")]
    async with LambdaHost(specs, worker_output=subprocess.DEVNULL) as h:
        yield h


@pytest.fixture(scope="module")
async def client(host: LambdaHost) -> AsyncIterator[Any]:
    async with lambda_client(host.endpoint_url) as c:
        yield c


async def invoke(client: Any, name: str, event: Any) -> Any:
    response = await client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in response
    return json.loads(await response["Payload"].read())


def listening_ports() -> set[int]:
    """TCP ports this process listens on, from /proc/net/tcp (as a local process sees)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@asynccontextmanager
async def one_worker(
    handler: str, event: Any, **kw: Any
) -> AsyncIterator[tuple[int, Any, LambdaHost]]:
    """A host of one function with one warm worker, waiting in ``next``: (the worker's
    Runtime API port, found as a neighbour finds it, a client, the host)."""
    spec = FunctionSpec.from_handler("fn", f"{PY}:{handler}", cwd=HANDLERS, **kw)
    async with LambdaHost([spec], worker_output=subprocess.DEVNULL) as solo, \
            lambda_client(solo.endpoint_url) as client:
        before = listening_ports()
        if event is not None:
            await invoke(client, "fn", event)
            [port] = listening_ports() - before
        else:
            port = 0
        yield port, client, solo


def raw(
    port: int, method: str, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None, *, host: str | None = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """One request from a plain HTTP client; ``host=None`` sends no Host header."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


# -- the Runtime API: only the worker it belongs to ------------------------------------------


async def test_another_process_cannot_take_a_workers_event() -> None:
    """An idle worker waits in ``next``; a neighbour asks for the next event too, and
    would answer it with a forged result. It gets 403 and nothing else."""
    stolen: list[tuple[int, bytes]] = []

    def steal(port: int) -> None:
        status, headers, body = raw(port, "GET", "/2018-06-01/runtime/invocation/next")
        stolen.append((status, body))
        if status == 200:  # what the old host allowed: answer in the worker's place
            request_id = headers["Lambda-Runtime-Aws-Request-Id"]
            forged = json.dumps({"ep-1": {"BodyOverride": "forged text"}}).encode()
            raw(port, "POST", f"/2018-06-01/runtime/invocation/{request_id}/response", forged)

    async with one_worker("echo", {}) as (port, client, solo):
        results = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, steal, port)
            for _ in range(2):  # the worker takes one event; the neighbour would take the next
                results.append(await invoke(client, "fn", PII))
        stats = solo.stats()["fn"]
    [(status, body)] = stolen
    assert status == 403
    assert b"+12065550100" not in body
    assert json.loads(body)["errorType"] == "AccessDeniedException"
    assert [r["event"] for r in results] == [PII, PII]
    assert stats.workers_started == 1 and stats.errors == 0


async def test_runtime_api_refuses_requests_without_the_workers_secret() -> None:
    paths = [
        ("GET", "/2018-06-01/runtime/invocation/next"),
        ("GET", "/not-the-secret/2018-06-01/runtime/invocation/next"),
        ("GET", "//2018-06-01/runtime/invocation/next"),
        ("GET", "/"),
        ("POST", "/2018-06-01/runtime/init/error"),
        ("POST", "/x/2018-06-01/runtime/init/error"),
    ]
    async with one_worker("echo", {}) as (port, client, solo):
        for method, path in paths:
            status, _, body = await anyio.to_thread.run_sync(
                lambda: raw(port, method, path, b"{}" if method == "POST" else None)  # noqa: B023
            )
            assert status == 403, (path, body)
        # Nothing was taken, completed or marked as an init error: the worker still
        # answers, with the real result.
        assert (await invoke(client, "fn", PII))["event"] == PII
        assert solo.stats()["fn"].workers_started == 1


async def test_forged_response_for_a_running_invocation_is_refused(tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    outcome: list[Any] = []
    async with one_worker("hold_request", None, timeout=60) as (_, client, _solo):
        before = listening_ports()

        async def call() -> None:
            event = {"started": str(started), "release": str(release)}
            outcome.append(await invoke(client, "fn", event))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_until(lambda: started.exists() and started.read_text() != "")
            request_id = started.read_text()
            [port] = listening_ports() - before
            forged = json.dumps({"forged": True}).encode()
            for path in (f"/2018-06-01/runtime/invocation/{request_id}/response",
                         f"/guess/2018-06-01/runtime/invocation/{request_id}/response",
                         f"/2018-06-01/runtime/invocation/{request_id}/error"):
                status, _, _ = await anyio.to_thread.run_sync(
                    lambda: raw(port, "POST", path, forged)  # noqa: B023
                )
                assert status == 403
            release.touch()
    assert outcome == [{"released": True, "requestId": request_id}]


# -- the Invoke API: programs on this machine, not web pages ----------------------------------

REFUSED = [
    ({"Host": "evil.example"}, "DNS rebinding: the page's own name"),
    ({"Host": "evil.example:9001"}, "with a port"),
    ({"Host": "127.0.0.1.evil.example"}, "a name that starts like an address"),
    ({"Host": "localhost.evil.example:9001"}, "a name that starts like localhost"),
    ({"Host": "[::2]:9001"}, "an IPv6 address that is not loopback"),
    ({"Host": "10.0.0.5:9001"}, "another address"),
    ({"Host": ""}, "empty"),
    ({"Host": None}, "no Host header at all"),
    ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, "CORS-simple POST"),
    ({"Origin": "null", "Content-Type": "text/plain"}, "a sandboxed page"),
    ({"Sec-Fetch-Site": "cross-site"}, "a browser's fetch metadata"),
]


@pytest.mark.parametrize(("headers", "why"), REFUSED, ids=[why for _, why in REFUSED])
async def test_invoke_api_refuses_web_pages(
    host: LambdaHost, tmp_path: Path, headers: dict[str, str | None], why: str
) -> None:
    marker = tmp_path / "ran"
    before = host.stats()["touch"].invocations
    host_header = headers.pop("Host", f"127.0.0.1:{host.port}")
    body = json.dumps({"path": str(marker)}).encode()
    status, response_headers, answer = await anyio.to_thread.run_sync(
        lambda: raw(host.port, "POST", "/2015-03-31/functions/touch/invocations", body,
                    {k: v for k, v in headers.items() if v is not None}, host=host_header)
    )
    if host_header is None:  # HTTP/1.1 requires Host: aiohttp's parser refuses it first
        assert status == 400, answer
    else:
        assert status == 403, answer
        assert response_headers["X-Amzn-ErrorType"] == "AccessDeniedException"
        error = json.loads(answer)
        assert error["Type"] == "User" and "refuse" in error["message"]
    assert not marker.exists()
    assert host.stats()["touch"].invocations == before


@pytest.mark.parametrize("host_header", [
    "127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "LOCALHOST", "localhost.",
    "127.8.9.10:{port}", "[::1]:{port}", "[::1]",
])
async def test_invoke_api_accepts_loopback_hosts(
    host: LambdaHost, tmp_path: Path, host_header: str
) -> None:
    marker = tmp_path / "ran"
    body = json.dumps({"path": str(marker)}).encode()
    status, _, answer = await anyio.to_thread.run_sync(
        lambda: raw(host.port, "POST", "/2015-03-31/functions/touch/invocations", body,
                    host=host_header.format(port=host.port))
    )
    assert status == 200, answer
    assert marker.exists()


def test_caller_check_for_other_bind_addresses() -> None:
    """Serving other machines (``--host``) accepts that address; a wildcard bind any IP
    literal, never a name (rebinding needs a name)."""
    explicit = CallerCheck("192.0.2.7")
    assert explicit.refusal({"Host": "192.0.2.7:9001"}) is None
    assert explicit.refusal({"Host": "127.0.0.1:9001"}) is None
    assert explicit.refusal({"Host": "192.0.2.8:9001"}) is not None
    wildcard = CallerCheck("0.0.0.0")
    assert wildcard.refusal({"Host": "192.0.2.8:9001"}) is None
    assert wildcard.refusal({"Host": "[2001:db8::1]:9001"}) is None
    assert wildcard.refusal({"Host": "rebound.example:9001"}) is not None
    assert wildcard.refusal({"Host": "192.0.2.8", "Origin": "http://x"}) is not None
    assert host_name("[::1]:80") == "::1" and host_name("::1") is None
    assert host_name("a:b") is None and host_name("[::1]x") is None


async def test_sdks_and_the_dispatchers_transport_still_get_in(
    host: LambdaHost, node: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's Node.js hook, verbatim, through every client the project meets."""
    import boto3
    from botocore.config import Config

    from dispatcher.hooks.aws_lambda import LambdaTransport

    def check(result: Any) -> None:
        [score] = result["ep-1"]["Attributes"]["CreditScore"]
        assert 650 <= score < 850 and result["ep-1"]["Address"] == "+12065550100"

    def with_boto3() -> Any:
        lam = boto3.client("lambda", region_name="us-east-1", endpoint_url=host.endpoint_url,
                           aws_access_key_id="x", aws_secret_access_key="x",
                           config=Config(retries={"total_max_attempts": 1}))
        response = lam.invoke(FunctionName="credit", Payload=json.dumps(PII).encode())
        assert "FunctionError" not in response
        return json.loads(response["Payload"].read())

    check(await anyio.to_thread.run_sync(with_boto3))
    async with lambda_client(host.endpoint_url) as aio:
        check(await invoke(aio, "credit", PII))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")  # the botocore path signs; nothing checks
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    for kind in ("lean", "botocore"):
        async with LambdaTransport("credit", region="us-east-1", endpoint_url=host.endpoint_url,
                                   client=kind) as transport:
            check(await transport.invoke(json.dumps(PII).encode()))

    if shutil.which("aws") is None:
        pytest.skip("the AWS CLI is not installed (boto3, aiobotocore and the transport passed)")
    aws = await anyio.run_process(["aws", "--version"], check=False)
    version_2 = (aws.stdout + aws.stderr).startswith(b"aws-cli/2")
    out = tmp_path / "out.json"
    command = ["aws", "lambda", "invoke", "--function-name", "credit", "--payload",
               json.dumps(PII), "--endpoint-url", host.endpoint_url, "--region", "us-east-1",
               *(["--cli-binary-format", "raw-in-base64-out"] if version_2 else []), str(out)]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    result = await anyio.run_process(command, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["StatusCode"] == 200
    check(json.loads(out.read_text()))


def test_a_host_elsewhere_than_loopback_is_warned_about() -> None:
    """192.0.2.1 (TEST-NET) is on no interface: the bind fails after the warning."""
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "lambda", "serve", "--host", "192.0.2.1",
         "--port", "0", f"py={PY}:echo"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("warning: the Lambda host will listen on 192.0.2.1, not loopback")
    assert "no authentication" in lines[0]
    assert result.returncode == 2 and lines[1].startswith("dispatcher: cannot listen on")
