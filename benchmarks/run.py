"""The benchmark harness: every scenario beside its floor or peer, and every issue 14
target's ratio beside the target, in the same run.

    python benchmarks/run.py                # 200,000 endpoints, under 10 minutes
    python benchmarks/run.py --quick        # small sizes, a couple of minutes
    python benchmarks/run.py --json results.json

Each measurement runs in a fresh child process (CPU time and peak RSS are the child's,
from wait4, worker processes included); scenarios alternate inside each repetition so
machine noise hits them alike; figures are medians, ratios are of medians from this run.

1. in-process CPU per endpoint (ledger on, sync Python hook) vs the fair ceiling
   (``ceiling.py``: a plain durable single-process pipeline doing the same work), with
   the JSON floor as a second reference, and without the ledger;
2. ``--processes 2`` vs one process and vs the ceiling, in wall time;
3. the Lambda path: against a minimal Invoke API beside the naive script
   (boto3 + ``ThreadPoolExecutor(32)``) and stock aiobotocore (``bench_lambda``); against
   one answering after 100 ms, default settings vs the naive script; against one that
   throttles above 8 concurrent executions (no THROTTLED or HOOK_FAILURE allowed)
   (``bench_latency``);
4. SES v2, SMS v2 and push senders: client CPU per send beside stock aiobotocore calls
   of the same requests, against the wire-compatible test servers (``bench_channels``);
5. DynamoDB write units per endpoint of a fleet run against moto (``bench_fleet_cost``);
6. issue 17: the busiest one-second window of SMS arrivals at the wire beside the ceiling;
7. segment definitions: records/s with the definition beside without, reading the
   export and whole runs (``bench_definition.measure_definition``);
and memory: peak RSS with the segment streamed through a named pipe.
The last table has one row per target: measured, ratio (>= 1 means met), met or not.
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
THROTTLE_LIMIT = 8
"""Target 3's throttling function: 429 above this many concurrent executions (low enough
that adaptive concurrency meets it even when the run is CPU-bound)."""


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
    processes: int = 1,
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
                      ledger=ledger, processes=processes)  # fmt: skip
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "endpoints": summary.total,
            "success": summary.by_status.get("SUCCESS", 0),
            "statuses": dict(summary.by_status),
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


def run_all(n: int, remote_n: int, memory_n: int, repeat: int, workdir: Path,
            quick: bool = False) -> dict[str, Any]:  # fmt: skip
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
            "ceiling": [str(HERE / "ceiling.py"), segment],
            "inprocess": child("dispatcher", segment),
            "inprocess_no_ledger": child("dispatcher-noledger", segment),
            "processes_2": child("dispatcher-processes", segment, "2"),
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
    # Target 3's second half: a function throttling above THROTTLE_LIMIT executions.
    throttling = LatencyServer(0.1, limit=THROTTLE_LIMIT)
    with throttling as limited_url:
        throttled_run = measure(child("dispatcher-lambda-default", remote, limited_url))
        seen = throttling.stats()
    report["throttling"] = {"endpoints": throttled_run["endpoints"],
                            "statuses": throttled_run["statuses"], "server": seen,
                            "endpoints_per_s": round(throttled_run["endpoints"]
                                                     / throttled_run["seconds"])}  # fmt: skip
    for name, results in runs.items():
        report["scenarios"][name] = summarize(results)
    s = report["scenarios"]
    per = peers["results"][HOOK_CONCURRENCY]
    report["transport"] = {v: {"cpu_ms_per_call": round(f["cpu_ms_per_call"], 3),
                               "calls_per_s": round(f["per_s"])} for v, f in per.items()}
    report["ratios"] = {
        "inprocess CPU / ceiling CPU, per endpoint":
            s["ceiling"]["cpu_us_per_endpoint"] / s["inprocess"]["cpu_us_per_endpoint"],
        "inprocess CPU / JSON floor CPU, per endpoint (2nd reference)":
            s["json_floor"]["cpu_us_per_endpoint"] / s["inprocess"]["cpu_us_per_endpoint"],
        "ledger cost: inprocess / inprocess no ledger, endpoints/s":
            s["inprocess"]["endpoints_per_s"] / s["inprocess_no_ledger"]["endpoints_per_s"],
        "lean invocations per CPU-s / stock aiobotocore":
            per["stock"]["cpu_ms_per_call"] / per["lean"]["cpu_ms_per_call"],
        "lean invocations per CPU-s / plain aiohttp POST":
            per["floor"]["cpu_ms_per_call"] / per["lean"]["cpu_ms_per_call"],
        "dispatcher lambda path / naive script, endpoints/s":
            s["lambda_lean"]["endpoints_per_s"] / s["naive_boto3_threads"]["endpoints_per_s"],
    }  # fmt: skip
    report["channels"] = channel_targets(workdir, quick, smoke=n < 20_000)
    report["memory"] = {str(size): memory_run(size, workdir) for size in (n, memory_n)}
    # Per-run and per-shard writes weigh on a tiny run: 1,000 endpoints at least.
    report["fleet_cost"] = fleet_cost(2000 if n >= 100_000 else 1000, workdir)
    report["definition"] = definition_figures(workdir, quick)
    report["ratios"] = {k: round(v, 3) for k, v in report["ratios"].items()}
    report["targets"] = targets(report)
    return report


def channel_targets(workdir: Path, quick: bool, smoke: bool) -> dict[str, Any]:
    """Target 4 and issue 17's wire window (``bench_channels --targets``), in a child."""
    out = workdir / "channels.json"
    size = ["--smoke"] if smoke else ["--quick"] if quick else []
    subprocess.run([sys.executable, str(HERE / "bench_channels.py"), "--targets", str(out),
                    *size], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    found: dict[str, Any] = json.loads(out.read_text())
    return found


def definition_figures(workdir: Path, quick: bool) -> dict[str, Any]:
    """Target 7: ``bench_definition.measure_definition`` in a child (reading the export
    with and without the definition, and whole runs with and without it)."""
    n, whole = (5_000, 2_000) if quick else (100_000, 50_000)
    figures: dict[str, Any] = measure(child("definition", str(workdir), str(n), str(whole)))
    return figures


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what it asks, what was measured, the ratio, met or not.

    ``ratio`` is always "how far towards the target": >= 1 means met, whichever way the
    target points (a "<=" target's ratio is target / measured)."""
    s, ch = report["scenarios"], report["channels"]
    rows: list[dict[str, Any]] = []

    def row(target: str, measured: str, ratio: float | None, met: bool | None) -> None:
        rows.append({"target": target, "measured": measured,
                     "ratio": None if ratio is None else round(ratio, 3), "met": met})  # fmt: skip

    ceiling, inproc = s["ceiling"]["cpu_us_per_endpoint"], s["inprocess"]["cpu_us_per_endpoint"]
    r = ceiling / inproc
    row("1 in-process >= 0.8x ceiling (CPU/endpoint)",
        f"{inproc} vs {ceiling} us", r, r >= 0.8)  # fmt: skip
    floor = s["json_floor"]["cpu_us_per_endpoint"]
    row("1 (ref) in-process vs JSON floor (CPU/endpoint)", f"{inproc} vs {floor} us",
        floor / inproc, None)  # fmt: skip
    two, one = s["processes_2"]["endpoints_per_s"], s["inprocess"]["endpoints_per_s"]
    row("2 --processes 2 >= 1.7x one process (wall)", f"{two:,} vs {one:,}/s", two / one,
        two / one >= 1.7)  # fmt: skip
    c_rate = s["ceiling"]["endpoints_per_s"]
    row("2 --processes 2 >= 1.5x ceiling (wall)", f"{two:,} vs {c_rate:,}/s", two / c_rate,
        two / c_rate >= 1.5)  # fmt: skip
    slow, naive = s["lambda_100ms_default"]["endpoints_per_s"], s["naive_100ms"]["endpoints_per_s"]
    row("3 100 ms Lambda, defaults >= 2x naive", f"{slow:,} vs {naive:,}/s", slow / naive / 2,
        slow / naive >= 2)  # fmt: skip
    t = report["throttling"]
    bad = sum(t["statuses"].get(k, 0) for k in ("THROTTLED", "HOOK_FAILURE"))
    row(f"3 throttling above {THROTTLE_LIMIT}: no THROTTLED/HOOK_FAILURE",
        f"{bad} of {t['endpoints']:,} ({t['server']['throttled']:,} 429s)", None, bad == 0)
    for name in ("ses", "sms"):
        ms, stock = ch[name]["sender"] * 1e3, ch[name]["stock"] * 1e3
        row(f"4 {name.upper()} client CPU/send <= 0.3 ms",
            f"{ms:.3f} ms (stock aiobotocore {stock:.3f})", 0.3 / ms, ms <= 0.3)  # fmt: skip
    us, stock = ch["push"]["sender"] * 1e6, ch["push"]["stock"] * 1e6
    row("4 push client CPU/address <= 25 us", f"{us:.1f} us (stock aiobotocore {stock:.1f})",
        25 / us, us <= 25)  # fmt: skip
    units = report["fleet_cost"]["units_per_endpoint"]
    row("5 DynamoDB write units/endpoint <= 0.2", f"{units}", 0.2 / units if units else None,
        units <= 0.2)  # fmt: skip
    w = ch["wire"]
    row(f"6 busiest 1-s window at the wire <= ceiling {w['ceiling']:g}/s",
        f"{w['busiest']} (sustained {w['sustained']}/s)", w["ceiling"] / max(w["busiest"], 1),
        w["busiest"] <= w["ceiling"])  # fmt: skip
    d = report["definition"]
    read = d["read+definition"]["ratio_to_read"]
    runs = d.get("runs") or {}
    whole = (runs.get("run+definition") or {}).get("ratio_to_run")
    # No target in issue 14: the figures only (records/s with the definition / without).
    row("7 segment definition: records/s vs without", f"read {read}x, whole run {whole}x",
        None, None)  # fmt: skip
    return rows


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
        print(f"  {name:<66}{value:>8}")
    t = report["throttling"]
    print(f"\nthrottling above {THROTTLE_LIMIT} concurrent executions (defaults): "
          f"{t['endpoints_per_s']:,} "
          f"endpoints/s, statuses {t['statuses']}; the server accepted "
          f"{t['server']['accepted']:,}, throttled {t['server']['throttled']:,}, ran at most "
          f"{t['server']['max_running']} at once")  # fmt: skip
    cost = report["fleet_cost"]
    print(f"fleet cost: {cost['units_per_endpoint']} DynamoDB write units per endpoint "
          f"({cost['units_per_million_endpoints']:,} per million; {cost['endpoints']:,} "
          "endpoints, 2 workers, SMS)")
    print("memory (no hook, no ledger; segment streamed through a named pipe):")
    for size, row in report["memory"].items():
        print(f"  {int(size):>12,} endpoints  peak RSS {row['peak_rss_mb']:>7} MB  "
              f"{row['endpoints_per_s']:>9,} endpoints/s")  # fmt: skip
    print("\nissue 14 targets (same run; ratio >= 1 means met, whichever way the target points):")
    head = f"{'target':<52}{'measured':<40}{'ratio':>7}  met"
    print(head)
    print("-" * len(head))
    for r in report["targets"]:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"{r['target']:<52}{r['measured']:<40}{ratio:>7}  {met}")


def run_child(name: str, segment: str, extra: list[str]) -> dict[str, Any]:
    path = Path(segment)
    if name == "floor":
        return child_floor(path)
    if name == "dispatcher":
        return child_dispatcher(path)
    if name == "definition":  # segment is the work directory here
        from benchmarks.bench_definition import measure_definition

        return measure_definition(int(extra[0]), path, rounds=1, run_endpoints=int(extra[1]))
    if name == "dispatcher-processes":
        return child_dispatcher(path, processes=int(extra[0]))
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
    n = args.endpoints or (20_000 if args.quick else 200_000)
    remote_n = args.remote_endpoints or min(n, 50_000)
    memory_n = args.memory_endpoints or (40_000 if args.quick else 1_000_000)
    repeat = args.repeat or (1 if args.quick else 2)
    # A tiny run (the smoke test) takes the quick channel and definition sizes too.
    quick = args.quick or n < 20_000
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = run_all(n, remote_n, memory_n, repeat, args.workdir, quick)
    report["harness_seconds"] = round(time.monotonic() - started, 1)
    print_table(report)
    print(f"\nharness took {report['harness_seconds']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
