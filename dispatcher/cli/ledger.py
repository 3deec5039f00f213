"""``dispatcher ledger create-table NAME``: the fleet's DynamoDB ledger table, set up once."""

from __future__ import annotations

import argparse
from typing import Any

from dispatcher.cli.common import EXIT_OK, aws_flags, region_of, say, use_profile


def _create_table(args: argparse.Namespace) -> int:
    from dispatcher.ledger.dynamodb import create_table_sync

    use_profile(args)
    region = region_of(args)
    # The endpoint comes from AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL (botocore reads
    # them), as for every other AWS call of the dispatcher.
    created = create_table_sync(args.name, region=region)
    if created:
        say(f"dispatcher: created DynamoDB table {args.name} in {region} (on-demand)")
    else:
        say(f"dispatcher: DynamoDB table {args.name} in {region} exists and is a ledger table")
    return EXIT_OK


def register(sub: Any) -> None:
    ledger = sub.add_parser("ledger", help="the DynamoDB ledger of a worker fleet")
    actions = ledger.add_subparsers(dest="action", required=True, parser_class=type(ledger))
    create = actions.add_parser(
        "create-table", help="create the ledger table (on-demand), unless it exists"
    )
    create.add_argument("name", metavar="NAME", help="table name, e.g. dispatcher-ledger")
    aws_flags(create, region="AWS region (default: AWS_REGION, else the profile's)")
    create.set_defaults(func=_create_table)
