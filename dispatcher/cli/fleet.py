"""``dispatcher submit`` and ``worker``: a fleet of workers on an SQS queue."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import anyio

from dispatcher.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_OK,
    aws_flags,
    region_of,
    say,
    use_profile,
)
from dispatcher.config import load_settings
from dispatcher.errors import DispatchError


def _submit(args: argparse.Namespace) -> int:
    from dispatcher.aws import AwsClients
    from dispatcher.fleet.submit import submit

    use_profile(args)

    async def go() -> tuple[str, int]:
        settings = load_settings(args.config, campaign_json=args.campaign_json,
                                 settings_json=args.settings_json,
                                 template_json=args.template_json or ())  # fmt: skip
        # As `dispatcher run`: --region overrides [project] Region, for submit's own calls
        # (S3, SQS, the ledger) and in the config the jobs carry to the workers.
        clients = AwsClients(args.region or settings.project.region)
        try:
            return await submit(args.config, queue_url=args.queue, clients=clients,
                                segment=args.segment, output=args.output, table=args.ledger_table,
                                target_records=args.shard_size,
                                campaign_json=args.campaign_json,
                                settings_json=args.settings_json,
                                template_json=args.template_json or (), now=args.now,
                                ignore_pause=args.ignore_pause, region=args.region,
                                segment_definition=args.segment_definition)  # fmt: skip
        finally:
            await clients.aclose()

    run_id, jobs = anyio.run(go)
    print(f"RunId {run_id}", flush=True)
    say(f"{jobs} shard jobs on {args.queue}")
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from dispatcher.aws import AwsClients
    from dispatcher.fleet.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    use_profile(args)
    region = region_of(args)

    async def go() -> int:
        clients = AwsClients(region, max_pool_connections=64)
        worker = Worker(queue_url=args.queue, clients=clients, grace=args.grace,
                        wait_time=args.wait, burst=args.burst)  # fmt: skip
        try:
            if args.check:
                try:
                    await worker.check()
                except DispatchError as exc:
                    say(f"dispatcher: unhealthy: {exc}", error=True)
                    return EXIT_ENVIRONMENT
                print("ok")
                return EXIT_OK
            runner = None
            if args.metrics_port is not None:
                from dispatcher.fleet.metrics import serve_metrics

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


def register(sub: Any) -> None:
    submit = sub.add_parser("submit", help="split a run into shard jobs on an SQS queue")
    submit.add_argument("config", help="campaign config (TOML)")
    submit.add_argument("--queue", required=True, metavar="QUEUE_URL")
    submit.add_argument("--segment", help="s3://bucket/key or s3://bucket/prefix/")
    submit.add_argument("--segment-definition", metavar="FILE",
                        help="`aws pinpoint get-segment` output: send only the segment's "
                             "endpoints (overrides [segment] definition)")
    submit.add_argument("--output", metavar="S3_PREFIX", help="where outcomes and summary go")
    submit.add_argument("--ledger-table", help="DynamoDB ledger table ([ledger] dynamodb_table)")
    submit.add_argument("--shard-size", type=int, default=5000, help="records per shard job")
    submit.add_argument("--campaign-json", metavar="FILE")
    submit.add_argument("--settings-json", metavar="FILE")
    submit.add_argument("--template-json", metavar="FILE", action="append")
    submit.add_argument("--now", action="store_true",
                        help="enqueue now although the schedule's StartTime is ahead")
    submit.add_argument("--ignore-pause", action="store_true",
                        help="submit the campaign although its IsPaused is true")
    aws_flags(submit, region="AWS region (overrides [project] Region, here and in the jobs: "
                             "the segment, queue and ledger calls, and the run's project)")
    submit.set_defaults(func=_submit)

    worker = sub.add_parser("worker", help="run shard jobs from an SQS queue (a fleet member)")
    worker.add_argument("--queue", required=True, metavar="QUEUE_URL")
    aws_flags(worker, region="AWS region of the queue and the ledger (default: AWS_REGION, "
                             "else the profile's)")
    worker.add_argument("--check", action="store_true", help="health check: exit 0 if ready")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--grace", type=float, default=30.0,
                        help="seconds an in-flight shard gets after SIGTERM (default 30)")
    worker.add_argument("--wait", type=int, default=20, help="long-poll seconds (default 20)")
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here")
    worker.add_argument("--metrics-host", default="127.0.0.1")
    worker.set_defaults(func=_worker)
