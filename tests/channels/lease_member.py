"""One member of a shared ceiling, as its own process: sends SMS through the SMS wire
server under a ``SharedCeilings`` campaign ceiling, then prints one JSON line.

    python -m tests.channels.lease_member --store sqlite:/path/ledger.sqlite \\
        --scope run-1 --rate 20 --sms http://127.0.0.1:PORT --first 1 --count 40

``--store dynamodb:TABLE`` uses the fleet ledger's table (``AWS_ENDPOINT_URL`` points at
moto in tests). The send path is the production one: an ``SmsSender`` paced by a
``Pacing`` over the shared ceiling, fed batches of ``max_batch`` by several workers as
the send stage does. The JSON line: ``sent``, ``store_writes``, ``seconds`` (of
sending), ``final_share`` (this member's share just before it gives the lease back).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.channels import sms
from dispatcher.channels.base import Message, SenderContext
from dispatcher.model import Status
from dispatcher.ratelimit import CAMPAIGN, LeaseStore, Pacing, RateLimiter, SharedCeilings, all_of

REGION = "us-east-1"


def store_for(spec: str, clients: AwsClients) -> LeaseStore:
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        from dispatcher.ratelimit.sqlite import SqliteLeaseStore

        return SqliteLeaseStore(where)
    from dispatcher.ratelimit.dynamodb import DynamoLeaseStore

    return DynamoLeaseStore(where, clients=clients)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    clients = AwsClients(REGION, max_pool_connections=32)
    store = store_for(args.store, clients)
    try:
        async with SharedCeilings(store, scope=args.scope, ttl=args.ttl,
                                  renew_every=args.renew_every, skew=0.5) as ceilings:  # fmt: skip
            ctx = SenderContext("app", REGION, "111122223333", clients, "/tmp")
            sender = sms.create("SMS", {"endpoint_url": args.sms}, ctx)
            campaign = ceilings(CAMPAIGN, args.rate)
            sender.pace(Pacing(all_of(RateLimiter(args.rate, hard=False), campaign), ceilings))
            template = {"OriginationNumber": "+12065550100"}
            messages = [
                Message(f"ep-{i}", i, "SMS", f"+1206{i:07d}", None, f"hi {i}", template=template)
                for i in range(args.first, args.first + args.count)
            ]
            batches = [messages[i : i + sender.max_batch]
                       for i in range(0, len(messages), sender.max_batch)]  # fmt: skip
            sent = 0
            started = time.monotonic()

            async def worker() -> None:
                nonlocal sent
                while batches:
                    results = await sender.send(batches.pop(0))
                    sent += sum(r.status is Status.SUCCESS for r in results)

            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(worker)
            seconds = time.monotonic() - started
            final_share = campaign.rate
    finally:
        await store.aclose()
        await clients.aclose()
    return {"sent": sent, "store_writes": store.writes, "seconds": seconds,
            "final_share": final_share, "pid": os.getpid()}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.channels.lease_member")
    parser.add_argument("--store", required=True, help="sqlite:PATH or dynamodb:TABLE")
    parser.add_argument("--scope", required=True)
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--sms", required=True, help="the SMS wire server's URL")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--ttl", type=float, default=4.0)
    parser.add_argument("--renew-every", type=float, default=0.5)
    result = anyio.run(main, parser.parse_args())
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
