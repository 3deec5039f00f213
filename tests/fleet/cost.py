"""What a fleet run costs in DynamoDB write units, measured on the wire.

``fleet_write_units`` runs ``dispatcher submit`` and N ``dispatcher worker --burst``
processes (the CLI, so any checkout can be measured the same way: ``root``) against
moto, with the ledger's DynamoDB traffic (``AWS_ENDPOINT_URL_DYNAMODB``) going through a
metering ``DynamoProxy``, which bills every write as DynamoDB does (see its doc). Used
by ``tests/fleet/test_cost.py`` (the target) and ``benchmarks/bench_fleet_cost.py``
(before/after, and ``benchmarks/run.py``'s line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from tests.ledger.dynamo_proxy import DynamoProxy

CONFIG = """
[project]
ApplicationId = "cost-app"
Region = "us-east-1"
[campaign]
Id = "cost-{run}"
{limits}
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{{{Id}}}}"
OriginationNumber = "+12065550000"
{channel}
[ledger]
dynamodb_table = "ledger"
[dispatch]
send_concurrency = {send_concurrency}
"""

ROOT = Path(__file__).resolve().parents[2]


def segment_lines(n: int, *, duplicate_every: int = 0) -> list[str]:
    """``n`` SMS endpoints; every ``duplicate_every``-th repeats an earlier address."""
    lines = []
    for i in range(1, n + 1):
        number = i - 1 if duplicate_every and i % duplicate_every == 0 else i
        lines.append(json.dumps({"Id": f"ep-{i}", "ChannelType": "SMS",
                                 "Address": f"+1206{number:07d}"}))  # fmt: skip
    return lines


def boto(service: str, moto_url: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def prepare_fleet(moto_url: str, *, name: str, endpoints: int, duplicate_every: int = 0,
                  visibility: int = 60) -> str:  # fmt: skip
    """The segment ``s3://cost/{name}/segment.jsonl``, the ``ledger`` table and the job
    queue ``{name}-jobs`` on moto (blocking: run it in a thread); the queue's URL."""
    s3, sqs, dynamodb = (boto(service, moto_url) for service in ("s3", "sqs", "dynamodb"))
    if not any(b["Name"] == "cost" for b in s3.list_buckets().get("Buckets", [])):
        s3.create_bucket(Bucket="cost")
    body = "\n".join(segment_lines(endpoints, duplicate_every=duplicate_every)) + "\n"
    s3.put_object(Bucket="cost", Key=f"{name}/segment.jsonl", Body=body.encode())
    if "ledger" not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName="ledger", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )  # fmt: skip
    queue = sqs.create_queue(QueueName=f"{name}-jobs",
                             Attributes={"VisibilityTimeout": str(visibility)})  # fmt: skip
    return str(queue["QueueUrl"])


def write_config(workdir: Path, *, name: str, sms_url: str | None, send_concurrency: int = 8,
                 messages_per_second: int | None = None) -> Path:  # fmt: skip
    """The campaign's config file: SMS through the server at ``sms_url``, else the outbox."""
    channel = (f'[channels.SMS]\nsender = "sms"\nendpoint_url = "{sms_url}"' if sms_url
               else "")  # fmt: skip
    limits = (f"Limits = {{ MessagesPerSecond = {messages_per_second} }}"
              if messages_per_second else "")  # fmt: skip
    cfg = workdir / f"{name}.toml"
    cfg.write_text(CONFIG.format(run=name, channel=channel, send_concurrency=send_concurrency,
                                 limits=limits))  # fmt: skip
    return cfg


def fleet_env(moto_url: str, dynamodb_url: str, root: Path = ROOT) -> dict[str, str]:
    """The environment of the fleet's processes: moto for AWS, DynamoDB at ``dynamodb_url``
    (a ``DynamoProxy`` in front of moto)."""
    return {**os.environ, "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(root)}  # fmt: skip


async def fleet_write_units(
    *, moto_url: str, workdir: Path, endpoints: int, shard_size: int, workers: int = 2,
    sms_url: str | None = None, root: Path = ROOT, name: str = "cost", duplicate_every: int = 0,
    send_concurrency: int = 8, messages_per_second: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run one fleet run of ``endpoints`` SMS endpoints; the write units it cost.

    ``sms_url``: send through the SMS test server there (10 messages a send call), else
    the outbox (100 a call). ``messages_per_second``: the campaign's
    ``Limits.MessagesPerSecond``. Returns ``endpoints``, ``write_units``,
    ``units_per_endpoint``, ``units`` (by operation), ``calls`` (by operation),
    ``by_item`` (single-item requests by operation and item kind, see ``DynamoProxy``),
    the run's ``summary``, ``seconds`` (from the workers' start to their end) and
    ``worker_logs`` (each worker's stderr).
    """
    s3 = boto("s3", moto_url)
    queue = await anyio.to_thread.run_sync(lambda: prepare_fleet(
        moto_url, name=name, endpoints=endpoints, duplicate_every=duplicate_every))  # fmt: skip
    cfg = write_config(workdir, name=name, sms_url=sms_url, send_concurrency=send_concurrency,
                       messages_per_second=messages_per_second)  # fmt: skip
    async with DynamoProxy(moto_url, meter=True) as proxy:
        env = fleet_env(moto_url, proxy.url, root)
        submit = await anyio.run_process(
            [sys.executable, "-m", "dispatcher", "submit", str(cfg), "--queue", queue,
             "--segment", f"s3://cost/{name}/segment.jsonl", "--shard-size", str(shard_size)],
            cwd=root, env=env, check=False,
        )  # fmt: skip
        if submit.returncode != 0:
            raise RuntimeError(f"submit failed: {submit.stderr.decode()[-2000:]}")
        run_id = submit.stdout.decode().split()[1]

        async def worker() -> None:
            done = await anyio.run_process(
                [sys.executable, "-m", "dispatcher", "worker", "--queue", queue, "--burst",
                 "--wait", "1"], cwd=root, env=env, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"a worker failed: {done.stderr.decode()[-2000:]}")
            logs.append(done.stderr.decode())

        logs: list[str] = []

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
        seconds = time.monotonic() - started
        units, calls, by_item = Counter(proxy.units), Counter(proxy.calls), Counter(proxy.by_item)

    def summary() -> dict[str, Any]:
        key = f"{name}/runs/{run_id}/summary.json"
        found: dict[str, Any] = json.loads(s3.get_object(Bucket="cost", Key=key)["Body"].read())
        return found

    total = sum(units.values())
    return {"endpoints": endpoints, "write_units": total, "units_per_endpoint": total / endpoints,
            "units": dict(units), "calls": dict(calls), "by_item": dict(by_item),
            "seconds": seconds, "worker_logs": logs,
            "summary": await anyio.to_thread.run_sync(summary)}  # fmt: skip
