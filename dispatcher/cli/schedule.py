"""``dispatcher schedule CONFIG``: a campaign's occurrences, and which this ledger sent."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from dispatcher.cli.common import EXIT_OK, print_json
from dispatcher.config import Settings

PAST = 3
"""Occurrences already open that are shown (the due one and the two before it)."""


async def _runs(settings: Settings, path: Path) -> list[tuple[Any, int]]:
    """(RunInfo, endpoints sent) of every run of the campaign in the ledger at ``path``."""
    from dispatcher.ledger import SqliteLedger

    ledger = SqliteLedger(path)
    try:
        runs = await ledger.runs_of(settings.project.application_id, settings.campaign.id)
        return [(run, await ledger.claimed(run.run_id)) for run in runs]
    finally:
        await ledger.aclose()


def occurrences(settings: Settings, runs: list[tuple[Any, int]], now: datetime,
                upcoming: int) -> list[dict[str, Any]]:  # fmt: skip
    """The last occurrences that opened and the next ``upcoming``, each with its state:
    SENT (a finished run sent it), FINISHED (a finished run sent nothing: a run sends
    it again), RUNNING or INTERRUPTED (resume that run), DUE (the one a run sends now),
    MISSED (an older one never run: a late run sends only the latest), UPCOMING."""
    from dispatcher.campaign.schedule import utc_iso

    schedule = settings.schedule
    by_key: dict[str, tuple[Any, int]] = {}
    for run, sent in runs:
        key = run.extra.get("Occurrence")
        if key and (key not in by_key or sent or run.state != "FINISHED"):
            by_key[key] = (run, sent)
    past = schedule.recent(now, PAST)
    rows = []
    for when in past + schedule.upcoming(now, upcoming):
        key = utc_iso(when)
        row: dict[str, Any] = {"Occurrence": key, "Opens": utc_iso(schedule.opens(when))}
        if key in by_key:
            run, sent = by_key[key]
            state = run.state if run.state != "FINISHED" else ("SENT" if sent else "FINISHED")
            row.update(State=state, RunId=run.run_id, Sent=sent)
        elif when in past:
            row["State"] = "DUE" if when == past[-1] else "MISSED"
        else:
            row["State"] = "UPCOMING"
        rows.append(row)
    return rows


def _schedule(args: argparse.Namespace) -> int:
    from dispatcher.campaign.schedule import utc_iso
    from dispatcher.cli.runs import _settings
    from dispatcher.ledger import LEDGER_FILE

    if args.n < 0:
        from dispatcher.errors import ConfigError

        raise ConfigError(f"must be at least 0, got {args.n}", key="-n")
    settings = _settings(args.config, args)
    schedule = settings.schedule
    path = Path(args.ledger) if args.ledger else Path(args.out) / LEDGER_FILE
    runs = anyio.run(_runs, settings, path) if path.is_file() else []
    rows = occurrences(settings, runs, datetime.now(UTC), args.n)
    campaign = settings.campaign
    report = {
        "CampaignId": campaign.id,
        "Frequency": schedule.frequency,
        "StartTime": utc_iso(schedule.start) if schedule.start else "IMMEDIATE",
        "EndTime": utc_iso(schedule.end) if schedule.end else None,
        "IsLocalTime": schedule.local_time,
        "IsPaused": campaign.is_paused,
        "Ledger": str(path),
        "Occurrences": rows,
    }
    if args.json:
        print_json(report)
        return EXIT_OK
    flags = [schedule.frequency, f"from {report['StartTime']}"]
    if schedule.end:
        flags.append(f"until {report['EndTime']}")
    if schedule.local_time:
        flags.append("in each endpoint's local time")
    if campaign.is_paused:
        flags.append("PAUSED")
    print(f"campaign {campaign.id}: {', '.join(flags)}")
    if not rows:
        print("  no occurrence (IMMEDIATE: it runs when you run it)")
    for row in rows:
        run = f"  run {row['RunId']} ({row['Sent']:,} sent)" if "RunId" in row else ""
        print(f"  {row['Occurrence']}  {row['State']:<12}{run}")
    return EXIT_OK


def register(sub: Any) -> None:
    from dispatcher.cli.runs import _campaign_json_flags

    parser = sub.add_parser("schedule", help="a campaign's occurrences: next, and sent")
    parser.add_argument("config", help="campaign config (TOML)")
    parser.add_argument("--out", default="out", help="the runs' output directory")
    parser.add_argument("--ledger", metavar="PATH", help="ledger file (default: OUT/ledger.sqlite)")
    parser.add_argument("-n", type=int, default=5, help="how many upcoming occurrences (5)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    _campaign_json_flags(parser)
    parser.set_defaults(func=_schedule)
