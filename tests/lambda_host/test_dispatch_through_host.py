"""`dispatcher run` through `dispatcher lambda serve`: the seed's Node.js handler,
verbatim, enriching real sends; policies and regions refused before any call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import read_jsonl
from tests.lambda_host.conftest import CREDIT_SCORE, REPO


def serve(*functions: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    # Worker output (the seed handler logs every event) goes to a file: a pipe nobody
    # reads would fill up and block the workers' writes.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "lambda", "serve", "--port", "0", *functions],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        log.seek(0)
        raise AssertionError(line + log.read())
    return proc, line.split("listening on ")[1].split()[0]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dispatcher", "run", *args, "--quiet"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)


def test_seed_node_handler_via_lambda_endpoint_env(tmp_path: Path, node: None) -> None:
    """The README's three commands: serve the hook, point the Lambda endpoint at it, run."""
    host, url = serve(f"credit-score={CREDIT_SCORE}:handler")
    try:
        cfg = tmp_path / "campaign.toml"
        text = (REPO / "config" / "example.toml").read_text()
        text = text.replace('python = "hooks.py:handler"', "")  # an unregistered name: Lambda
        text = text.replace("[functions.credit-score]", "")
        text = text.replace(
            'source = "sample-segment.jsonl"',
            f'source = "{REPO / "config" / "sample-segment.jsonl"}"',
        )
        cfg.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_ENDPOINT_URL_LAMBDA"] = url  # and no credentials: a local host needs none
        result = run(str(cfg), "--out", str(tmp_path / "out"), env=env)
        assert result.returncode == 0, result.stderr
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["HookInvocations"] >= 3
        sent = read_jsonl(tmp_path / "out" / "outbox.jsonl")
        assert len(sent) == summary["ByStatus"]["SUCCESS"] > 0
        scores = [int(m["Body"].rsplit(" ", 1)[1].rstrip(".")) for m in sent
                  if m["ChannelType"] == "SMS"]  # fmt: skip
        assert scores and all(650 <= s < 850 for s in scores)  # Math.random() * 200 + 650
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=30)


def test_policy_that_denies_stops_the_run_before_any_call(tmp_path: Path) -> None:
    marker = tmp_path / "called"
    (tmp_path / "hook.py").write_text(
        f"import pathlib\ndef handler(event, context):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('x')\n    return event['Endpoints']\n"
    )
    policy = json.loads((REPO / "config" / "credit-score.policy.json").read_text())
    (tmp_path / "policy.json").write_text(json.dumps(policy))  # allows apps/demo-app only
    (tmp_path / "seg.jsonl").write_text('{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n')
    (tmp_path / "c.toml").write_text("""
[project]
ApplicationId = "another-app"
Region = "us-east-1"
AccountId = "111122223333"
[campaign]
Id = "c1"
[campaign.Hook]
LambdaFunctionName = "guarded"
[campaign.MessageConfiguration.SMSMessage]
Body = "hi"
[segment]
source = "seg.jsonl"
[functions.guarded]
python = "hook.py:handler"
policy = "policy.json"
""")
    result = run(str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "'guarded'" in line
    assert "arn:aws:mobiletargeting:us-east-1:111122223333:apps/another-app/campaigns/c1" in line
    assert not marker.exists()
    assert not (tmp_path / "out" / "outcomes.jsonl").exists()


def test_function_arn_in_another_region_is_refused(tmp_path: Path) -> None:
    (tmp_path / "seg.jsonl").write_text('{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n')
    (tmp_path / "c.toml").write_text("""
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "c1"
[campaign.Hook]
LambdaFunctionName = "arn:aws:lambda:eu-west-1:111122223333:function:credit-score:live"
[campaign.MessageConfiguration.SMSMessage]
Body = "hi"
[segment]
source = "seg.jsonl"
""")
    result = run(str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "campaign.Hook.LambdaFunctionName" in line and "eu-west-1" in line


@pytest.mark.parametrize(
    ("handler", "reason"),
    [("boom", "function error (Unhandled)"), ("garbage", "hook returned a string"),
     ("crash", "Runtime.ExitError")],
)  # fmt: skip
def test_misbehaving_functions_on_the_host_fail_their_chunk(
    tmp_path: Path, handler: str, reason: str
) -> None:
    source = tmp_path / "misbehaving.py"
    source.write_text(
        "import os\n"
        "def boom(event, context):\n    raise ValueError('no score service')\n"
        "def garbage(event, context):\n    return b'<html>not JSON'.decode()\n"
        "def crash(event, context):\n    os._exit(3)\n"
    )
    host, url = serve(f"bad={source}:{handler}")
    try:
        (tmp_path / "seg.jsonl").write_text('{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n')
        (tmp_path / "c.toml").write_text(f"""
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "c1"
[campaign.Hook]
LambdaFunctionName = "bad"
[campaign.MessageConfiguration.SMSMessage]
Body = "hi"
[segment]
source = "seg.jsonl"
[functions.bad]
endpoint_url = "{url}"
""")
        result = run(str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"))
        assert result.returncode == 3, result.stderr  # completed, with a failed record
        [outcome] = read_jsonl(tmp_path / "out" / "outcomes.jsonl")
        assert outcome["Status"] == "HOOK_FAILURE"
        assert reason in outcome["Reason"], outcome["Reason"]
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=30)
