"""Segment definitions: what evaluating one costs beside reading the export, same run.

    python benchmarks/bench_definition.py [--endpoints 1000000] [--rounds 3] [--dir DIR]

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
from dispatcher.segments.definition import DefinedSource, load_definition  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "dispatcher-bench"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--default-gc", action="store_true", help="Python's GC settings")
    args = parser.parse_args()
    if not args.default_gc:
        # As dispatcher.context tunes the collector for the length of a run.
        gc.freeze()
        gc.set_threshold(max(gc.get_threshold()[0], 20_000), *gc.get_threshold()[1:])
    args.dir.mkdir(parents=True, exist_ok=True)
    export = write_export(args.dir / f"definition-{args.endpoints}.jsonl", args.endpoints)
    definition_file = args.dir / "bench-segment.json"
    definition_file.write_text(json.dumps(DEFINITION))
    matches = load_definition(definition_file).compile(now=NOW)

    scenarios = {
        "read": lambda: _drain(open_source(str(export))),
        "read+definition": lambda: _drain(DefinedSource(open_source(str(export)), matches)),
        "read+evaluate": lambda: _evaluate(open_source(str(export)), matches),
    }
    best = dict.fromkeys(scenarios, float("inf"))
    kept = 0
    for _ in range(args.rounds):
        for name, run in scenarios.items():
            seconds, n = timed(run)
            if name == "read+definition":
                kept = n
            else:
                assert n == args.endpoints
            best[name] = min(best[name], seconds)

    rate = {k: args.endpoints / v for k, v in best.items()}
    figures: dict[str, Any] = {"endpoints": args.endpoints, "in_segment": kept,
                               "gc": "default" if args.default_gc else "run"}  # fmt: skip
    for name in scenarios:
        figures[name] = {"cpu_s": round(best[name], 2), "records_per_s": round(rate[name]),
                         "ratio_to_read": round(rate[name] / rate["read"], 3)}  # fmt: skip
    print(f"{args.endpoints:,} endpoints, {kept:,} in the segment; CPU time, best of "
          f"{args.rounds}; GC as in {'Python' if args.default_gc else 'a run'}")  # fmt: skip
    for name in scenarios:
        f = figures[name]
        print(f"  {name:16s} {f['cpu_s']:7.2f} s  {f['records_per_s']:>9,} records/s  "
              f"ratio {f['ratio_to_read']:.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
