"""Shard jobs run in process against moto and the SMS test server: the fleet's
guarantees with the jobs run in whatever order, twice at once, or after a crash.

``submit`` (the library call of ``dispatcher submit``) plans the run; the jobs are taken
off the queue and run with ``run_shard``, the worker's own code for one job.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from dispatcher.aws import AwsClients
from dispatcher.delivery import IN_DOUBT_REASON, OTHER_LINE_REASON
from dispatcher.fleet.jobs import Delivery, ShardJob
from dispatcher.fleet.shard import run_shard
from dispatcher.fleet.submit import submit
from dispatcher.ledger.dynamodb import DynamoLedger
from dispatcher.testing.moto import MotoServer
from dispatcher.testing.sms import SmsServer

pytestmark = pytest.mark.anyio

CONFIG = """
[project]
ApplicationId = "shards-app"
Region = "us-east-1"
AccountId = "111122223333"
[campaign]
Id = "shards"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{{{Id}}}}"
OriginationNumber = "+12065550000"
[channels.SMS]
sender = "sms"
endpoint_url = "{sms}"
[ledger]
dynamodb_table = "{table}"
[dispatch]
send_concurrency = 4
"""
SEND_CONCURRENCY, SMS_BATCH = 4, 10
_names = itertools.count()


@dataclass
class Fleet:
    clients: AwsClients
    sms: SmsServer
    config: Path
    bucket: str
    table: str

    async def segment(self, records: list[dict[str, Any]]) -> str:
        s3 = await self.clients.client("s3")
        body = "".join(json.dumps(r) + "\n" for r in records).encode()
        await s3.put_object(Bucket=self.bucket, Key="segment.jsonl", Body=body)
        return f"s3://{self.bucket}/segment.jsonl"

    async def submit(
        self, segment: str, shard_size: int, run_id: str | None = None
    ) -> list[ShardJob]:
        sqs = await self.clients.client("sqs")
        queue = (await sqs.create_queue(QueueName=f"jobs-{next(_names)}"))["QueueUrl"]
        _, count = await submit(self.config, queue_url=queue, clients=self.clients,
                                segment=segment, target_records=shard_size,
                                run_id=run_id)  # fmt: skip
        jobs: list[ShardJob] = []
        while len(jobs) < count:
            got = await sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                            VisibilityTimeout=600)  # fmt: skip
            jobs.extend(Delivery.of(m).job() for m in got.get("Messages", []))
        return sorted(jobs, key=lambda j: j.shard.index)

    async def outcomes(self, job: ShardJob) -> list[dict[str, Any]]:
        """Every shard part of the run: the rows of outcomes.jsonl, by line."""
        s3 = await self.clients.client("s3")
        prefix = job.output.removeprefix(f"s3://{self.bucket}/") + "outcomes/"
        listed = await s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        rows = []
        for obj in listed.get("Contents", []):
            answer = await s3.get_object(Bucket=self.bucket, Key=obj["Key"])
            async with answer["Body"] as body:
                rows += [json.loads(line) for line in (await body.read()).splitlines()]
        return sorted(rows, key=lambda r: r["Line"])

    async def summary(self, job: ShardJob) -> dict[str, Any]:
        s3 = await self.clients.client("s3")
        key = job.output_url("summary.json").removeprefix(f"s3://{self.bucket}/")
        answer = await s3.get_object(Bucket=self.bucket, Key=key)
        async with answer["Body"] as body:
            found: dict[str, Any] = json.loads(await body.read())
        return found


@pytest.fixture
async def fleet(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Fleet]:
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)  # fmt: skip
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    n = next(_names)
    bucket, table = f"shards-{n}", f"ledger-shards-{n}"
    clients = AwsClients("us-east-1")
    try:
        await (await clients.client("s3")).create_bucket(Bucket=bucket)
        admin = DynamoLedger(table, clients=clients)
        await admin.create_table()
        async with SmsServer() as sms:
            config = tmp_path / "shards.toml"
            config.write_text(CONFIG.format(sms=sms.url, table=table))
            yield Fleet(clients, sms, config, bucket, table)
    finally:
        await clients.aclose()


def sms(i: int, address: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"Id": f"ep-{i}", "ChannelType": "SMS", "Address": f"+1206{address or i:07d}",
            **extra}  # fmt: skip


def delivered(fleet: Fleet) -> Counter[str]:
    return Counter(m["DestinationPhoneNumber"] for m in fleet.sms.messages)


async def test_duplicates_across_shards_are_decided_in_segment_order(fleet: Fleet) -> None:
    """Shards run last to first: DUPLICATE_ADDRESS still goes to the later line of the
    segment (submit decided it over the whole segment), an opted-out twin blocks nobody,
    and two lines with one endpoint Id in different shards are never both sent."""
    records = [sms(i) for i in range(1, 31)]
    records[25 - 1] = sms(25, address=3)  # line 25 repeats line 3's address (shard 3 vs 1)
    records[15 - 1] = sms(15, address=12)  # line 15 repeats line 12's (both shard 2)
    records[8 - 1] = sms(8, address=18, OptOut="ALL")  # line 18's twin, opted out
    records[22 - 1] = {**sms(22), "Id": "ep-5"}  # line 22 has line 5's endpoint Id
    jobs = await fleet.submit(await fleet.segment(records), shard_size=10)
    assert [(j.shard.first_line, j.shard.last_line) for j in jobs] == [(1, 10), (11, 20), (21, 30)]
    assert [j.duplicates.lines() for j in jobs] == [[], [15], [25]]
    assert [j.shared_ids.lines() for j in jobs] == [[5], [], [22]]

    for job in reversed(jobs):
        await run_shard(job, clients=fleet.clients, worker="w")
    rows = await fleet.outcomes(jobs[0])
    assert [r["Line"] for r in rows] == list(range(1, 31)), "one outcome per line"
    status = {r["Line"]: r["Status"] for r in rows}
    assert (status[3], status[25], status[12], status[15]) == (
        "SUCCESS", "DUPLICATE_ADDRESS", "SUCCESS", "DUPLICATE_ADDRESS")  # fmt: skip
    assert (status[8], status[18]) == ("OPT_OUT", "SUCCESS")
    # ep-5: shard 3 ran first and claimed the id (first claimer wins, as in one process).
    assert (status[22], status[5]) == ("SUCCESS", "INVALID")
    assert {r["Reason"] for r in rows if r["Line"] == 5} == {OTHER_LINE_REASON}
    assert max(delivered(fleet).values()) == 1
    assert sum(delivered(fleet).values()) == Counter(status.values())["SUCCESS"] == 26
    summary = await fleet.summary(jobs[0])
    assert summary["Total"] == 30 and summary["Shards"] == 3


async def test_a_shard_run_twice_at_once_sends_each_endpoint_once(fleet: Fleet) -> None:
    """SQS delivers a shard to two workers at the same time: both run it, racing on the
    same line pages; every endpoint is sent once and every line has one outcome."""
    fleet.sms.faults.update({"delay": 0.005})
    jobs = await fleet.submit(await fleet.segment([sms(i) for i in range(1, 401)]),
                              shard_size=400)  # fmt: skip
    async with anyio.create_task_group() as tg:
        for name in ("a", "b"):
            tg.start_soon(lambda name=name: run_shard(jobs[0], clients=fleet.clients,
                                                      worker=name))  # fmt: skip
    rows = await fleet.outcomes(jobs[0])
    assert [r["Line"] for r in rows] == list(range(1, 401))
    assert max(delivered(fleet).values()) == 1
    assert len(delivered(fleet)) == 400, "each endpoint sent by one of the two"
    assert {r["Status"] for r in rows} == {"SUCCESS"}


async def test_a_crashed_run_submitted_again_sends_nothing_twice(fleet: Fleet) -> None:
    """A worker dies mid-shard (its task cancelled: nothing after that is written). The
    run is submitted again (its next attempt): the lines it settled are skipped, its
    sends that succeeded answer SENT, those in flight end in doubt, never sent again."""
    fleet.sms.faults.update({"delay": 0.01})
    segment = await fleet.segment([sms(i) for i in range(1, 301)])
    jobs = await fleet.submit(segment, shard_size=100)
    await run_shard(jobs[0], clients=fleet.clients, worker="w1")
    with anyio.move_on_after(60):  # a bound in case it never gets there, not a timing
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_shard(jobs[1], clients=fleet.clients, worker="w2"))
            while len(fleet.sms.messages) < 100 + 40:  # noqa: ASYNC110 (a server's record)
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()  # the worker dies mid-shard
    sent_before = len(fleet.sms.messages)
    assert 100 + 40 <= sent_before < 300, "the crash came mid-shard"

    again = await fleet.submit(segment, shard_size=100, run_id=jobs[0].run_id)
    assert [j.run_id for j in again] == [jobs[0].run_id] * 3
    for job in again:
        await run_shard(job, clients=fleet.clients, worker="w3")
    rows = await fleet.outcomes(again[0])
    assert [r["Line"] for r in rows] == list(range(1, 301)), "one outcome per line"
    assert max(delivered(fleet).values()) == 1, "nothing sent twice"
    by_status: dict[str, set[str]] = {}
    for r in rows:
        by_status.setdefault(r["Status"], set()).add(f"+1206{r['Line']:07d}")
    assert set(by_status) <= {"SUCCESS", "TEMPORARY_FAILURE"}
    success, doubt = by_status["SUCCESS"], by_status.get("TEMPORARY_FAILURE", set())
    assert success <= set(delivered(fleet)) <= success | doubt
    assert len(doubt) <= SEND_CONCURRENCY * SMS_BATCH, "only sends in flight are in doubt"
    assert all(r["Reason"] == IN_DOUBT_REASON for r in rows if r["Status"] != "SUCCESS")
    summary = await fleet.summary(again[0])
    assert summary["Total"] == 300
    ledger = DynamoLedger(fleet.table, clients=fleet.clients)
    try:
        assert (await ledger.get_run(jobs[0].run_id)).attempt == 2  # type: ignore[union-attr]
    finally:
        await ledger.aclose()


async def test_send_history_is_written_only_when_caps_read_it(fleet: Fleet) -> None:
    """The history costs a write unit per send and only Daily / Total caps read it: a
    campaign without caps leaves none; one with a Total cap has every send in it, and
    its next run's cap sees them."""
    segment = await fleet.segment([sms(i) for i in range(1, 21)])
    jobs = await fleet.submit(segment, shard_size=20)
    await run_shard(jobs[0], clients=fleet.clients, worker="w")
    ledger = DynamoLedger(fleet.table, clients=fleet.clients)
    try:
        ids = [f"ep-{i}" for i in range(1, 21)]
        assert await ledger.history(ids, campaign_id="shards", since=0) == {}
        fleet.config.write_text(fleet.config.read_text() + "[campaign.Limits]\nTotal = 1\n")
        capped = await fleet.submit(segment, shard_size=20)
        await run_shard(capped[0], clients=fleet.clients, worker="w")
        history = await ledger.history(ids, campaign_id="shards", since=0)
        assert history == dict.fromkeys(ids, (1, 1))
        third = await fleet.submit(segment, shard_size=20)
        await run_shard(third[0], clients=fleet.clients, worker="w")
        rows = await fleet.outcomes(third[0])
        assert {r["Status"] for r in rows} == {"TOTAL_CAP"}
    finally:
        await ledger.aclose()
    assert Counter(delivered(fleet).values()) == {2: 20}, "the first two runs sent, not the third"
