"""``dispatcher status``: what a run's ledger says of it, also while it runs."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from dispatcher.cli.common import EXIT_OK, aws_flags, print_json, use_profile
from dispatcher.errors import ConfigError, LedgerBusy


async def run_info(args: argparse.Namespace) -> Any:
    """(RunInfo, counts by status, shards, ledger path) from the run's ledger."""
    table = getattr(args, "ledger_table", None)
    if table:
        from dispatcher.aws import AwsClients
        from dispatcher.cli.common import region_of

        use_profile(args)
        from dispatcher.ledger.dynamodb import DynamoLedger

        clients = AwsClients(region_of(args))
        ledger: Any = DynamoLedger(table, clients=clients)
        where = f"DynamoDB table {table}"
        path = None
    else:
        from dispatcher.ledger import LEDGER_FILE, SqliteLedger

        clients = None
        path = Path(args.ledger) if args.ledger else Path(args.out) / LEDGER_FILE
        if not path.is_file():
            raise ConfigError(f"no ledger at {path} (use --out DIR or --ledger PATH)", key="--out")
        ledger = SqliteLedger(path)
        where = str(path)
    try:
        info = await ledger.get_run(args.run_id)
        if info is None:
            raise ConfigError(f"run {args.run_id} is not in the ledger {where}", key="RUN_ID")
        shards = await ledger.shards(args.run_id) if table else []
        return info, await ledger.counts(args.run_id), shards, path
    finally:
        await ledger.aclose()
        if clients is not None:
            await clients.aclose()


def _live_state(info: Any, path: Path | None) -> tuple[str, int | None]:
    """RUNNING only while a live process holds the run's ledger; a run marked RUNNING
    whose process is gone is INTERRUPTED (and is recorded so: the repair)."""
    if path is None or info.state == "FINISHED":
        return info.state, None
    from dispatcher.runlock import RunLock

    lock = RunLock(path)
    try:
        lock.acquire(None)
    except LedgerBusy as busy:
        if busy.run_id == info.run_id:
            return "RUNNING", busy.pid
        return ("INTERRUPTED" if info.state == "RUNNING" else info.state), None
    try:
        if info.state == "RUNNING":
            from dispatcher.ledger import SqliteLedger

            async def repair() -> None:
                ledger = SqliteLedger(path)
                try:
                    await ledger.set_state(info.run_id, "INTERRUPTED")
                finally:
                    await ledger.aclose()

            anyio.run(repair)
        return "INTERRUPTED", None
    finally:
        lock.release()


def _status(args: argparse.Namespace) -> int:
    info, counts, shards, path = anyio.run(run_info, args)
    state, pid = _live_state(info, path)
    report: dict[str, Any] = {
        "RunId": info.run_id,
        "State": state,
        "Attempt": info.attempt,
        "CampaignId": info.campaign_id,
        "Segment": info.segment,
        "StartedAt": info.started_at,
        "FinishedAt": info.finished_at,
        "Settled": sum(counts.values()),
        "ByStatus": dict(sorted(counts.items())),
    }
    if pid is not None:
        report["Pid"] = pid
    if shards or "shards" in info.extra:
        states = Counter(str(s.get("state", "?")) for s in shards)
        report["Shards"] = {"Total": info.extra.get("shards", len(shards)), **states}
    if args.json:
        print_json(report)
        return EXIT_OK
    print(f"run {info.run_id}  {state}  attempt {info.attempt}  campaign {info.campaign_id}")
    print(f"started {info.started_at}  finished {info.finished_at or '-'}")
    print(f"settled {report['Settled']:,} records")
    for status, n in report["ByStatus"].items():
        print(f"  {status:<20}{n:>12,}")
    if "Shards" in report:
        print("shards " + "  ".join(f"{k} {v}" for k, v in report["Shards"].items()))
    return EXIT_OK


def register(sub: Any) -> None:
    status = sub.add_parser("status", help="progress and counts of a run (also while it runs)")
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--out", default="out", help="the run's output directory")
    status.add_argument("--ledger", metavar="PATH", help="ledger file (default: OUT/ledger.sqlite)")
    status.add_argument("--ledger-table", help="DynamoDB ledger table of a fleet run")
    aws_flags(status, region="AWS region of the ledger table")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
