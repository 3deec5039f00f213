"""Segment definitions: what evaluating one costs beside reading the export, same run.

    python benchmarks/bench_definition.py [--endpoints 1000000] [--rounds 3] [--dir DIR]
    python benchmarks/bench_definition.py --endpoints 20000      # a smoke run, seconds

From ``benchmarks/run.py``: ``measure_definition(n, workdir)`` returns the figures.

Writes (once, cached in ``--dir``) an export of realistic endpoints: ``benchmarks/gen.py``'s
record shape plus Location coordinates, Metrics, a few more attributes and varied
``EffectiveDate`` values (mostly in Pinpoint's own ``...mmmZ`` form, some with an
offset). Then, alternating in one process so machine noise hits both alike:

- ``read``: ``dispatcher.segments.open_source(path).batches()``, every record built;
- ``read+definition``: the same source wrapped in ``DefinedSource`` with a 5-dimension,
  2-group definition evaluated on every record (what a run does);
- ``read+evaluate``: the definition evaluated on every record read, nothing dropped: the
  evaluation's own cost, without the effect of keeping a sixth of the records.

The figure is CPU time (``time.process_time``; on a shared box wall time measures the
neighbours), the best of ``--rounds``, as records/s, and the ratios to ``read``.

Then the same comparison as a whole run: ``dispatcher.dispatch`` over an export of the
same records (``--run-endpoints``, default 200,000: a whole run without a definition
renders and writes every message, ~15,000 records per CPU second here, and 1,000,000 of
them would not fit the benchmark's 3 minutes), with no hook, no ledger, messages to the
outbox, once without the definition and once with it (``--run-rounds`` times each,
alternating), the run's clock at the data's "now" so Recency selects what it selects
above. Its figure is records *scanned* per CPU
second: the run with the definition reads the same million records and sends only the
segment's, so the ratio says what a run over a full export costs beside a run over an
export of the segment alone would not (the run without a definition sends to all).

The garbage collector is set as a run sets it (``dispatcher.context``: what exists is
frozen, gen-0 threshold 20,000); ``--default-gc`` keeps Python's defaults instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.gen import endpoint  # noqa: E402
from dispatcher.segments import open_source  # noqa: E402
from dispatcher.segments.definition import DefinedSource, compile_definition, load_definition  # noqa: E402

NOW = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
CITIES = [(47.6, -122.3), (45.5, -122.7), (40.7, -74.0), (34.1, -118.2), (51.5, -0.1)]
PLATFORMS = ("android", "ios", "iOS", "Android", "web")
TIERS = ("gold", "silver", "bronze")

# Five dimensions in two groups, the dear ones (dates, distance) included:
# group 1 (ALL): platform, recency, tier; group 2 (ANY): visits >= 3, within 50 km of Seattle.
DEFINITION = {"SegmentResponse": {
    "Id": "bench-segment", "Name": "Active mobile gold near Seattle or frequent", "Version": 1,
    "SegmentType": "DIMENSIONAL", "ApplicationId": "bench-app",
    "SegmentGroups": {"Include": "ALL", "Groups": [
        {"Type": "ALL", "SourceType": "ANY", "SourceSegments": [], "Dimensions": [
            {"Demographic": {"Platform": {"DimensionType": "INCLUSIVE",
                                          "Values": ["ios", "android"]}}},
            {"Behavior": {"Recency": {"Duration": "DAY_30", "RecencyType": "ACTIVE"}}},
            {"Attributes": {"Tier": {"AttributeType": "INCLUSIVE", "Values": ["gold", "silver"]}}},
        ]},
        {"Type": "ANY", "SourceType": "ANY", "SourceSegments": [], "Dimensions": [
            {"Metrics": {"visits": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 3.0}}},
            {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 47.6, "Longitude": -122.3},
                                       "RangeInKilometers": 50.0}}},
        ]},
    ]},
}}  # fmt: skip


def record(i: int) -> dict[str, Any]:
    """``gen.endpoint(i)`` with what segment criteria read."""
    e = endpoint(i)
    lat, lon = CITIES[i % len(CITIES)]
    e["Location"] = {**e["Location"], "Latitude": lat, "Longitude": lon}  # type: ignore[dict-item]
    e["Demographic"] = {**e["Demographic"], "Platform": PLATFORMS[i % 5],  # type: ignore[dict-item]
                        "AppVersion": f"2.{i % 7}.0", "Model": f"Model {i % 41}"}  # fmt: skip
    e["Metrics"] = {"visits": float(i % 6), "spend": (i * 37 % 1000) / 10}
    seen = NOW - timedelta(minutes=(i * 7919) % (60 * 24 * 60))  # the last 60 days
    e["EffectiveDate"] = (seen.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                          if i % 20 else seen.astimezone().isoformat())  # fmt: skip
    e["Attributes"] = {"Tier": [TIERS[i % 3]], "Interests": ["music", "travel"][: 1 + i % 2],
                       "SignupDate": [f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"]}  # fmt: skip
    return e


def write_export(path: Path, n: int) -> Path:
    marker = path.with_suffix(".count")
    if path.exists() and marker.exists() and marker.read_text() == str(n):
        return path
    with path.open("wb", buffering=1 << 20) as f:
        for start in range(0, n, 10_000):
            f.write(
                b"".join(
                    orjson.dumps(record(i)) + b"\n" for i in range(start, min(n, start + 10_000))
                )
            )
    marker.write_text(str(n))
    return path


async def _drain(source: Any) -> int:
    n = 0
    async for batch in source.batches():
        n += len(batch)
    return n


async def _evaluate(source: Any, matches: Any) -> int:
    n = 0
    async for batch in source.batches():
        for r in batch:
            if r.error is None:
                matches(r.definition, r.endpoint_id)
        n += len(batch)
    return n


def timed(run: Any) -> tuple[float, int]:
    start = time.process_time()
    n = anyio.run(run)
    return time.process_time() - start, n


class _FixedClock:
    """The run's clock at the data's now: Recency then keeps what the read passes keep."""

    def now(self) -> datetime:
        return NOW

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _whole_run(export: Path, config: Path, definition: Path | None,
               out: Path) -> tuple[float, float, dict[str, Any]]:  # fmt: skip
    """(CPU s, wall s, summary) of one ``dispatch()`` over ``export``."""
    from dispatcher import dispatch, load_settings

    settings = load_settings(config)
    wall, cpu = time.perf_counter(), time.process_time()
    summary = anyio.run(lambda: dispatch(
        settings, segment=str(export), segment_definition=str(definition) if definition else None,
        out_dir=out, ledger=False, progress=False, clock=_FixedClock(),
    ))  # fmt: skip
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, {"Total": summary.total, "Scanned": summary.scanned,
                       "SUCCESS": summary.by_status.get("SUCCESS", 0)}  # fmt: skip


def run_figures(export: Path, definition: Path, workdir: Path, rounds: int) -> dict[str, Any]:
    """Whole runs without and with the definition, alternating; best CPU of ``rounds``."""
    from benchmarks.gen import write_config

    config = write_config(workdir / "bench-definition.toml", hook=None)
    best: dict[str, tuple[float, float, dict[str, Any]]] = {}
    for _ in range(rounds):
        for name, used in (("run", None), ("run+definition", definition)):
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                result = _whole_run(export, config, used, Path(tmp) / "out")
            if name not in best or result[0] < best[name][0]:
                best[name] = result
    figures: dict[str, Any] = {"endpoints": best["run"][2]["Scanned"], "rounds": rounds}
    for name, (cpu, wall, summary) in best.items():
        figures[name] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), **summary,
                         "scanned_per_cpu_s": round(summary["Scanned"] / cpu)}  # fmt: skip
    figures["run+definition"]["ratio_to_run"] = round(
        figures["run+definition"]["scanned_per_cpu_s"] / figures["run"]["scanned_per_cpu_s"], 3)
    return figures


def measure_definition(n: int = 1_000_000, workdir: Path | None = None, *, rounds: int = 2,
                       run_endpoints: int = 200_000, run_rounds: int = 1,
                       default_gc: bool = False) -> dict[str, Any]:  # fmt: skip
    """Every figure of this benchmark as a dict (see the module docstring); the export
    is written once into ``workdir`` and reused."""
    workdir = workdir or Path(tempfile.gettempdir()) / "dispatcher-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    threshold = gc.get_threshold()
    if not default_gc:
        # As dispatcher.context tunes the collector for the length of a run.
        gc.freeze()
        gc.set_threshold(max(threshold[0], 20_000), *threshold[1:])
    try:
        export = write_export(workdir / f"definition-{n}.jsonl", n)
        definition_file = workdir / "bench-segment.json"
        definition_file.write_text(json.dumps(DEFINITION))
        figures = _read_figures(export, definition_file, n, rounds)
        figures["gc"] = "default" if default_gc else "run"
        if run_rounds and run_endpoints:
            whole = export if run_endpoints == n else write_export(
                workdir / f"definition-{run_endpoints}.jsonl", run_endpoints)  # fmt: skip
            figures["runs"] = run_figures(whole, definition_file, workdir, run_rounds)
    finally:
        if not default_gc:
            gc.set_threshold(*threshold)
            gc.unfreeze()
    return figures


def _read_figures(export: Path, definition_file: Path, n: int, rounds: int) -> dict[str, Any]:
    matches = compile_definition(load_definition(definition_file), now=NOW)
    scenarios = {
        "read": lambda: _drain(open_source(str(export))),
        "read+definition": lambda: _drain(DefinedSource(open_source(str(export)), matches)),
        "read+evaluate": lambda: _evaluate(open_source(str(export)), matches),
    }
    best = dict.fromkeys(scenarios, float("inf"))
    kept = 0
    for _ in range(rounds):
        for name, run in scenarios.items():
            seconds, count = timed(run)
            if name == "read+definition":
                kept = count
            elif count != n:
                raise SystemExit(f"{name} read {count:,} records of {n:,}")
            best[name] = min(best[name], seconds)
    rate = {k: n / v for k, v in best.items()}
    figures: dict[str, Any] = {"endpoints": n, "in_segment": kept, "rounds": rounds}
    for name in scenarios:
        figures[name] = {"cpu_s": round(best[name], 2), "records_per_s": round(rate[name]),
                         "ratio_to_read": round(rate[name] / rate["read"], 3)}  # fmt: skip
    return figures


def print_figures(figures: dict[str, Any]) -> None:
    print(f"{figures['endpoints']:,} endpoints, {figures['in_segment']:,} in the segment; CPU "
          f"time, best of {figures['rounds']}; GC as in "
          f"{'Python' if figures['gc'] == 'default' else 'a run'}")  # fmt: skip
    for name in ("read", "read+definition", "read+evaluate"):
        f = figures[name]
        print(f"  {name:16s} {f['cpu_s']:7.2f} s  {f['records_per_s']:>9,} records/s  "
              f"ratio {f['ratio_to_read']:.3f}")  # fmt: skip
    runs = figures.get("runs")
    if runs:
        print(f"whole runs over {runs['endpoints']:,} endpoints (dispatch(), no hook, no "
              f"ledger, outbox), best CPU time of {runs['rounds']}:")  # fmt: skip
        for name in ("run", "run+definition"):
            f = runs[name]
            ratio = f" ratio {f['ratio_to_run']:.3f}" if "ratio_to_run" in f else ""
            print(f"  {name:16s} {f['cpu_s']:7.2f} s CPU ({f['wall_s']:.2f} s wall)  "
                  f"{f['scanned_per_cpu_s']:>9,} scanned/s  Scanned {f['Scanned']:,} "
                  f"Total {f['Total']:,} sent {f['SUCCESS']:,}{ratio}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", "--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="read passes per scenario")
    parser.add_argument("--run-endpoints", type=int, default=200_000,
                        help="records of the whole runs (default 200,000)")
    parser.add_argument("--run-rounds", type=int, default=1,
                        help="whole runs per scenario (0: none)")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "dispatcher-bench"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--default-gc", action="store_true", help="Python's GC settings")
    args = parser.parse_args()
    figures = measure_definition(args.endpoints, args.dir, rounds=args.rounds,
                                 run_endpoints=min(args.run_endpoints, args.endpoints),
                                 run_rounds=args.run_rounds, default_gc=args.default_gc)
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
