"""The ``dispatcher`` command: a thin shell over the library.

Exit codes: 0 when the run completes (whatever the per-endpoint outcomes), 2 for a bad
config or usage (one line naming the file and key), 1 for an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from dispatcher.config import load_settings
from dispatcher.errors import ConfigError, DispatchError
from dispatcher.model import Status

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


RETRYABLE = ("THROTTLED", "TEMPORARY_FAILURE", "HOOK_FAILURE")


def _print_summary(summary: Any) -> None:
    print(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2).decode())


def _started(run_id: str) -> None:
    print(f"RunId {run_id}", flush=True)


def _ledger_arg(args: argparse.Namespace) -> bool | Path:
    if getattr(args, "no_ledger", False):
        return False
    return Path(args.ledger) if args.ledger else True


def _run(args: argparse.Namespace) -> int:
    from dispatcher.dispatch import run

    settings = _settings(args.config, args)
    summary = run(
        settings,
        segment=args.segment,
        out_dir=args.out,
        run_id=args.resume,
        resume=bool(args.resume),
        ledger=_ledger_arg(args),
        on_start=_started,
        progress=not args.quiet,
    )
    _print_summary(summary)
    return EXIT_OK


def _settings(config: str, args: argparse.Namespace) -> Any:
    from dataclasses import replace

    settings = load_settings(
        config,
        campaign_json=getattr(args, "campaign_json", None),
        settings_json=getattr(args, "settings_json", None),
    )
    if getattr(args, "segment_format", None):
        settings = replace(settings, segment_format=args.segment_format)
    return settings


async def _run_info(args: argparse.Namespace) -> Any:
    from dispatcher.ledger import LEDGER_FILE, SqliteLedger

    path = Path(args.ledger) if args.ledger else Path(args.out) / LEDGER_FILE
    if not path.is_file():
        raise ConfigError(f"no ledger at {path} (use --out DIR or --ledger PATH)", key="--out")
    ledger = SqliteLedger(path)
    try:
        info = await ledger.get_run(args.run_id)
        if info is None:
            raise ConfigError(f"run {args.run_id} is not in the ledger {path}", key="RUN_ID")
        return info, await ledger.counts(args.run_id)
    finally:
        await ledger.aclose()


def _retry(args: argparse.Namespace) -> int:
    import anyio

    from dispatcher.dispatch import run

    statuses = [s.strip().upper() for s in args.status.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in Status.__members__]
    if unknown or not statuses:
        raise ConfigError(f"unknown status {', '.join(unknown) or '(none)'}", key="--status")
    info, _ = anyio.run(_run_info, args)
    settings = _settings(args.config or info.config, args)
    summary = run(
        settings,
        segment=args.segment,
        out_dir=args.out,
        run_id=args.run_id,
        retry=statuses,
        ledger=_ledger_arg(args),
        on_start=_started,
        progress=not args.quiet,
    )
    _print_summary(summary)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    import anyio

    info, counts = anyio.run(_run_info, args)
    report = {
        "RunId": info.run_id,
        "State": info.state,
        "Attempt": info.attempt,
        "CampaignId": info.campaign_id,
        "Segment": info.segment,
        "StartedAt": info.started_at,
        "FinishedAt": info.finished_at,
        "Settled": sum(counts.values()),
        "ByStatus": dict(sorted(counts.items())),
    }
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    print(f"run {info.run_id}  {info.state}  attempt {info.attempt}  campaign {info.campaign_id}")
    print(f"started {info.started_at}  finished {info.finished_at or '-'}")
    print(f"settled {report['Settled']:,} records")
    for status, n in report["ByStatus"].items():
        print(f"  {status:<20}{n:>12,}")
    return EXIT_OK


def _ledger_flags(parser: argparse.ArgumentParser, *, allow_none: bool = True) -> None:
    parser.add_argument(
        "--ledger",
        metavar="PATH",
        help="ledger file (default: OUT/ledger.sqlite); share one to share caps",
    )
    if allow_none:
        parser.add_argument(
            "--no-ledger",
            action="store_true",
            help="no ledger: no resume, retry or caps (benchmarks)",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dispatcher", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a campaign send over a segment")
    run.add_argument("config", help="campaign config (TOML)")
    run.add_argument("--segment", help="segment source (overrides [segment] source)")
    run.add_argument(
        "--segment-format",
        choices=("jsonl", "csv"),
        help="segment format (default: from the file extension)",
    )
    run.add_argument("--out", default="out", help="output directory (default: out)")
    run.add_argument("--resume", metavar="RUN_ID", help="finish a run that stopped")
    run.add_argument(
        "--campaign-json", metavar="FILE", help="campaign from `aws pinpoint get-campaign` output"
    )
    run.add_argument(
        "--settings-json",
        metavar="FILE",
        help="project settings from `aws pinpoint get-application-settings` output",
    )
    _ledger_flags(run)
    run.set_defaults(func=_run)

    retry = sub.add_parser("retry", help="dispatch again the endpoints of a run that failed")
    retry.add_argument("run_id", metavar="RUN_ID")
    retry.add_argument(
        "--status",
        default=",".join(RETRYABLE),
        help=f"statuses to retry (default: {','.join(RETRYABLE)})",
    )
    retry.add_argument("--config", help="config file (default: the one the run used)")
    retry.add_argument("--segment", help="segment source (default: the one the run used)")
    retry.add_argument("--out", default="out", help="the run's output directory")
    _ledger_flags(retry, allow_none=False)
    retry.set_defaults(func=_retry)

    status = sub.add_parser("status", help="progress and counts of a run (also while it runs)")
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--out", default="out", help="the run's output directory")
    status.add_argument("--ledger", metavar="PATH", help="ledger file (default: OUT/ledger.sqlite)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
    try:
        from dispatcher.lambda_host.command import register
    except ImportError:  # pragma: no cover - the local host is optional while building
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except DispatchError as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dispatcher: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped to `head`): not an error of the run.
        sys.stdout = open(os.devnull, "w")
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
