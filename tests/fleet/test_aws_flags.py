"""``--profile`` and ``--region`` on ``dispatcher submit`` and ``dispatcher worker``, as
the AWS CLI has them (and as ``dispatcher run`` has them): credentials and region from a
named profile in the test's own AWS files, against moto_server, which keeps queues and
tables per region (so the region each command used is visible)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from dispatcher.testing.moto import MotoServer
from tests.conftest import endpoint

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[project]
ApplicationId = "flags-app"
Region = "us-east-1"
[campaign]
Id = "flags"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{Id}}"
OriginationNumber = "+12065550000"
[ledger]
dynamodb_table = "flags-ledger"
"""


def env_for(tmp_path: Path, moto: MotoServer) -> dict[str, str]:
    """No ambient credentials or region: only what the test's own AWS files say."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[profile ops]\nregion = eu-west-1\n")
    credentials.write_text("[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = s\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(credentials),
               AWS_ENDPOINT_URL=moto.url, AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    return env


def dispatcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def boto(service: str, moto: MotoServer, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=moto.url,
                        aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip


def make_fleet(moto: MotoServer, region: str, name: str) -> str:
    """A segment in S3, the ledger table and a job queue in ``region``; the queue URL."""
    s3 = boto("s3", moto, region)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    body = "\n".join(json.dumps(endpoint(i, "SMS")) for i in range(1, 6)) + "\n"
    s3.put_object(Bucket=name, Key="segment.jsonl", Body=body.encode())
    boto("dynamodb", moto, region).create_table(
        TableName="flags-ledger", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
    )  # fmt: skip
    return str(boto("sqs", moto, region).create_queue(QueueName=f"{name}-jobs")["QueueUrl"])


def test_submit_and_worker_take_credentials_and_region_from_the_flags(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    env = env_for(tmp_path, moto_server)
    queue = make_fleet(moto_server, "eu-west-1", "flags-eu")
    cfg = tmp_path / "flags.toml"
    cfg.write_text(CONFIG)
    submit = ["submit", str(cfg), "--queue", queue, "--segment", "s3://flags-eu/segment.jsonl"]

    # The project's Region (us-east-1) has no such table: --region says where the run is.
    done = dispatcher(env, *submit, "--profile", "ops", "--region", "eu-west-1")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    sqs = boto("sqs", moto_server, "eu-west-1")
    (message,) = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    job = json.loads(message["Body"])
    assert job["Ledger"]["Region"] == "eu-west-1"
    assert job["Config"]["Data"]["project"]["Region"] == "eu-west-1", "the workers' region"
    wrong = dispatcher(env, *submit, "--profile", "ops")  # the project's us-east-1
    assert wrong.returncode == 1, wrong.stderr
    assert "PutItem on 'flags-ledger': ResourceNotFoundException" in wrong.stderr
    assert "(create it with: dispatcher ledger create-table flags-ledger)" in wrong.stderr

    # The worker: the profile's credentials and region (eu-west-1) run the job.
    worked = dispatcher(env, "worker", "--queue", queue, "--burst", "--wait", "1",
                        "--profile", "ops")  # fmt: skip
    assert worked.returncode == 0, worked.stderr
    assert "1 shards done" in worked.stderr
    summary = boto("s3", moto_server, "eu-west-1").get_object(
        Bucket="flags-eu", Key=f"runs/{run_id}/summary.json")  # fmt: skip
    assert json.loads(summary["Body"].read())["Total"] == 5

    # --region overrides the profile's region: no such queue in us-west-2.
    elsewhere = dispatcher(env, "worker", "--queue", queue, "--check", "--profile", "ops",
                           "--region", "us-west-2")  # fmt: skip
    assert elsewhere.returncode == 1 and "unhealthy" in elsewhere.stderr
    assert dispatcher(env, "worker", "--queue", queue, "--check", "--profile", "ops",
                      "--region", "eu-west-1").stdout == "ok\n"  # fmt: skip
    # Without the profile there are no credentials at all: the profile gave them.
    anonymous = dispatcher(env, "worker", "--queue", queue, "--check", "--region", "eu-west-1")
    assert anonymous.returncode == 1 and "Unable to locate credentials" in anonymous.stderr


@pytest.mark.parametrize("command", ["submit", "worker"])
def test_a_bad_profile_or_no_region_is_one_line_and_exit_2(
    tmp_path: Path, moto_server: MotoServer, command: str
) -> None:
    env = env_for(tmp_path, moto_server)
    cfg = tmp_path / "flags.toml"
    cfg.write_text(CONFIG)
    args = ([command, str(cfg)] if command == "submit" else [command, "--check"]) + [
        "--queue", "http://127.0.0.1:1/000000000000/none", "--segment" if command == "submit"
        else "--wait", "s3://b/k" if command == "submit" else "1"]  # fmt: skip
    unknown = dispatcher(env, *args, "--profile", "nobody")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("dispatcher: --profile: profile 'nobody' is not in the "
                                      "AWS config or credentials files")  # fmt: skip
    if command == "worker":  # submit's region is the project's, as for `dispatcher run`
        no_region = dispatcher(env, *args)
        assert no_region.returncode == 2
        assert no_region.stderr.strip() == "dispatcher: --region: set --region or AWS_REGION"
