"""Real hook latency: a Lambda Invoke API that answers each event after 100 ms.

The dispatcher with **default settings** (no ``hook_concurrency``: adaptive) against
the naive script (boto3 ``invoke`` from a ``ThreadPoolExecutor(32)``, ``naive.py``) on
the same segment and the same server, in the same run; the ratio of their endpoints/s
is printed beside its target (>= 2). The server runs in a separate process, echoes the
event's ``Endpoints`` (a FILTER hook that keeps everything) after ``--latency`` seconds,
and with ``--limit N`` throttles above N concurrent executions as Lambda does (429
``TooManyRequestsException``); ``GET /stats`` returns what it saw.

    python benchmarks/bench_latency.py [--endpoints 100000] [--latency 0.1] [--repeat 2]
    python benchmarks/bench_latency.py --limit 64   # also: vs a function throttling above 64

``benchmarks/run.py`` runs the 100 ms scenario as ``lambda_100ms_default`` beside
``naive_100ms``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(HERE.parent))

TARGET = 2.0
"""Dispatcher (default settings) / naive script, endpoints/s (issue 14, target 3)."""


# ---------------------------------------------------------------------------------------
# The server (separate process)
# ---------------------------------------------------------------------------------------


def serve(port: int, latency: float, limit: int | None) -> None:
    """Run the slow echo Invoke API until killed; prints ``PORT <n>`` once listening."""
    import asyncio

    import orjson
    from aiohttp import web

    stats = {"accepted": 0, "throttled": 0, "running": 0, "max_running": 0}
    throttle_body = orjson.dumps({
        "Type": "User", "message": "Rate Exceeded.",
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    })  # fmt: skip

    async def invoke(request: web.Request) -> web.Response:
        body = await request.read()
        if limit is not None and stats["running"] >= limit:
            stats["throttled"] += 1
            return web.Response(status=429, body=throttle_body, headers={
                "X-Amzn-ErrorType": "TooManyRequestsException",
                "Content-Type": "application/json"})  # fmt: skip
        stats["running"] += 1
        stats["max_running"] = max(stats["max_running"], stats["running"])
        try:
            await asyncio.sleep(latency)
        finally:
            stats["running"] -= 1
        stats["accepted"] += 1
        return web.Response(
            body=orjson.dumps(orjson.loads(body).get("Endpoints", {})),
            content_type="application/json",
            headers={"X-Amz-Executed-Version": "$LATEST"},
        )

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def main() -> None:
        app = web.Application(client_max_size=7 * 1024 * 1024)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
        app.router.add_get("/stats", get_stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        print(f"PORT {sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class LatencyServer:
    """The slow server in a child process: ``with LatencyServer(0.1) as url: ...``."""

    def __init__(self, latency: float = 0.1, *, limit: int | None = None) -> None:
        self.latency = latency
        self.limit = limit
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> str:
        args = [sys.executable, str(Path(__file__).resolve()), "--serve", "0",
                "--latency", str(self.latency)]  # fmt: skip
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._proc.kill()
            raise RuntimeError(f"latency server failed to start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self.url

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            result: dict[str, int] = json.loads(response.read())
        return result

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# ---------------------------------------------------------------------------------------
# Standalone
# ---------------------------------------------------------------------------------------


def _rate(results: list[dict[str, Any]]) -> float:
    return statistics.median(r["endpoints"] / r["seconds"] for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--limit", type=int, help="also run against a server throttling above N")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "dispatcher-bench")  # fmt: skip
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.latency, args.limit)
        return 0

    from benchmarks.gen import write_segment
    from benchmarks.run import child, measure

    args.workdir.mkdir(parents=True, exist_ok=True)
    segment = str(write_segment(args.workdir / f"segment-{args.endpoints}.jsonl", args.endpoints))
    runs: dict[str, list[dict[str, Any]]] = {"dispatcher_default": [], "naive_boto3_threads": []}
    with LatencyServer(args.latency) as url:
        for _ in range(args.repeat):
            runs["dispatcher_default"].append(
                measure(child("dispatcher-lambda-default", segment, url)))  # fmt: skip
            runs["naive_boto3_threads"].append(measure([str(HERE / "naive.py"), segment, url]))
    print(f"{args.endpoints:,} endpoints, Invoke API answering after {args.latency * 1000:g} ms, "
          f"{args.repeat} repetitions, medians")  # fmt: skip
    for name, results in runs.items():
        rss = max(r["peak_rss_mb"] for r in results)
        print(f"  {name:<22}{_rate(results):>10,.0f} endpoints/s   peak RSS {rss:.0f} MB")
    ratio = _rate(runs["dispatcher_default"]) / _rate(runs["naive_boto3_threads"])
    print(f"  dispatcher default / naive, endpoints/s: {ratio:.2f}  (target >= {TARGET:g})")

    if args.limit is not None:
        server = LatencyServer(args.latency, limit=args.limit)
        with server as url:
            result = measure(child("dispatcher-lambda-default", segment, url))
            seen = server.stats()
        print(f"\nthrottling above {args.limit} concurrent executions (dispatcher default):")
        print(f"  {result['endpoints'] / result['seconds']:,.0f} endpoints/s, "
              f"{result['success']:,} of {result['endpoints']:,} SUCCESS; the server accepted "
              f"{seen['accepted']:,} calls, throttled {seen['throttled']:,}, ran at most "
              f"{seen['max_running']} at once")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
