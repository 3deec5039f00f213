"""Event-stream records and sinks: the published record shape, the JSON-lines file, and
Firehose / Kinesis with real aiobotocore clients (moto for the service, a small local
server for partial failures and errors moto never produces)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from aiohttp import web

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError
from dispatcher.eventstream import (
    FIREHOSE_MAX_BYTES,
    INVENTED_STATUSES,
    SEND_STATUS,
    EventStream,
    EventStreamError,
    FirehoseSink,
    JsonLinesSink,
    KinesisSink,
    create_sink,
    to_record,
)
from dispatcher.model import Outcome, Status
from dispatcher.testing._base import WireServer
from dispatcher.testing.moto import MotoServer

REGION = "us-east-1"
ACCOUNT = "123456789012"
APP = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
IDS = {"application_id": APP, "campaign_id": "camp-1", "activity_id": "act-1",
       "account_id": ACCOUNT}  # fmt: skip

# The published "Campaign event example" (Pinpoint DG, event-streams-data-campaign).
PUBLISHED_EXAMPLE = {
    "event_type": "_campaign.send",
    "event_timestamp": 1562109497426,
    "arrival_timestamp": 1562109497494,
    "event_version": "3.1",
    "application": {"app_id": "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6", "sdk": {}},
    "client": {"client_id": "d8dcf7c5-e81a-48ae-8313-f540cexample"},
    "device": {"platform": {}},
    "session": {},
    "attributes": {
        "treatment_id": "0",
        "campaign_activity_id": "5473285727f04865bc673e527example",
        "delivery_type": "GCM",
        "campaign_id": "4f8d6097c2e8400fa3081d875example",
        "campaign_send_status": "SUCCESS",
    },
    "client_context": {"custom": {"endpoint": json.dumps({
        "ChannelType": "GCM", "EndpointStatus": "ACTIVE", "OptOut": "NONE",
        "RequestId": "ec229696-9d1e-11e9-8bf1-85d0aexample",
        "EffectiveDate": "2019-07-02T23:12:54.836Z", "User": {}}, separators=(",", ":"))}},
    "awsAccountId": "123456789012",
}  # fmt: skip


def outcome(i: int, status: Status = Status.SUCCESS, channel: str = "SMS", **kw: Any) -> Outcome:
    return Outcome(i, f"ep-{i}", status, kw.pop("reason", None), channel, kw.pop("treatment", "0"))


def definition(i: int, channel: str = "SMS", pad: int = 0) -> dict[str, Any]:
    d: dict[str, Any] = {"ChannelType": channel, "Address": f"+1206{i:07d}",
                         "User": {"UserId": f"u{i}"}, "Attributes": {"N": [str(i)]}}  # fmt: skip
    if pad:
        d["Attributes"]["Pad"] = ["x" * pad]
    return d


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def test_record_has_the_published_shape() -> None:
    d = json.loads(PUBLISHED_EXAMPLE["client_context"]["custom"]["endpoint"])  # type: ignore[index]
    o = Outcome(1, "d8dcf7c5-e81a-48ae-8313-f540cexample", Status.SUCCESS, None, "GCM", "0")
    record = to_record(
        o, {**d, "Id": "d8dcf7c5-e81a-48ae-8313-f540cexample"},
        application_id=APP, campaign_id="4f8d6097c2e8400fa3081d875example",
        activity_id="5473285727f04865bc673e527example", account_id="123456789012",
        timestamp_ms=1562109497426, arrival_ms=1562109497494,
    )  # fmt: skip
    extra = record["attributes"].pop("dispatcher_status")
    assert extra == "SUCCESS"
    assert record == PUBLISHED_EXAMPLE
    assert list(record) == list(PUBLISHED_EXAMPLE)  # same key order as the example


def test_every_status_maps_to_a_send_status() -> None:
    assert set(SEND_STATUS) == set(Status)
    pinpoint = {"SUCCESS", "FAILURE", "THROTTLED", "HOLDOUT", "QUIET_TIME", "DAILY_CAP",
                "TOTAL_CAP", "EXPIRED", "DUPLICATE_ADDRESS", "OPT_OUT"}  # fmt: skip
    assert set(SEND_STATUS.values()) == pinpoint | INVENTED_STATUSES
    assert SEND_STATUS[Status.HOOK_FAILURE] == SEND_STATUS[Status.PERMANENT_FAILURE] == "FAILURE"


def test_holdout_failure_and_custom_delivery_records() -> None:
    held = to_record(outcome(1, Status.HOLDOUT, treatment=None, reason="in the 10% holdout"),
                     definition(1), timestamp_ms=5, **IDS)  # fmt: skip
    assert "treatment_id" not in held["attributes"]
    assert held["attributes"]["campaign_send_status"] == "HOLDOUT"
    assert held["attributes"]["dispatcher_reason"] == "in the 10% holdout"
    failed = to_record(outcome(2, Status.HOOK_FAILURE, treatment="3"), None, timestamp_ms=5, **IDS)
    assert failed["attributes"]["campaign_send_status"] == "FAILURE"
    assert failed["attributes"]["dispatcher_status"] == "HOOK_FAILURE"
    assert failed["attributes"]["treatment_id"] == "3"
    assert failed["client_context"]["custom"]["endpoint"] == "{}"
    custom = to_record(outcome(3, channel="EMAIL"), definition(3, "EMAIL"), timestamp_ms=5,
                       delivery_type="CUSTOM", **IDS)  # fmt: skip
    assert custom["attributes"]["delivery_type"] == "CUSTOM"
    assert json.loads(custom["client_context"]["custom"]["endpoint"])["ChannelType"] == "EMAIL"


# --------------------------------------------------------------------------------------
# JSON-lines file and the publisher
# --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_publisher_writes_json_lines_in_batches_and_on_close(tmp_path: Path) -> None:
    sink = create_sink({"path": "events/run.jsonl"}, clients=AwsClients(REGION),
                       out_dir=tmp_path, file="c.toml")  # fmt: skip
    assert isinstance(sink, JsonLinesSink)
    await sink.open()
    stream = EventStream(sink, batch_size=3, max_delay=3600, custom_endpoint_types={"EMAIL"},
                         **IDS)  # fmt: skip
    path = tmp_path / "events" / "run.jsonl"
    await stream.publish([(outcome(1), definition(1)), (outcome(2), definition(2))])
    assert path.read_bytes() == b""  # buffered
    unreadable = Outcome(3, None, Status.INVALID, "bad JSON")
    await stream.publish(
        [(unreadable, None), (outcome(4, channel="EMAIL"), definition(4, "EMAIL"))]
    )
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["client"]["client_id"] for r in lines] == ["ep-1", "ep-2", "ep-4"]
    assert lines[2]["attributes"]["delivery_type"] == "CUSTOM"
    assert lines[0]["attributes"]["delivery_type"] == "SMS"
    await stream.publish([(outcome(5, Status.QUIET_TIME), definition(5))])
    await stream.aclose()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["client"]["client_id"] for r in lines] == ["ep-1", "ep-2", "ep-4", "ep-5"]
    assert lines[-1]["attributes"]["campaign_send_status"] == "QUIET_TIME"
    assert stream.skipped == 1 and sink.written == 4


@pytest.mark.anyio
async def test_publisher_flushes_when_the_oldest_record_is_stale(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "e.jsonl")
    stream = EventStream(sink, batch_size=1000, max_delay=0.0, **IDS)
    await stream.publish([(outcome(1), definition(1))])
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 1
    await stream.aclose()


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({}, "event_stream.DestinationStreamArn", "give DestinationStreamArn"),
        (
            {
                "path": "e.jsonl",
                "DestinationStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            },
            "event_stream.path",
            "not both",
        ),
        ({"Path": "e.jsonl"}, "event_stream.Path", "unknown key"),
        ({"path": 5}, "event_stream.path", "expected a string"),
        (
            {"DestinationStreamArn": "arn:aws:kinesis:us-east-1:123456789012:deliverystream/s"},
            "event_stream.DestinationStreamArn",
            "expected arn:aws:firehose",
        ),
        (
            {"DestinationStreamArn": "arn:aws:firehose:us-east-1:1234:deliverystream/s"},
            "event_stream.DestinationStreamArn",
            "expected arn:aws:firehose",
        ),
        (
            {"DestinationStreamArn": "arn:aws:sqs:us-east-1:123456789012:queue"},
            "event_stream.DestinationStreamArn",
            "expected",
        ),
        (
            {
                "DestinationStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/"
                + "n" * 65
            },
            "event_stream.DestinationStreamArn",
            "at most 64",
        ),
        (
            {"path": "e.jsonl", "endpoint_url": "http://x"},
            "event_stream.endpoint_url",
            "only applies",
        ),
    ],
)
def test_bad_event_stream_tables_are_config_errors(
    table: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        create_sink(table, clients=AwsClients(REGION), out_dir=Path("."), file="c.toml")
    assert (info.value.file, info.value.key) == ("c.toml", key)
    assert words in info.value.message


def test_arns_choose_the_sink_and_region() -> None:
    clients = AwsClients(REGION)
    pasted = {"DestinationStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/pp",
              "RoleArn": "arn:aws:iam::123456789012:role/pinpoint-events",
              "ApplicationId": APP, "LastModifiedDate": "2024-01-01T00:00:00.000Z"}  # fmt: skip
    fh = create_sink(pasted, clients=clients, out_dir=Path("."))
    assert isinstance(fh, FirehoseSink) and (fh.region, fh.name) == ("eu-west-1", "pp")
    cn = "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s.1"
    ks = create_sink({"DestinationStreamArn": cn}, clients=clients, out_dir=Path("."))
    assert isinstance(ks, KinesisSink) and (ks.region, ks.name) == ("cn-north-1", "s.1")


# --------------------------------------------------------------------------------------
# AWS: fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials; no shared config, no instance metadata, no real endpoints."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_FIREHOSE", "AWS_ENDPOINT_URL_KINESIS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def clients() -> AsyncIterator[AwsClients]:
    c = AwsClients(REGION, connect_timeout=1.0, read_timeout=5.0)
    try:
        yield c
    finally:
        await c.aclose()


def boto(service: str, moto: MotoServer) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=moto.url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def make_delivery_stream(moto: MotoServer, name: str = "pinpoint-events") -> str:
    boto("s3", moto).create_bucket(Bucket="events-bucket")
    boto("firehose", moto).create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
            "BucketARN": "arn:aws:s3:::events-bucket",
            "Prefix": "pinpoint/",
        },
    )
    return f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"


def s3_objects(moto: MotoServer) -> list[bytes]:
    s3 = boto("s3", moto)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="events-bucket").get("Contents", []))
    return [s3.get_object(Bucket="events-bucket", Key=k)["Body"].read() for k in keys]


def published(n: int, start: int = 0, pad: int = 0) -> list[tuple[Outcome, dict[str, Any]]]:
    statuses = itertools.cycle([Status.SUCCESS, Status.QUIET_TIME, Status.PERMANENT_FAILURE])
    return [(outcome(i, next(statuses)), definition(i, pad=pad)) for i in range(start, start + n)]


# --------------------------------------------------------------------------------------
# Firehose and Kinesis against moto
# --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_firehose_delivers_json_lines_in_calls_of_at_most_500(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, clients: AwsClients, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)  # the standard variable, no endpoint_url
    arn = make_delivery_stream(moto)
    sink = create_sink({"DestinationStreamArn": arn}, clients=clients, out_dir=tmp_path)
    assert isinstance(sink, FirehoseSink)
    await sink.open()
    stream = EventStream(sink, batch_size=1200, **IDS)
    await stream.publish(published(1200))
    await stream.aclose()
    objects = s3_objects(moto)
    assert len(objects) == 3 == sink.calls  # moto writes one object per PutRecordBatch
    lines = b"".join(objects).split(b"\n")
    assert lines[-1] == b""  # every record ends with a newline
    records = [orjson.loads(x) for x in lines[:-1]]
    assert sorted(r["client"]["client_id"] for r in records) == sorted(
        f"ep-{i}" for i in range(1200)
    )
    statuses = {r["attributes"]["campaign_send_status"] for r in records}
    assert statuses == {"SUCCESS", "QUIET_TIME", "FAILURE"}
    assert (sink.written, sink.lost) == (1200, 0)


@pytest.mark.anyio
async def test_firehose_calls_stay_under_4_mib(moto: MotoServer, clients: AwsClients) -> None:
    arn = make_delivery_stream(moto)
    sink = FirehoseSink(
        clients, arn=arn, region=REGION, name="pinpoint-events", endpoint_url=moto.url
    )
    records = [to_record(o, d, timestamp_ms=1, **IDS) for o, d in published(300, pad=30_000)]
    await sink.write(records)
    objects = s3_objects(moto)
    assert sum(len(o) for o in objects) > FIREHOSE_MAX_BYTES  # the split was needed
    assert len(objects) >= 2 and all(len(o) <= FIREHOSE_MAX_BYTES for o in objects)
    assert sum(o.count(b"\n") for o in objects) == 300 == sink.written


@pytest.mark.anyio
async def test_a_missing_delivery_stream_is_a_config_error(
    moto: MotoServer, clients: AwsClients
) -> None:
    sink = create_sink(
        {"DestinationStreamArn": f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/nope",
         "endpoint_url": moto.url}, clients=clients, out_dir=Path("."), file="c.toml",
    )  # fmt: skip
    with pytest.raises(ConfigError) as info:
        await sink.open()
    assert (info.value.file, info.value.key) == ("c.toml", "event_stream.DestinationStreamArn")


def kinesis_records(moto: MotoServer, name: str) -> list[dict[str, Any]]:
    kinesis = boto("kinesis", moto)
    out = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=10_000)
            out.extend(page["Records"])
            it = page.get("NextShardIterator") if page["Records"] else None
    return out


@pytest.mark.anyio
async def test_kinesis_delivers_one_record_per_event_keyed_by_endpoint(
    moto: MotoServer, clients: AwsClients, tmp_path: Path
) -> None:
    boto("kinesis", moto).create_stream(StreamName="pinpoint-events", ShardCount=2)
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/pinpoint-events"
    sink = create_sink({"DestinationStreamArn": arn, "endpoint_url": moto.url},
                       clients=clients, out_dir=tmp_path)  # fmt: skip
    assert isinstance(sink, KinesisSink)
    await sink.open()
    stream = EventStream(sink, batch_size=250, **IDS)
    for start in range(0, 700, 100):
        await stream.publish(published(100, start))
    await stream.aclose()
    got = kinesis_records(moto, "pinpoint-events")
    assert len(got) == 700 == sink.written
    for r in got:
        event = orjson.loads(r["Data"])
        assert r["PartitionKey"] == event["client"]["client_id"]
        assert event["event_type"] == "_campaign.send"
    assert sink.calls == 3  # 250 + 250 + 200: batches of the publisher, each one call
    assert {r["PartitionKey"] for r in got} == {f"ep-{i}" for i in range(700)}


# --------------------------------------------------------------------------------------
# Partial failures and errors (a local wire-compatible server)
# --------------------------------------------------------------------------------------


class StreamServer(WireServer):
    """Firehose ``PutRecordBatch`` and Kinesis ``PutRecords`` (JSON 1.1), with a fault plan.

    ``plan`` is consumed one put call at a time: a set of record indexes to fail, or an
    ``(HTTP status, error code)`` pair answering the whole call.
    """

    name = "streams"

    def __init__(self) -> None:
        super().__init__()
        self.plan: list[Any] = []
        self.accepted: list[bytes] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/", self._handle)]

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        body = orjson.loads(await request.read())
        self.calls.append({"Target": target, "Request": body})
        if target.endswith(("DescribeDeliveryStream", "DescribeStreamSummary")):
            return self.json({"DeliveryStreamDescription": {}, "StreamDescriptionSummary": {}})
        fault = self.plan.pop(0) if self.plan else set()
        if isinstance(fault, tuple):
            status, code = fault
            body = orjson.dumps({"__type": code, "message": "injected"})
            return web.Response(body=body, status=status, content_type="application/x-amz-json-1.1")
        firehose = target == "Firehose_20150804.PutRecordBatch"
        results = []
        for i, record in enumerate(body["Records"]):
            if i in fault:
                code = (
                    "ServiceUnavailableException"
                    if firehose
                    else "ProvisionedThroughputExceededException"
                )
                results.append({"ErrorCode": code, "ErrorMessage": "injected"})
            else:
                self.accepted.append(base64.b64decode(record["Data"]))
                results.append({"RecordId": str(i)} if firehose
                               else {"SequenceNumber": str(i), "ShardId": "shardId-0"})  # fmt: skip
        failed = sum(1 for r in results if "ErrorCode" in r)
        if firehose:
            return self.json(
                {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": results}
            )
        return self.json({"FailedRecordCount": failed, "Records": results})


@pytest.fixture
async def streams() -> AsyncIterator[StreamServer]:
    async with StreamServer() as server:
        yield server


def fast_sink(kind: str, clients: AwsClients, url: str, attempts: int = 4) -> Any:
    if kind == "firehose":
        return FirehoseSink(clients, arn=f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/s",
                            region=REGION, name="s", endpoint_url=url, attempts=attempts,
                            backoff=0.001, backoff_max=0.01)  # fmt: skip
    return KinesisSink(clients, arn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/s", region=REGION,
                       name="s", endpoint_url=url, attempts=attempts, backoff=0.001,
                       backoff_max=0.01)  # fmt: skip


def client_ids(payloads: list[bytes]) -> list[str]:
    return [orjson.loads(p)["client"]["client_id"] for p in payloads]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["firehose", "kinesis"])
async def test_failed_records_are_retried_until_they_arrive_once(
    kind: str, streams: StreamServer, clients: AwsClients
) -> None:
    sink = fast_sink(kind, clients, streams.url)
    streams.plan = [{1, 3, 4}, {0}, set()]  # 3 fail, then 1 of those 3 fails again
    records = [to_record(o, d, timestamp_ms=1, **IDS) for o, d in published(6)]
    await sink.write(records)
    assert sorted(client_ids(streams.accepted)) == [f"ep-{i}" for i in range(6)]  # once each
    sizes = [len(c["Request"]["Records"]) for c in streams.calls]
    assert sizes == [6, 3, 1]
    assert (sink.written, sink.lost, sink.calls) == (6, 0, 3)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["firehose", "kinesis"])
async def test_records_failing_every_attempt_are_counted_lost(
    kind: str, streams: StreamServer, clients: AwsClients
) -> None:
    sink = fast_sink(kind, clients, streams.url, attempts=3)
    streams.plan = [{0, 1}, {0}, {0}, set()]
    await sink.write([to_record(o, d, timestamp_ms=1, **IDS) for o, d in published(3)])
    assert (sink.written, sink.lost, sink.calls) == (2, 1, 3)
    assert "1 record(s) failed" in sink.last_error
    assert len(streams.calls) == 3  # gave up after `attempts` calls


@pytest.mark.anyio
async def test_transient_call_errors_are_retried(
    streams: StreamServer, clients: AwsClients
) -> None:
    sink = fast_sink("firehose", clients, streams.url)
    streams.plan = [(500, "InternalFailure"), (400, "ServiceUnavailableException"), set()]
    await sink.write([to_record(o, d, timestamp_ms=1, **IDS) for o, d in published(4)])
    assert sorted(client_ids(streams.accepted)) == [f"ep-{i}" for i in range(4)]
    assert (sink.written, sink.lost, sink.calls) == (4, 0, 3)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["firehose", "kinesis"])
async def test_a_refused_call_raises_event_stream_error(
    kind: str, streams: StreamServer, clients: AwsClients
) -> None:
    sink = fast_sink(kind, clients, streams.url)
    streams.plan = [(400, "ResourceNotFoundException")]
    with pytest.raises(EventStreamError, match="ResourceNotFoundException") as info:
        await sink.write([to_record(o, d, timestamp_ms=1, **IDS) for o, d in published(2)])
    assert info.value.destination == sink.arn
    assert len(streams.calls) == 1  # not retried


@pytest.mark.anyio
async def test_oversized_records_are_lost_not_sent(
    streams: StreamServer, clients: AwsClients
) -> None:
    sink = fast_sink("kinesis", clients, streams.url)
    records = [to_record(o, d, timestamp_ms=1, **IDS) for o, d in published(3)]
    big = to_record(outcome(9), definition(9, pad=1024 * 1024), timestamp_ms=1, **IDS)
    await sink.write([*records[:2], big, records[2]])
    assert sorted(client_ids(streams.accepted)) == ["ep-0", "ep-1", "ep-2"]
    assert (sink.written, sink.lost) == (3, 1)
    assert "over the" in sink.last_error


@pytest.mark.anyio
async def test_an_unreachable_destination_fails_open_with_our_error(
    clients: AwsClients, free_tcp_port: int
) -> None:
    sink = fast_sink("kinesis", clients, f"http://127.0.0.1:{free_tcp_port}")  # nobody there
    with pytest.raises(EventStreamError, match="cannot reach"):
        await sink.open()
