"""The ``dispatcher`` command: a thin shell over the library.

Exit codes: 0 when the run completes (whatever the per-endpoint outcomes), 2 for a bad
config or usage (one line naming the file and key), 1 for an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
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
    """(RunInfo, counts by status, shards) from the run's ledger, SQLite or DynamoDB."""
    table = getattr(args, "ledger_table", None)
    if table:
        from dispatcher.aws import AwsClients
        from dispatcher.ledger.dynamodb import DynamoLedger

        region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        clients = AwsClients(region or "us-east-1")
        ledger: Any = DynamoLedger(table, clients=clients)
        where = f"DynamoDB table {table}"
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
        return info, await ledger.counts(args.run_id), shards
    finally:
        await ledger.aclose()
        if clients is not None:
            await clients.aclose()


def _retry(args: argparse.Namespace) -> int:
    import anyio

    from dispatcher.dispatch import run

    statuses = [s.strip().upper() for s in args.status.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in Status.__members__]
    if unknown or not statuses:
        raise ConfigError(f"unknown status {', '.join(unknown) or '(none)'}", key="--status")
    info, _, _ = anyio.run(_run_info, args)
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

    info, counts, shards = anyio.run(_run_info, args)
    report: dict[str, Any] = {
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
    if shards or "shards" in info.extra:
        states = Counter(str(s.get("state", "?")) for s in shards)
        report["Shards"] = {"Total": info.extra.get("shards", len(shards)), **states}
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    print(f"run {info.run_id}  {info.state}  attempt {info.attempt}  campaign {info.campaign_id}")
    print(f"started {info.started_at}  finished {info.finished_at or '-'}")
    print(f"settled {report['Settled']:,} records")
    for status, n in report["ByStatus"].items():
        print(f"  {status:<20}{n:>12,}")
    if "Shards" in report:
        print("shards " + "  ".join(f"{k} {v}" for k, v in report["Shards"].items()))
    return EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    import anyio

    from dispatcher.aws import AwsClients
    from dispatcher.submit import submit

    async def go() -> tuple[str, int]:
        settings = load_settings(args.config)
        clients = AwsClients(settings.project.region)
        try:
            return await submit(args.config, queue_url=args.queue, clients=clients,
                                segment=args.segment, output=args.output, table=args.ledger_table,
                                target_records=args.shard_size,
                                campaign_json=args.campaign_json,
                                settings_json=args.settings_json)  # fmt: skip
        finally:
            await clients.aclose()

    run_id, jobs = anyio.run(go)
    print(f"RunId {run_id}", flush=True)
    print(f"{jobs} shard jobs on {args.queue}", file=sys.stderr)
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    import logging

    import anyio

    from dispatcher.aws import AwsClients
    from dispatcher.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("set --region or AWS_REGION", key="--region")

    async def go() -> int:
        clients = AwsClients(region, max_pool_connections=64)
        worker = Worker(queue_url=args.queue, clients=clients, grace=args.grace,
                        wait_time=args.wait, burst=args.burst)  # fmt: skip
        try:
            if args.check:
                try:
                    await worker.check()
                except DispatchError as exc:
                    print(f"dispatcher: unhealthy: {exc}", file=sys.stderr)
                    return EXIT_FAILED
                print("ok")
                return EXIT_OK
            runner = None
            if args.metrics_port is not None:
                from dispatcher.metrics import serve_metrics

                runner = await serve_metrics(worker, args.metrics_host, args.metrics_port)
            try:
                await worker.run()
            finally:
                if runner is not None:
                    await runner.cleanup()
            return EXIT_OK
        finally:
            await clients.aclose()

    return anyio.run(go)


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

    submit = sub.add_parser("submit", help="split a run into shard jobs on an SQS queue")
    submit.add_argument("config", help="campaign config (TOML)")
    submit.add_argument("--queue", required=True, metavar="QUEUE_URL")
    submit.add_argument("--segment", help="s3://bucket/key or s3://bucket/prefix/")
    submit.add_argument("--output", metavar="S3_PREFIX", help="where outcomes and summary go")
    submit.add_argument("--ledger-table", help="DynamoDB ledger table ([ledger] dynamodb_table)")
    submit.add_argument("--shard-size", type=int, default=5000, help="records per shard job")
    submit.add_argument("--campaign-json", metavar="FILE")
    submit.add_argument("--settings-json", metavar="FILE")
    submit.set_defaults(func=_submit)

    worker = sub.add_parser("worker", help="run shard jobs from an SQS queue (a fleet member)")
    worker.add_argument("--queue", required=True, metavar="QUEUE_URL")
    worker.add_argument("--region", help="AWS region (default: AWS_REGION)")
    worker.add_argument("--check", action="store_true", help="health check: exit 0 if ready")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--grace", type=float, default=30.0,
                        help="seconds an in-flight shard gets after SIGTERM (default 30)")
    worker.add_argument("--wait", type=int, default=20, help="long-poll seconds (default 20)")
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here")
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.set_defaults(func=_worker)

    status = sub.add_parser("status", help="progress and counts of a run (also while it runs)")
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--out", default="out", help="the run's output directory")
    status.add_argument("--ledger", metavar="PATH", help="ledger file (default: OUT/ledger.sqlite)")
    status.add_argument("--ledger-table", help="DynamoDB ledger table of a fleet run")
    status.add_argument("--region", help="AWS region of the ledger table")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
    try:
        from dispatcher.lambda_host.command import register
    except ImportError:  # pragma: no cover - the local host is optional while building
        pass
    else:
        register(sub)
    return parser


def _first_dispatch_error(group: BaseExceptionGroup[Any]) -> DispatchError | None:
    for exc in group.exceptions:
        if isinstance(exc, DispatchError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_dispatch_error(exc)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except DispatchError as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BaseExceptionGroup as group:
        # A stage's DispatchError reaches us wrapped by the task group that ran it.
        user_error = _first_dispatch_error(group)
        if user_error is None:
            raise
        print(f"dispatcher: {user_error}", file=sys.stderr)
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
