"""The benchmark harness: every scenario beside its floor or peer, in the same run.

    python benchmarks/run.py                # full: 1,000,000 endpoints, 10,000,000 for memory
    python benchmarks/run.py --quick        # small sizes, a minute or two
    python benchmarks/run.py --json results.json

Each measurement runs in a fresh child process (CPU time and peak RSS are the child's,
from wait4); scenarios alternate inside each repetition so machine noise hits them
alike; figures are medians, ratios are of medians from this run. Scenarios:

1. in-process hook path (dispatcher, ledger on and off) vs the JSON floor;
2. Lambda hook path: the dispatcher with its Lambda transport against a minimal Invoke
   API server (a separate process), beside stock aiobotocore ``invoke`` and a plain
   aiohttp POST of the same bytes at the same concurrency (``bench_lambda``);
3. the naive script (boto3 from a ThreadPoolExecutor(32), stdlib json) over the same
   segment and server;
3b. real hook latency: the dispatcher with default settings (adaptive hook concurrency)
   and the naive script against an Invoke API answering after 100 ms
   (``bench_latency``);
4. memory: peak RSS at 1M and 10M endpoints, the 10M segment streamed through a named
   pipe by a generator (never stored);
5. fleet cost: DynamoDB write units per endpoint of a fleet run against moto, counted by
   a metering proxy (``bench_fleet_cost``), beside the 0.2 target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.gen import write_config, write_segment  # noqa: E402

HOOK_CONCURRENCY = 32


def child_floor(segment: Path) -> dict[str, Any]:
    """The JSON floor: parse each line, serialize each 50-endpoint event, parse it back,
    serialize each outcome line. Nothing else."""
    import orjson

    started = time.perf_counter()
    n = 0
    with segment.open("rb") as f, open(os.devnull, "wb") as sink:
        chunk: dict[str, object] = {}
        for raw in f:
            d = orjson.loads(raw)
            chunk[d.pop("Id")] = d
            if len(chunk) == 50:
                back = orjson.loads(orjson.dumps({"Endpoints": chunk}))
                sink.write(b"".join(
                    orjson.dumps({"EndpointId": k, "Status": "SUCCESS"}) + b"\n"
                    for k in back["Endpoints"]))  # fmt: skip
                n += len(chunk)
                chunk = {}
        n += len(chunk)
    return {"seconds": time.perf_counter() - started, "endpoints": n}


def child_dispatcher(
    segment: Path,
    *,
    ledger: bool = True,
    hook: str | None = "inprocess",
    endpoint_url: str | None = None,
    plain: bool = False,
    hook_concurrency: int | None = HOOK_CONCURRENCY,
) -> dict[str, Any]:
    from dispatcher import load_settings, run

    with tempfile.TemporaryDirectory() as tmp:
        if hook == "inprocess":
            functions = f'[functions.pass]\npython = "{HERE / "hooks.py"}:passthrough"\n'
            name: str | None = "pass"
        elif hook == "lambda":
            functions = f'[functions.pass]\nendpoint_url = "{endpoint_url}"\n'
            name = "pass"
        else:
            functions, name = "", None
        cfg = write_config(Path(tmp) / "bench.toml", hook=name, functions=functions,
                           hook_concurrency=hook_concurrency, plain=plain)  # fmt: skip
        settings = load_settings(cfg)
        started = time.perf_counter()
        summary = run(settings, segment=str(segment), out_dir=Path(tmp) / "out", progress=False,
                      ledger=ledger)  # fmt: skip
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "endpoints": summary.total,
            "success": summary.by_status.get("SUCCESS", 0),
            "invocations": summary.hook_invocations}  # fmt: skip


def measure(args: list[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python benchmarks/run.py --child ...`` (or a script); add CPU and peak RSS."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, cwd=ROOT, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark child {args} failed")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def child(name: str, segment: str, *extra: str) -> list[str]:
    return [str(Path(__file__)), "--child", name, segment, *extra]


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    rate = statistics.median(r["endpoints"] / r["seconds"] for r in results)
    row = {
        "runs": len(results),
        "endpoints": results[0]["endpoints"],
        "endpoints_per_s": round(rate),
        "cpu_us_per_endpoint": round(statistics.median(
            r["cpu_seconds"] / max(r["endpoints"], 1) * 1e6 for r in results), 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
    }  # fmt: skip
    if results[0].get("invocations"):
        row["invocations_per_s"] = round(statistics.median(
            r["invocations"] / r["seconds"] for r in results))  # fmt: skip
        row["cpu_ms_per_invocation"] = round(statistics.median(
            r["cpu_seconds"] / r["invocations"] * 1e3 for r in results), 3)  # fmt: skip
    return row


def memory_run(n: int, workdir: Path) -> dict[str, Any]:
    """Peak RSS of the dispatcher on an n-endpoint segment streamed through a named pipe
    by a generator process (nothing is stored): reading, admission with duplicate
    detection, rendering, outbox and outcome log, without hook or ledger (their memory
    is bounded by the pipeline's buffers, not by the segment, and they would make a
    10-million-endpoint run too slow for the harness's time budget)."""
    fifo = workdir / f"stream-{n}.jsonl"
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    generator = subprocess.Popen([sys.executable, str(HERE / "gen.py"), "--stream", str(fifo),
                                  str(n)], cwd=ROOT)  # fmt: skip
    try:
        result = measure(child("dispatcher-nohook", str(fifo)))
    finally:
        generator.wait(timeout=600)
        fifo.unlink()
    return {"endpoints": result["endpoints"], "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "endpoints_per_s": round(result["endpoints"] / result["seconds"])}  # fmt: skip


def run_all(n: int, remote_n: int, memory_n: int, repeat: int, workdir: Path) -> dict[str, Any]:
    from benchmarks.bench_lambda import ServerProcess
    from benchmarks.bench_lambda import run as transport_run
    from benchmarks.bench_latency import LatencyServer

    segment = str(write_segment(workdir / f"segment-{n}.jsonl", n))
    # The Lambda-path scenarios read the first remote_n endpoints of the same data.
    remote = str(write_segment(workdir / f"segment-{remote_n}.jsonl", remote_n))
    report: dict[str, Any] = {"endpoints": n, "remote_endpoints": remote_n, "repeat": repeat,
                              "scenarios": {}}  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {}
    with ServerProcess() as url, LatencyServer(0.1) as slow_url:
        plan = {
            "json_floor": child("floor", segment),
            "inprocess": child("dispatcher", segment),
            "inprocess_no_ledger": child("dispatcher-noledger", segment),
            "lambda_lean": child("dispatcher-lambda", remote, url),
            "naive_boto3_threads": [str(HERE / "naive.py"), remote, url],
            "lambda_100ms_default": child("dispatcher-lambda-default", remote, slow_url),
            "naive_100ms": [str(HERE / "naive.py"), remote, slow_url],
        }
        for _ in range(repeat):
            for name, args in plan.items():
                runs.setdefault(name, []).append(measure(args))
        peers = transport_run(concurrency=(HOOK_CONCURRENCY,), calls=max(500, n // 500),
                              variants=("lean", "stock", "floor"), server_url=url, rounds=1)
    for name, results in runs.items():
        report["scenarios"][name] = summarize(results)
    s = report["scenarios"]
    per = peers["results"][HOOK_CONCURRENCY]
    report["transport"] = {v: {"cpu_ms_per_call": round(f["cpu_ms_per_call"], 3),
                               "calls_per_s": round(f["per_s"])} for v, f in per.items()}
    report["ratios"] = {
        "inprocess / json_floor (target >= 0.5)":
            s["inprocess"]["endpoints_per_s"] / s["json_floor"]["endpoints_per_s"],
        "inprocess no ledger / json_floor":
            s["inprocess_no_ledger"]["endpoints_per_s"] / s["json_floor"]["endpoints_per_s"],
        "ledger cost: inprocess / inprocess no ledger":
            s["inprocess"]["endpoints_per_s"] / s["inprocess_no_ledger"]["endpoints_per_s"],
        "lean invocations per CPU-s / stock aiobotocore (target >= 2)":
            per["stock"]["cpu_ms_per_call"] / per["lean"]["cpu_ms_per_call"],
        "lean invocations per CPU-s / plain aiohttp POST (target >= 0.7)":
            per["floor"]["cpu_ms_per_call"] / per["lean"]["cpu_ms_per_call"],
        "dispatcher lambda path / naive script, endpoints/s (target >= 10)":
            s["lambda_lean"]["endpoints_per_s"] / s["naive_boto3_threads"]["endpoints_per_s"],
        "hook answering after 100 ms, default settings / naive, endpoints/s (target >= 2)":
            s["lambda_100ms_default"]["endpoints_per_s"] / s["naive_100ms"]["endpoints_per_s"],
    }  # fmt: skip
    report["memory"] = {str(size): memory_run(size, workdir) for size in (n, memory_n)}
    # Per-run and per-shard writes weigh on a tiny run: 1,000 endpoints at least.
    report["fleet_cost"] = fleet_cost(2000 if n >= 100_000 else 1000, workdir)
    report["ratios"]["fleet write units per endpoint, SMS (target <= 0.2)"] = (
        report["fleet_cost"]["units_per_endpoint"])  # fmt: skip
    report["ratios"] = {k: round(v, 3) for k, v in report["ratios"].items()}
    return report


def fleet_cost(endpoints: int, workdir: Path) -> dict[str, Any]:
    """DynamoDB write units of a fleet run (``bench_fleet_cost``: moto behind a metering
    proxy, two workers, SMS at 10 messages a send call), in its own child process."""
    out = workdir / "fleet-cost.json"
    subprocess.run([sys.executable, str(HERE / "bench_fleet_cost.py"), "--endpoints",
                    str(endpoints), "--channels", "sms", "--json", str(out)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    found: dict[str, Any] = json.loads(out.read_text())["current"]["sms"]
    return found


def print_table(report: dict[str, Any]) -> None:
    print(f"segment: {report['endpoints']:,} endpoints ({report['remote_endpoints']:,} for the "
          f"Lambda path and the naive script), {report['repeat']} repetitions, medians")
    head = (f"{'scenario':<22}{'endpoints/s':>13}{'CPU us/ep':>11}{'inv/s':>9}"
            f"{'CPU ms/inv':>12}{'peak RSS MB':>13}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for name, row in report["scenarios"].items():
        print(f"{name:<22}{row['endpoints_per_s']:>13,}{row['cpu_us_per_endpoint']:>11}"
              f"{row.get('invocations_per_s', ''):>9}{row.get('cpu_ms_per_invocation', ''):>12}"
              f"{row['peak_rss_mb']:>13}")  # fmt: skip
    print(f"\ntransport alone at concurrency {HOOK_CONCURRENCY} (client CPU per invoke):")
    for variant, row in report["transport"].items():
        print(f"  {variant:<8}{row['cpu_ms_per_call']:>8} ms  {row['calls_per_s']:>7,}/s")
    print("\nratios (same run):")
    for name, value in report["ratios"].items():
        print(f"  {name:<80}{value:>8}")
    cost = report["fleet_cost"]
    print(f"\nfleet cost: {cost['units_per_endpoint']} DynamoDB write units per endpoint "
          f"({cost['units_per_million_endpoints']:,} per million; {cost['endpoints']:,} "
          "endpoints, 2 workers, SMS; target <= 0.2)")
    print("\nmemory (no hook, no ledger; segment streamed through a named pipe):")
    for size, row in report["memory"].items():
        print(f"  {int(size):>12,} endpoints  peak RSS {row['peak_rss_mb']:>7} MB  "
              f"{row['endpoints_per_s']:>9,} endpoints/s")  # fmt: skip


def run_child(name: str, segment: str, extra: list[str]) -> dict[str, Any]:
    path = Path(segment)
    if name == "floor":
        return child_floor(path)
    if name == "dispatcher":
        return child_dispatcher(path)
    if name == "dispatcher-noledger":
        return child_dispatcher(path, ledger=False)
    if name == "dispatcher-nohook":
        # Memory runs: one plain message per channel, so 10M endpoints fit the budget.
        return child_dispatcher(path, ledger=False, hook=None, plain=True)
    if name == "dispatcher-lambda":
        return child_dispatcher(path, hook="lambda", endpoint_url=extra[0])
    if name == "dispatcher-lambda-default":  # no hook_concurrency: adaptive, as shipped
        return child_dispatcher(path, hook="lambda", endpoint_url=extra[0], hook_concurrency=None)
    raise SystemExit(f"unknown child scenario {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 endpoints (smoke size)")
    parser.add_argument("--endpoints", type=int)
    parser.add_argument("--remote-endpoints", type=int, help="for the Lambda path and naive")
    parser.add_argument("--memory-endpoints", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "dispatcher-bench")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child[0], args.child[1], args.child[2:])))
        return
    n = args.endpoints or (20_000 if args.quick else 1_000_000)
    remote_n = args.remote_endpoints or min(n, 100_000)
    memory_n = args.memory_endpoints or (40_000 if args.quick else 10_000_000)
    repeat = args.repeat or (1 if args.quick else 2)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = run_all(n, remote_n, memory_n, repeat, args.workdir)
    report["harness_seconds"] = round(time.monotonic() - started, 1)
    print_table(report)
    print(f"\nharness took {report['harness_seconds']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
