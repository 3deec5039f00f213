"""Nothing a handler starts outlives its worker or the host (issue 12, finding 5).

Handlers start a child (``sleep 1000``) and an orphan (a ``sleep 1000`` whose parent
shell has already exited, so it was reparented): both stay in the worker's process
group, which the host kills whenever a worker ends, however it ends. Survivors are
looked for in /proc, by a marker in their environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from dispatcher.lambda_host import FunctionSpec, LambdaHost
from tests.lambda_host.conftest import (
    HANDLERS,
    REPO,
    lambda_client,
    marked,
    process_group,
    wait_until,
)

pytestmark = pytest.mark.anyio

HANDLER = {"python": f"{HANDLERS / 'py_handlers.py'}:spawn",
           "node": f"{HANDLERS / 'node' / 'cases.js'}:spawn"}


def spec(runtime: str, marker: str, **kw: Any) -> FunctionSpec:
    return FunctionSpec.from_handler("spawn", HANDLER[runtime], cwd=HANDLERS,
                                     environment={"LH_TEST_MARKER": marker}, **kw)


async def spawn(client: Any, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    response = await client.invoke(FunctionName="spawn", Payload=json.dumps(event).encode())
    return response, json.loads(await response["Payload"].read())


@pytest.fixture(params=["python", "node"])
def runtime(request: pytest.FixtureRequest) -> str:
    if request.param == "node":
        request.getfixturevalue("node")
    return str(request.param)


async def test_a_worker_that_exits_takes_its_processes_along(runtime: str) -> None:
    marker = uuid.uuid4().hex
    async with LambdaHost([spec(runtime, marker)], worker_output=subprocess.DEVNULL) as host, \
            lambda_client(host.endpoint_url) as client:
        _, started = await spawn(client, {})
        group = [started["pid"], started["child"], started["orphan"]]
        assert {process_group(pid) for pid in group} == {started["pid"]}
        assert set(group) <= set(marked(marker))
        # The worker exits on its own after starting more: the host reaps it and kills
        # its group, while it keeps serving.
        response, error = await spawn(client, {"exit": True})
        assert response["FunctionError"] == "Unhandled"
        assert error["errorMessage"].endswith("Runtime exited with error: exit status 3")
        await wait_until(lambda: not marked(marker), within=10)
        _, again = await spawn(client, {})
        assert again["pid"] not in group
    # The new worker's group was SIGKILLed as the host stopped; a killed child or orphan
    # may take a moment (on a loaded machine) to leave the process table.
    await wait_until(lambda: not marked(marker), within=10)


async def test_stopping_the_host_ends_every_group(runtime: str) -> None:
    marker = uuid.uuid4().hex
    async with LambdaHost([spec(runtime, marker, concurrency=2)],
                          worker_output=subprocess.DEVNULL) as host, \
            lambda_client(host.endpoint_url) as client:
        async with anyio.create_task_group() as tg:  # two workers, each with two sleeps
            for _ in range(2):
                tg.start_soon(spawn, client, {})
        assert len(marked(marker)) >= 4
    assert marked(marker) == []  # the host waits until every group is gone


async def test_a_timed_out_worker_takes_its_processes_along() -> None:
    marker = uuid.uuid4().hex
    slow = FunctionSpec.from_handler("slow", f"{HANDLERS / 'py_handlers.py'}:sleep",
                                     timeout=1, environment={"LH_TEST_MARKER": marker})
    fast = spec("python", marker)
    async with LambdaHost([slow, fast], worker_output=subprocess.DEVNULL) as host, \
            lambda_client(host.endpoint_url) as client:
        _, started = await spawn(client, {})
        response = await client.invoke(FunctionName="slow", Payload=b'{"seconds": 30}')
        assert response["FunctionError"] == "Unhandled"
        # Only the spawn worker's group is left (the worker, its child and orphan).
        await wait_until(lambda: {process_group(p) for p in marked(marker)} == {started["pid"]},
                         within=10)
    assert marked(marker) == []


async def test_a_killed_host_leaves_nothing_behind(tmp_path: Path, node: None) -> None:
    """SIGKILL gives the host no chance to clean up: each group's watchdog sees the
    host's lifeline pipe close and kills its group, children and orphans included."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the test reads /proc")
    marker = uuid.uuid4().hex
    env = {**os.environ, "LH_TEST_MARKER": marker}
    command = [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0",
               "--worker-logs", "discard", f"py={HANDLER['python']}", f"js={HANDLER['node']}"]
    process = await anyio.open_process(command, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        url = line.decode().split("listening on ")[1].split()[0]
        async with lambda_client(url) as client:
            started = []
            for name in ("py", "js"):
                response = await client.invoke(FunctionName=name, Payload=b"{}")
                started.append(json.loads(await response["Payload"].read()))
        leaders = {s["pid"] for s in started}
        assert {process_group(p) for s in started for p in s.values()} == leaders
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await wait_until(lambda: not marked(marker), within=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
