"""In-process hook path vs the plain-orjson floor, endpoints/s and peak RSS, same run.

    python benchmarks/bench_inprocess.py [--endpoints 1000000] [--repeat 3]

Each measurement runs in a fresh child process (peak RSS is the child's own, from
wait4), alternating scenarios so machine noise hits both alike; ratios are of medians.
- floor: parse each line, serialize each 50-endpoint event, parse it back, serialize
  each outcome line. Nothing else.
- dispatcher: ``dispatcher.run`` with an in-process FILTER hook (the event reaches the
  hook through JSON, as in Lambda) and the outbox channel: eligibility, duplicate
  detection, rendering, outbox and outcome log included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def child_floor(segment: Path) -> dict[str, float]:
    from benchmarks.run import child_floor as floor

    return floor(segment)


def child_dispatcher(segment: Path) -> dict[str, float]:
    from benchmarks.run import child_dispatcher as dispatcher

    return dispatcher(segment)


def measure(scenario: str, segment: Path) -> dict[str, float]:
    """Run one scenario in a child; add its peak RSS in MB."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", scenario, str(segment)],
        stdout=subprocess.PIPE, cwd=HERE.parent,
    )  # fmt: skip
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{scenario} failed with exit code {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def run_bench(endpoints: int, repeat: int, workdir: Path) -> dict[str, object]:
    from benchmarks.gen import write_segment

    segment = write_segment(workdir / f"segment-{endpoints}.jsonl", endpoints)
    runs: dict[str, list[dict[str, float]]] = {"floor": [], "dispatcher": []}
    for _ in range(repeat):
        for scenario in runs:
            runs[scenario].append(measure(scenario, segment))
    table: dict[str, object] = {"endpoints": endpoints, "repeat": repeat}
    for scenario, results in runs.items():
        rate = statistics.median(r["endpoints"] / r["seconds"] for r in results)
        table[scenario] = {
            "endpoints_per_s": round(rate),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
            "cpu_us_per_endpoint": round(
                statistics.median(r["cpu_seconds"] / r["endpoints"] * 1e6 for r in results), 2),
        }  # fmt: skip
    ratio = table["dispatcher"]["endpoints_per_s"] / table["floor"]["endpoints_per_s"]  # type: ignore[index]
    table["ratio_dispatcher_to_floor"] = round(ratio, 3)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    default_workdir = Path(tempfile.gettempdir()) / "dispatcher-bench"
    parser.add_argument("--workdir", type=Path, default=default_workdir)
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "SEGMENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        scenario, segment = args.child
        fn = child_floor if scenario == "floor" else child_dispatcher
        print(json.dumps(fn(Path(segment))))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    table = run_bench(args.endpoints, args.repeat, args.workdir)
    print(f"{'scenario':<12}{'endpoints/s':>14}{'CPU us/endpoint':>18}{'peak RSS MB':>14}")
    for name in ("floor", "dispatcher"):
        row = table[name]
        print(f"{name:<12}{row['endpoints_per_s']:>14,}{row['cpu_us_per_endpoint']:>18}{row['peak_rss_mb']:>14}")
    print(f"dispatcher / floor = {table['ratio_dispatcher_to_floor']}")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
