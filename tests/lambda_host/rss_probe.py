"""Peak memory of a local Lambda host under a flood: ``python rss_probe.py SCENARIO``.

Run by ``test_memory.py`` in a subprocess of its own, so that
``getrusage(RUSAGE_CHILDREN)`` covers exactly one host: this probe starts the host as its
only child, measures the host's resident size once it is warm (``baseline_kb``), sends
the flood from here, stops the host, and prints one JSON line with the largest resident
size among the host and its workers (``peak_kb``) and what the flood got back.

Scenarios (each holds the function's only concurrency slot first, or answers big):

- ``events``: 120 ``Event`` invokes of 1 MiB each, queue bound 16 MiB
- ``sync``: 24 synchronous invokes of 6 MB at once, all throttled
- ``response``: the function answers 100 MiB through its own Runtime API
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
HANDLERS = HERE / "handlers"
MIB = 1024 * 1024
QUEUE_BYTES = 16 * MIB

HOST = """
import inspect, subprocess, sys
from dispatcher.lambda_host import FunctionSpec, LambdaHost, serve
handler, concurrency, queue = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spec = FunctionSpec.from_handler("fn", handler, concurrency=concurrency, timeout=120)
options = {"worker_output": subprocess.DEVNULL}
if "max_queued_event_bytes" in inspect.signature(LambdaHost).parameters:
    options["max_queued_event_bytes"] = queue
serve([spec], port=0, **options)
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def post(port: int, body: bytes, invocation: str = "RequestResponse") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", "/2015-03-31/functions/fn/invocations", body=body,
                           headers={"X-Amz-Invocation-Type": invocation})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError as exc:  # a server that refused early may close before reading it all
        return 0, str(exc).encode()
    finally:
        connection.close()


def json_string(size: int) -> bytes:
    """A JSON document (a string) of exactly ``size`` bytes."""
    return b'"' + b"a" * (size - 2) + b'"'


def hold_slot(port: int, work: Path) -> threading.Thread:
    """Occupy the function's one concurrency slot until ``work / 'release'`` exists."""
    started, release = work / "started", work / "release"
    event = json.dumps({"started": str(started), "release": str(release)}).encode()
    thread = threading.Thread(target=post, args=(port, event), daemon=True)
    thread.start()
    while not started.exists():
        threading.Event().wait(0.01)
    return thread


def flood(scenario: str, port: int, work: Path) -> dict[str, Any]:
    if scenario == "events":
        holder = hold_slot(port, work)
        statuses = [post(port, json_string(MIB), "Event")[0] for _ in range(120)]
        (work / "release").touch()
        holder.join()
        return {"statuses": statuses}
    if scenario == "sync":
        holder = hold_slot(port, work)
        body = json_string(6 * MIB)
        with ThreadPoolExecutor(24) as pool:
            statuses = [s for s, _ in pool.map(lambda _: post(port, body), range(24))]
        (work / "release").touch()
        holder.join()
        return {"statuses": statuses}
    status, answer = post(port, json.dumps({"mb": 100}).encode())
    return {"statuses": [status], "answer": json.loads(answer)}


def main(scenario: str) -> None:
    handler = {"response": "stream_response"}.get(scenario, "hold")
    command = [sys.executable, "-c", HOST, f"{HANDLERS / 'py_handlers.py'}:{handler}",
               "1", str(QUEUE_BYTES)]
    repo = HERE.parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    host = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert host.stdout is not None
    url = host.stdout.readline().split("listening on ")[1].split()[0]
    port = int(url.rsplit(":", 1)[1])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Warm up (a worker, the request paths), then measure the host at rest.
        (work / "w").touch()
        warm = {"started": str(work / "w"), "release": str(work / "w"), "mb": 0}
        post(port, json.dumps(warm).encode())
        baseline = rss_kb(host.pid)
        result = flood(scenario, port, work)
    host.send_signal(signal.SIGTERM)
    host.wait(timeout=60)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, **result}))


if __name__ == "__main__":
    main(sys.argv[1])
