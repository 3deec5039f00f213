"""Client CPU cost of one Lambda hook invocation: lean transport vs aiobotocore vs a POST.

An aiohttp Invoke API server (``POST /2015-03-31/functions/{name}/invocations``, echoes
the event's ``Endpoints`` map back) runs in a **separate process**, so the client's
``time.process_time()`` measures only the client. Each variant sends the same 17 KB,
50-endpoint event at each concurrency level and decodes the answer with orjson:

  lean      LambdaTransport(client="lean")      (this project's hot path)
  botocore  LambdaTransport(client="botocore")  (its aiobotocore fallback)
  stock     aiobotocore ``client.invoke`` + ``Payload.read()``, what a user would write
  floor     a plain aiohttp POST of the same bytes + read + decode: no signing at all
  lean-botosigner  the lean path with ``SigV4Auth.add_auth`` per call (optional)

Usage: ``python benchmarks/bench_lambda.py [--quick] [--concurrency 1,16,64]``.
``run(...)`` returns the figures as a dict for other harnesses.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import orjson

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGION = "us-east-1"
FUNCTION = "bench-hook"
DEFAULT_VARIANTS = ("lean", "botocore", "stock", "floor")
ALL_VARIANTS = (*DEFAULT_VARIANTS, "lean-botosigner")


def make_event(endpoints: int = 50) -> bytes:
    """A Pinpoint FILTER-hook event of about 17 KB with ``endpoints`` endpoints."""
    eps = {
        f"ep-{i:05d}-{'x' * 16}": {
            "ChannelType": "SMS" if i % 2 else "EMAIL",
            "Address": f"+1206555{i:04d}" if i % 2 else f"user{i}@example.com",
            "EndpointStatus": "ACTIVE",
            "OptOut": "NONE",
            "Location": {"City": "Seattle", "Country": "USA"},
            "Demographic": {"Make": "OnePlus", "Platform": "android"},
            "EffectiveDate": "2026-04-01T01:05:17.267Z",
            "Attributes": {"CohortId": [str(i % 100)], "Plan": ["gold"]},
            "User": {"UserId": f"user-{i:06d}"},
        }
        for i in range(endpoints)
    }
    event = {
        "MessageConfiguration": {"SMSMessage": {"Body": "Hello {{User.UserAttributes.FirstName}}"}},
        "ApplicationId": "3a9b1f4e5c8d4b0a9e7f6d5c4b3a2910",
        "CampaignId": "13978104ce5c42b4a5c8d3e2f1a0b9c8",
        "TreatmentId": "0",
        "ActivityId": "575cb1929d5ba43e87e2478eEXAMPLE",
        "ScheduledTime": "2026-04-08T19:00:16.843Z",
        "Endpoints": eps,
    }
    return orjson.dumps(event)


# ---------------------------------------------------------------------------------------
# The server (separate process)
# ---------------------------------------------------------------------------------------


def serve(port: int) -> None:
    """Run the echo Invoke API until killed; prints ``PORT <n>`` once listening."""
    import asyncio

    from aiohttp import web

    async def invoke(request: web.Request) -> web.Response:
        event = orjson.loads(await request.read())
        return web.Response(
            body=orjson.dumps(event.get("Endpoints", {})),
            content_type="application/json",
            headers={"X-Amz-Executed-Version": "$LATEST"},
        )

    async def main() -> None:
        app = web.Application(client_max_size=7 * 1024 * 1024)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        print(f"PORT {sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class ServerProcess:
    """The echo server in a child process (``with ServerProcess() as url: ...``)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> str:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._proc.kill()
            raise RuntimeError(f"benchmark server failed to start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# ---------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]


async def _make_call(
    variant: str, url: str, event: bytes, concurrency: int, stack: AsyncExitStack
) -> Call:
    from dispatcher.aws import AwsClients
    from dispatcher.hooks.aws_lambda import LambdaTransport

    if variant in ("lean", "botocore", "lean-botosigner"):
        aws = AwsClients(REGION, max_pool_connections=concurrency)
        aws.session.set_credentials("AKIDBENCHMARK", "bench-secret", "bench-token")
        stack.push_async_callback(aws.aclose)
        transport = LambdaTransport(
            FUNCTION,
            region=REGION,
            concurrency=concurrency,
            endpoint_url=url,
            client="botocore" if variant == "botocore" else "lean",
            signer="botocore" if variant == "lean-botosigner" else "fast",
            clients=aws,
        )
        stack.push_async_callback(transport.aclose)
        await transport.open()
        return lambda: transport.invoke(event)

    if variant == "stock":
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        session = get_session()
        session.set_credentials("AKIDBENCHMARK", "bench-secret", "bench-token")
        client = await stack.enter_async_context(
            session.create_client(
                "lambda",
                region_name=REGION,
                endpoint_url=url,
                config=AioConfig(max_pool_connections=max(10, concurrency)),
            )
        )

        async def stock() -> Any:
            response = await client.invoke(FunctionName=FUNCTION, Payload=event)
            return orjson.loads(await response["Payload"].read())

        return stock

    if variant == "floor":
        import aiohttp

        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        )
        target = f"{url}/2015-03-31/functions/{FUNCTION}/invocations"

        async def floor() -> Any:
            async with http.post(target, data=event) as response:
                return orjson.loads(await response.read())

        return floor

    raise ValueError(f"unknown variant {variant!r}; choose from {ALL_VARIANTS}")


async def _drive(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """Make ``calls`` calls with ``concurrency`` workers; (wall s, client CPU s)."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    wall0, cpu0 = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return time.perf_counter() - wall0, time.process_time() - cpu0


async def _measure(
    variant: str, url: str, event: bytes, concurrency: int, calls: int
) -> dict[str, float]:
    async with AsyncExitStack() as stack:
        call = await _make_call(variant, url, event, concurrency, stack)
        expected = orjson.loads(event)["Endpoints"]
        result = await call()
        if result != expected:
            raise RuntimeError(f"{variant}: the server's answer does not echo the endpoints")
        await _drive(call, max(50, calls // 10), concurrency)  # warm-up: pool, caches
        wall, cpu = await _drive(call, calls, concurrency)
    return {
        "calls": calls,
        "wall_s": wall,
        "cpu_s": cpu,
        "per_s": calls / wall,
        "cpu_ms_per_call": cpu / calls * 1000,
        "calls_per_cpu_s": calls / cpu if cpu > 0 else float("inf"),
    }


def run(
    *,
    concurrency: Sequence[int] = (1, 16, 64),
    calls: int = 2000,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    server_url: str | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Run the benchmark; returns ``{"results": {conc: {variant: figures}}, "ratios": ...}``.

    With ``rounds`` > 1 the variants are interleaved and each figure is the best round
    (lowest CPU per call), which damps noise from other processes on the machine.
    """
    event = make_event()
    results: dict[int, dict[str, dict[str, float]]] = {}

    def measure_all(url: str) -> None:
        for conc in concurrency:
            per_variant: dict[str, dict[str, float]] = {}
            for _ in range(rounds):
                for variant in variants:
                    figures = anyio.run(_measure, variant, url, event, conc, calls)
                    best = per_variant.get(variant)
                    if best is None or figures["cpu_ms_per_call"] < best["cpu_ms_per_call"]:
                        per_variant[variant] = figures
            results[conc] = per_variant

    if server_url is None:
        with ServerProcess() as url:
            measure_all(url)
    else:
        measure_all(server_url)

    ratios: dict[int, dict[str, float]] = {}
    for conc, per_variant in results.items():
        lean = per_variant.get("lean")
        if lean is None:
            continue
        ratios[conc] = {
            f"lean/{other}": lean["calls_per_cpu_s"] / per_variant[other]["calls_per_cpu_s"]
            for other in ("stock", "floor", "botocore", "lean-botosigner")
            if other in per_variant
        }
    return {"event_bytes": len(event), "results": results, "ratios": ratios}


def _print(report: dict[str, Any]) -> None:
    print(f"event: {report['event_bytes']} bytes, 50 endpoints; client CPU = process_time()")
    header = f"{'conc':>4} {'variant':<16} {'calls/s':>9} {'CPU ms/call':>12} {'calls/CPU-s':>12}"
    print(header)
    print("-" * len(header))
    for conc, per_variant in report["results"].items():
        for variant, f in per_variant.items():
            print(
                f"{conc:>4} {variant:<16} {f['per_s']:>9.0f} {f['cpu_ms_per_call']:>12.3f} "
                f"{f['calls_per_cpu_s']:>12.0f}"
            )
        ratios = report["ratios"].get(conc, {})
        if ratios:
            text = "  ".join(f"{k} = {v:.2f}x" for k, v in ratios.items())
            print(f"{'':>4} invocations per CPU-second: {text}")
    print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (about 15 s)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--calls", type=int, default=None, help="calls per variant and level")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (best kept)")
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help=f"any of {','.join(ALL_VARIANTS)}"
    )
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    calls = args.calls or (400 if args.quick else 1500)
    rounds = args.rounds or (1 if args.quick else 2)
    report = run(
        concurrency=[int(c) for c in args.concurrency.split(",") if c],
        calls=calls,
        variants=[v for v in args.variants.split(",") if v],
        rounds=rounds,
    )
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2).decode())
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
