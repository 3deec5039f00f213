"""``dispatcher report RUN_ID [--out DIR]``: write ``DIR/report.html`` for a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio

from dispatcher.cli.common import EXIT_OK, say
from dispatcher.errors import ConfigError, StorageError


def _report(args: argparse.Namespace) -> int:
    from dispatcher.report import report_data, report_data_from_ledger, write_report
    from dispatcher.report.data import ReportData, held_run

    out = Path(args.out)
    ledger = Path(args.ledger) if args.ledger else out / "ledger.sqlite"
    held = held_run(out)
    data: ReportData
    if held == args.run_id:  # the run's own directory: the richest source (charts)
        state, attempt = _ledger_state(ledger, args.run_id)
        data = report_data(out, run_id=args.run_id, state=state, attempt=attempt)
    elif held is not None:
        raise ConfigError(
            f"{out} holds run {held}, not {args.run_id}: give the run's own --out, or "
            "--ledger PATH with a new --out DIR",
            key="--out",
        )
    elif ledger.is_file():
        data = anyio.run(lambda: report_data_from_ledger(ledger, args.run_id))
        out.mkdir(parents=True, exist_ok=True)
    else:
        raise ConfigError(
            f"no run in {out} and no ledger at {ledger} (use --out DIR or --ledger PATH)",
            key="--out",
        )
    path = write_report(out, data)
    say(f"dispatcher: report {path}")
    return EXIT_OK


def _ledger_state(path: Path, run_id: str) -> tuple[str | None, int | None]:
    """The run's state and attempt as its ledger records them (None, None without one)."""
    if not path.is_file():
        return None, None
    from dispatcher.ledger import SqliteLedger

    async def read() -> Any:
        ledger = SqliteLedger(path)
        try:
            return await ledger.get_run(run_id)
        finally:
            await ledger.aclose()

    try:
        info = anyio.run(read)
    except StorageError:  # the state is a detail: a report without it beats none
        return None, None
    return (info.state, info.attempt) if info is not None else (None, None)


def register(sub: Any) -> None:
    report = sub.add_parser(
        "report", help="write DIR/report.html: outcomes, rates, hook latency, failures"
    )
    report.add_argument("run_id", metavar="RUN_ID")
    report.add_argument("--out", default="out",
                        help="the run's output directory; the report is written there "
                             "(default: out)")  # fmt: skip
    report.add_argument("--ledger", metavar="PATH",
                        help="read the run from this ledger instead (a run whose directory "
                             "was reused: no charts)")  # fmt: skip
    report.set_defaults(func=_report)
