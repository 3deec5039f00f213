"""The shard job message: typed, round-tripped, and refused when it is not one."""

from __future__ import annotations

import orjson
import pytest

from dispatcher.errors import ConfigError, DispatchError
from dispatcher.fleet.jobs import JOB_TYPE, Delivery, LineBits, ShardJob
from dispatcher.fleet.plan import FirstLines
from dispatcher.segments.shards import Shard

SHARD = Shard(3, "b", "seg/part-1.jsonl", '"etag"', "jsonl", False, 100, 900, 5001, 7000, 1990)


def job(**changes: object) -> ShardJob:
    fields: dict[str, object] = dict(
        run_id="r1", shard=SHARD, shards=4, config_path="/c/campaign.toml",
        config_data={"campaign": {"Id": "c"}}, table="ledger", region="us-east-1",
        output="s3://b/runs/r1/", duplicates=LineBits.of(5001, [5001, 5003, 7000]),
        shared_ids=LineBits.of(5001, [6000]),
    )  # fmt: skip
    fields.update(changes)
    return ShardJob(**fields)  # type: ignore[arg-type]


def test_a_job_round_trips_through_its_message() -> None:
    body = job().to_message()
    data = orjson.loads(body)
    assert data["Type"] == JOB_TYPE and data["Shard"] == SHARD.to_json()
    back = ShardJob.from_message(body)
    assert back == job()
    assert back.lines == (5001, 7000)
    assert back.duplicates.lines() == [5001, 5003, 7000] and len(back.duplicates) == 3
    assert (
        5002 not in back.duplicates and 4999 not in back.duplicates and 9000 not in back.duplicates
    )
    assert back.output_url("summary.json") == "s3://b/runs/r1/summary.json"
    empty = ShardJob.from_message(
        job(duplicates=LineBits(5001), shared_ids=LineBits()).to_message()
    )
    assert "Duplicates" not in orjson.loads(job(duplicates=LineBits(5001)).to_message())
    assert len(empty.duplicates) == len(empty.shared_ids) == 0


def test_what_is_not_a_job_of_this_format_is_refused() -> None:
    with pytest.raises(DispatchError, match="m1 is not a shard job"):
        ShardJob.from_message(b"{not json", message_id="m1")
    with pytest.raises(DispatchError, match="not a shard job"):
        ShardJob.from_message(b'{"Type": "something/1"}')
    old = orjson.loads(job().to_message())
    old["Type"] = "dispatcher.shard/1"
    with pytest.raises(DispatchError, match=r"dispatcher\.shard/1 job; this worker runs"):
        ShardJob.from_message(orjson.dumps(old))
    broken = orjson.loads(job().to_message())
    broken["Duplicates"] = "not base64!"
    with pytest.raises(DispatchError, match="malformed shard job"):
        ShardJob.from_message(orjson.dumps(broken))
    delivery = Delivery.of({"MessageId": "m2", "ReceiptHandle": "h", "Body": "[]",
                            "Attributes": {"ApproximateReceiveCount": "3"}})  # fmt: skip
    assert delivery.receive_count == 3
    with pytest.raises(DispatchError, match="m2 is not a shard job"):
        delivery.job()


def test_a_job_too_large_for_sqs_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="over SQS's 262144-byte limit"):
        job(config_data={"big": "x" * 300_000}).to_message()


def test_first_lines_keeps_the_first_line_of_each_key() -> None:
    first = FirstLines()
    for line in range(1, 50_001):  # enough to grow every table several times
        assert first.setdefault(f"id-{line}", line) == line
    assert first.setdefault("id-7", 90_000) == 7
    assert first.setdefault("id-50000", 1) == 50_000
    assert first.setdefault("new", 3) == 3
