"""Local reader throughput in records/s: this tree's readers, optionally against another
tree's (same run, same machine, alternating rounds, best CPU time of each).

    python -m tests.segments.bench_readers [--old-tree DIR] [--rounds N] [--dir DIR]

``--old-tree`` is a checkout of an earlier version (e.g. ``git archive <rev> | tar -x
-C DIR``): its ``dispatcher/segments`` is loaded under another package name, so both
run in one process. The inputs are a 1,000,000-line JSON-lines file of realistic
endpoints and a 200,000-row Pinpoint CSV, written once into ``--dir``. CPU time (all
threads) is measured rather than wall time: on a shared machine it is far steadier.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from benchmarks.gen import endpoint, write_segment
from dispatcher.segments import FileSource

CSV_COLUMNS = [
    "Id", "ChannelType", "Address", "Location.City", "Location.Country", "Demographic.Platform",
    "Demographic.Timezone", "Attributes.Tier", "Attributes.Interests", "Attributes.Interests",
    "User.UserId", "User.UserAttributes.FirstName", "Metrics.score",
]  # fmt: skip


def write_csv(path: Path, n: int) -> Path:
    if path.exists():
        return path
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for i in range(n):
            e = endpoint(i)
            w.writerow([e["Id"], e["ChannelType"], e["Address"], "Seattle", "US", "android",
                        "America/Los_Angeles", "gold", "music", 'travel, "x"', f"user-{i}",
                        f"Name{i % 997}", str(i % 100)])  # fmt: skip
    return path


def load_old(tree: Path) -> Callable[..., Any]:
    """``FileSource`` of another tree, imported as the package ``old_segments``."""
    root = Path(tempfile.mkdtemp())
    shutil.copytree(tree / "dispatcher" / "segments", root / "old_segments")
    for module in (root / "old_segments").glob("*.py"):
        text = module.read_text()
        module.write_text(re.sub(r"dispatcher\.segments\b", "old_segments", text))
    sys.path.insert(0, str(root))
    source: Callable[..., Any] = importlib.import_module("old_segments").FileSource
    return source


async def count(source: Any) -> int:
    n = 0
    async for batch in source.batches():
        n += len(batch)
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-tree", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "seg-bench")
    args = parser.parse_args()
    args.dir.mkdir(exist_ok=True)
    inputs = [
        write_segment(args.dir / "seg-1m.jsonl", 1_000_000),
        write_csv(args.dir / "seg-200k.csv", 200_000),
    ]
    readers: dict[str, Callable[..., Any]] = {"new": FileSource}
    if args.old_tree:
        readers = {"old": load_old(args.old_tree), **readers}
    for path in inputs:
        best: dict[str, float] = {}
        n = 0
        for _ in range(args.rounds):
            for name, make in readers.items():
                gc.collect()
                start = time.process_time()
                n = anyio.run(count, make(path))
                best[name] = min(best.get(name, float("inf")), time.process_time() - start)
        rates = {name: n / seconds for name, seconds in best.items()}
        line = "  ".join(f"{name} {rate:,.0f} records/s" for name, rate in rates.items())
        if "old" in rates:
            line += f"  new/old {rates['new'] / rates['old']:.3f}"
        print(f"{path.name} ({n:,} records): {line}")


if __name__ == "__main__":
    main()
