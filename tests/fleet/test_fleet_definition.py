"""A fleet run with a segment definition gives the outcomes ``dispatcher run`` gives:
``dispatcher submit`` evaluates the definition once (its jobs carry the lines outside
the segment), a ``dispatcher worker --burst`` runs the shards, on moto (S3, SQS,
DynamoDB). Twins across the segment's edge show duplicates decided among the segment's
records only, in both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest

from dispatcher import dispatch, load_settings
from dispatcher.testing.moto import MotoServer
from tests.conftest import export_with_twins, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[project]
ApplicationId = "fleet-app"
Region = "us-east-1"
[campaign]
Id = "fleet-defined"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{Id}}"
[segment]
source = "export.jsonl"
definition = "ios.json"
"""

DEFINITION = {"SegmentResponse": {
    "Id": "ios", "Name": "iOS", "SegmentType": "DIMENSIONAL", "Version": 1,
    "Dimensions": {"Demographic": {"Platform": {"DimensionType": "INCLUSIVE",
                                                "Values": ["ios"]}}},
}}  # fmt: skip


def aws_env(moto_url: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_fleet_run_sends_the_segment_as_dispatcher_run_does(
    tmp_path: Path, moto: MotoServer
) -> None:
    n = 600
    records = export_with_twins(n)
    write_jsonl(tmp_path / "export.jsonl", records)
    (tmp_path / "ios.json").write_text(json.dumps(DEFINITION))
    (tmp_path / "local.toml").write_text(CONFIG)
    (tmp_path / "fleet.toml").write_text(CONFIG + '[ledger]\ndynamodb_table = "ledger"\n')

    settings = load_settings(tmp_path / "local.toml")
    local = anyio.run(lambda: dispatch(settings, out_dir=tmp_path / "local", progress=False))
    expected = {(o["Line"], o["EndpointId"], o["Status"])
                for o in read_jsonl(tmp_path / "local" / "outcomes.jsonl")}  # fmt: skip
    assert {"SUCCESS", "DUPLICATE_ADDRESS", "INVALID"} <= set(local.by_status)

    env = aws_env(moto.url)
    client: dict[str, Any] = {"endpoint_url": moto.url, "region_name": "us-east-1",
                              "aws_access_key_id": "testing",
                              "aws_secret_access_key": "testing"}  # fmt: skip
    s3, sqs = boto3.client("s3", **client), boto3.client("sqs", **client)
    s3.create_bucket(Bucket="segments")
    s3.put_object(Bucket="segments", Key="app/export.jsonl",
                  Body=(tmp_path / "export.jsonl").read_bytes())  # fmt: skip
    queue = sqs.create_queue(QueueName="jobs")["QueueUrl"]

    created = cli("ledger", "create-table", "ledger", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    submit = cli("submit", "fleet.toml", "--queue", queue, "--segment",
                 "s3://segments/app/export.jsonl", "--shard-size", "100",
                 env=env, cwd=tmp_path)  # fmt: skip
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.split()[1]
    worker = cli("worker", "--queue", queue, "--burst", "--wait", "1", env=env, cwd=tmp_path)
    assert worker.returncode == 0, worker.stderr

    prefix = f"app/runs/{run_id}/"
    found: list[dict[str, Any]] = []
    for obj in s3.list_objects_v2(Bucket="segments", Prefix=f"{prefix}outcomes/")["Contents"]:
        text = s3.get_object(Bucket="segments", Key=obj["Key"])["Body"].read().decode()
        found.extend(json.loads(row) for row in text.splitlines())
    fleet = {(o["Line"], o["EndpointId"], o["Status"]) for o in found}
    assert len(found) == len(fleet), "a record has two outcomes"
    assert fleet == expected
    summary = json.loads(s3.get_object(Bucket="segments",
                                       Key=f"{prefix}summary.json")["Body"].read())  # fmt: skip
    assert summary["Total"] == local.total == len(expected)
    assert summary["Scanned"] == local.scanned == n
    assert summary["ByStatus"] == local.by_status
    # One summary builder: the fleet's has a local run's keys and values, plus Shards.
    assert set(summary) == set(local.to_json()) | {"Shards"}
    assert summary["TopFailures"] == local.to_json()["TopFailures"]
    assert summary["IgnoredHookEndpoints"] == local.ignored_hook_ids


def test_a_job_with_lines_outside_the_segment_is_format_3() -> None:
    from dispatcher.errors import DispatchError
    from dispatcher.fleet.jobs import JOB_TYPE, JOB_TYPE_SEGMENT, LineBits, ShardJob
    from dispatcher.segments.shards import Shard

    shard = Shard(0, "b", "seg.jsonl", '"etag"', "jsonl", False, 0, 900, 1, 100, 100)
    plain = ShardJob(run_id="r", shard=shard, shards=1, config_path="/c.toml",
                     config_data={}, table="ledger", region="us-east-1", output="s3://b/r/")
    narrowed = ShardJob(**{**{f: getattr(plain, f) for f in plain.__slots__},
                           "outside": LineBits.of(1, [2, 3, 99])})  # fmt: skip
    assert json.loads(plain.to_message())["Type"] == JOB_TYPE
    body = json.loads(narrowed.to_message())
    # A worker that predates definitions refuses it, rather than send to every line.
    assert body["Type"] == JOB_TYPE_SEGMENT != JOB_TYPE
    back = ShardJob.from_message(narrowed.to_message())
    assert back.outside.lines() == [2, 3, 99] and back == narrowed
    body["Type"] = "dispatcher.shard/9"
    with pytest.raises(DispatchError, match="this worker runs"):
        ShardJob.from_message(json.dumps(body))
