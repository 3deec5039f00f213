"""DynamoDB write units a fleet run costs per endpoint, beside issue 14's 0.2 target.

    python benchmarks/bench_fleet_cost.py [--endpoints 2000] [--baseline CHECKOUT] [--json PATH]

``dispatcher submit`` and two ``dispatcher worker --burst`` processes run against moto
(S3, SQS, DynamoDB), the ledger's DynamoDB traffic through a metering proxy that bills
every write as DynamoDB does: per item written, the larger of its size before and after
in 1 KB units, at least one; a failed conditional write the size of the item it met
(``tests/fleet/cost.py``). Two channels: SMS through its test server (10 messages a send
call: a claim round per 10 endpoints at worst, the dearest case) and the outbox (100 a
call). One record in 50 repeats an earlier address.

``--baseline CHECKOUT`` measures another source tree the same way in the same run (its
CLI is the same), e.g. ``git worktree add /tmp/base HEAD`` before a change.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TARGET = 0.2
"""Write units per endpoint (issue 14, target 5)."""


async def measure(
    endpoints: int, *, roots: dict[str, Path], channels: tuple[str, ...] = ("sms", "outbox")
) -> dict[str, Any]:
    """{label: {channel: result}} for each source tree in ``roots``, one moto for all."""
    from dispatcher.testing import ServerProcess
    from dispatcher.testing.moto import MotoServer
    from tests.fleet.cost import fleet_write_units

    report: dict[str, Any] = {}
    with MotoServer() as moto, ServerProcess("sms") as sms, tempfile.TemporaryDirectory() as tmp:
        for label, root in roots.items():
            for channel in channels:
                result = await fleet_write_units(
                    moto_url=moto.url, workdir=Path(tmp), endpoints=endpoints,
                    shard_size=max(1, endpoints // 4), workers=2,
                    sms_url=sms.url if channel == "sms" else None, root=root,
                    name=f"{label}-{channel}", duplicate_every=50,
                )  # fmt: skip
                if result["summary"]["Total"] != endpoints:
                    raise SystemExit(f"{label}/{channel}: the run did not settle every endpoint")
                report.setdefault(label, {})[channel] = {
                    "endpoints": endpoints,
                    "write_units": result["write_units"],
                    "units_per_endpoint": round(result["units_per_endpoint"], 4),
                    "units_per_million_endpoints": round(result["units_per_endpoint"] * 1e6),
                    "by_operation": result["units"],
                }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"{'tree':<10}{'channel':<9}{'endpoints':>10}{'write units':>13}{'per endpoint':>14}"
          f"{'per million':>13}{'/ target 0.2':>14}")  # fmt: skip
    for label, channels in report.items():
        for channel, row in channels.items():
            print(f"{label:<10}{channel:<9}{row['endpoints']:>10,}{row['write_units']:>13,}"
                  f"{row['units_per_endpoint']:>14.4f}{row['units_per_million_endpoints']:>13,}"
                  f"{row['units_per_endpoint'] / TARGET:>14.3f}")  # fmt: skip


def main() -> None:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured the same way")
    parser.add_argument("--channels", default="sms,outbox", help="sms, outbox or both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    roots = {"current": ROOT}
    if args.baseline:
        roots["baseline"] = args.baseline.resolve()
    channels = tuple(args.channels.split(","))
    report = anyio.run(lambda: measure(args.endpoints, roots=roots, channels=channels))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
