"""A worker fleet over real wire protocols: moto (S3, SQS, DynamoDB), the SMS test
server (sends counted there), hooks on the local Lambda host. One worker is SIGKILLed
mid-shard; the others finish; nothing is lost and nothing is sent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest

from dispatcher.testing import ServerProcess
from dispatcher.testing.moto import MotoServer
from tests.conftest import endpoint

ROOT = Path(__file__).resolve().parents[2]

HOOK = '''
import time

def handler(event, context):
    time.sleep(0.01)
    for endpoint in event["Endpoints"].values():
        endpoint.setdefault("Attributes", {})["Fleet"] = ["yes"]
    return event["Endpoints"]
'''

CONFIG = """
[project]
ApplicationId = "fleet-app"
Region = "us-east-1"
AccountId = "111122223333"
[campaign]
Id = "fleet"
[campaign.Hook]
LambdaFunctionName = "fleet-hook"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{{{Id}}}} {{{{Attributes.Fleet}}}}"
OriginationNumber = "+12065550000"
[functions.fleet-hook]
python = "hook.py:handler"
[channels.SMS]
sender = "sms"
endpoint_url = "{sms}"
[ledger]
dynamodb_table = "ledger"
[dispatch]
hook_concurrency = 8
send_concurrency = 8
"""


def aws_env(moto_url: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


def boto(service: str, moto_url: str):
    return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def dispatcher(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dispatcher", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "n",
    # 1,500 endpoints in 10 shards already has a worker killed mid-shard with shards left
    # for the others; the 20,000-endpoint run (moto-bound, ~5 min) is for nightly runs
    # and the fleet benchmark: pytest -m nightly.
    [1500, pytest.param(20_000, marks=pytest.mark.nightly)],
)
def test_three_workers_one_killed_nothing_lost_nothing_twice(
    tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    N, SHARD = n, n // 10
    env = aws_env(moto.url)
    for name, value in env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    s3, sqs = boto("s3", moto.url), boto("sqs", moto.url)
    s3.create_bucket(Bucket="segments")
    body = "\n".join(json.dumps(endpoint(i, "SMS")) for i in range(1, N + 1)) + "\n"
    s3.put_object(Bucket="segments", Key="fleet/segment.jsonl", Body=body.encode())
    dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]  # fmt: skip
    queue = sqs.create_queue(QueueName="jobs", Attributes={
        "VisibilityTimeout": "6",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    })["QueueUrl"]  # fmt: skip

    import anyio

    from dispatcher.ledger.dynamodb import DynamoLedger

    async def create_table() -> None:
        ledger = DynamoLedger("ledger", region="us-east-1", endpoint_url=moto.url)
        try:
            await ledger.create_table()
        finally:
            await ledger.aclose()

    anyio.run(create_table)

    with ServerProcess("sms") as sms:
        (tmp_path / "hook.py").write_text(HOOK)
        cfg = tmp_path / "fleet.toml"
        cfg.write_text(CONFIG.format(sms=sms.url))
        submit = subprocess.run(
            [sys.executable, "-m", "dispatcher", "submit", str(cfg), "--queue", queue,
             "--segment", "s3://segments/fleet/segment.jsonl", "--shard-size", str(SHARD)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert submit.returncode == 0, submit.stderr
        run_id = submit.stdout.split()[1]

        workers = [dispatcher("worker", "--queue", queue, "--wait", "1", "--grace", "20", env=env)
                   for _ in range(3)]  # fmt: skip
        try:
            # Kill worker 0 once it has sent something: it is then mid-shard.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(sms.messages()) < N // 10:
                time.sleep(0.2)
            os.kill(workers[0].pid, signal.SIGKILL)
            workers[0].wait()
            summary = None
            deadline = time.monotonic() + 1500
            while time.monotonic() < deadline:
                listing = s3.list_objects_v2(Bucket="segments", Prefix=f"fleet/runs/{run_id}/")
                keys = {o["Key"] for o in listing.get("Contents", [])}
                if f"fleet/runs/{run_id}/summary.json" in keys:
                    summary = json.loads(s3.get_object(
                        Bucket="segments", Key=f"fleet/runs/{run_id}/summary.json")["Body"].read())
                    break
                time.sleep(0.25)  # a wait for the summary object, nothing more
            assert summary is not None, "the fleet did not finish"
        finally:
            for w in workers[1:]:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            codes = [w.wait(timeout=60) for w in workers[1:]]
        assert codes == [0, 0]
        delivered = Counter(m["DestinationPhoneNumber"] for m in sms.messages())

    assert max(delivered.values()) == 1, "a number received two messages"
    parts = s3.list_objects_v2(Bucket="segments", Prefix=f"fleet/runs/{run_id}/outcomes/")
    lines: Counter[int] = Counter()
    by_status: dict[str, set[str]] = {}
    address = {f"ep-{i}": endpoint(i, "SMS")["Address"] for i in range(1, N + 1)}
    for obj in parts.get("Contents", []):
        text = s3.get_object(Bucket="segments", Key=obj["Key"])["Body"].read().decode()
        for row in text.splitlines():
            o = json.loads(row)
            lines[o["Line"]] += 1
            by_status.setdefault(o["Status"], set()).add(address[o["EndpointId"]])
    assert sorted(lines) == list(range(1, N + 1)) and max(lines.values()) == 1
    assert len(parts["Contents"]) == N // SHARD
    assert summary["Total"] == N and summary["Shards"] == N // SHARD
    # Only sends in flight when the worker died may be in doubt; none was repeated.
    assert set(by_status) <= {"SUCCESS", "TEMPORARY_FAILURE"}
    success, doubt = by_status["SUCCESS"], by_status.get("TEMPORARY_FAILURE", set())
    assert success <= set(delivered) <= success | doubt
    assert len(doubt) <= 8 * 10
    dlq_left = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert dlq_left == {"ApproximateNumberOfMessages": "0",
                        "ApproximateNumberOfMessagesNotVisible": "0"}  # fmt: skip

