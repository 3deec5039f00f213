"""AWS CLI habits: ``--profile`` / ``--region``, and ``dispatcher ledger create-table``
against moto_server (DynamoDB keeps tables per region, so the region is visible)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import boto3

from dispatcher.cli.runs import _settings
from dispatcher.testing.moto import MotoServer
from tests.conftest import write_jsonl

ROOT = Path(__file__).resolve().parent.parent


def aws_env(tmp_path: Path, moto: MotoServer) -> dict[str, str]:
    """No ambient credentials or region: only what the test's own AWS files say."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[profile ops]\nregion = eu-west-1\n")
    credentials.write_text("[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = s\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(credentials),
               AWS_ENDPOINT_URL_DYNAMODB=moto.url)  # fmt: skip
    return env


def dispatcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def tables(moto: MotoServer, region: str) -> list[str]:
    client = boto3.client("dynamodb", region_name=region, endpoint_url=moto.url,
                          aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    return list(client.list_tables()["TableNames"])


def test_create_table_is_idempotent_and_uses_the_region(tmp_path: Path, moto: MotoServer) -> None:
    env = aws_env(tmp_path, moto) | {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    first = dispatcher(env, "ledger", "create-table", "fleet-ledger", "--region", "us-west-2")
    assert first.returncode == 0, first.stderr
    assert "created DynamoDB table fleet-ledger in us-west-2" in first.stderr
    again = dispatcher(env, "ledger", "create-table", "fleet-ledger", "--region", "us-west-2")
    assert again.returncode == 0 and "exists" in again.stderr
    assert "fleet-ledger" in tables(moto, "us-west-2")
    assert "fleet-ledger" not in tables(moto, "us-east-1")


def test_profile_gives_credentials_and_region(tmp_path: Path, moto: MotoServer) -> None:
    env = aws_env(tmp_path, moto)
    done = dispatcher(env, "ledger", "create-table", "ops-ledger", "--profile", "ops")
    assert done.returncode == 0, done.stderr
    assert "ops-ledger" in tables(moto, "eu-west-1")
    unknown = dispatcher(env, "ledger", "create-table", "t", "--profile", "nobody")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("dispatcher: --profile: profile 'nobody' is not in the "
                                      "AWS config or credentials files")  # fmt: skip
    no_region = dispatcher(env, "ledger", "create-table", "t")
    assert no_region.returncode == 2 and "--region: set --region or AWS_REGION" in no_region.stderr


def test_run_region_overrides_the_project_region(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s.jsonl", [])
    cfg = tmp_path / "c.toml"
    cfg.write_text('[project]\nApplicationId = "a"\nRegion = "us-east-1"\n[campaign]\nId = "c"\n'
                   '[campaign.MessageConfiguration.SMSMessage]\nBody = "x"\n')  # fmt: skip
    args = argparse.Namespace(region="ap-southeast-2", profile=None, quiet=True)
    assert _settings(str(cfg), args).project.region == "ap-southeast-2"
    args = argparse.Namespace(region=None, profile=None, quiet=True)
    assert _settings(str(cfg), args).project.region == "us-east-1"
