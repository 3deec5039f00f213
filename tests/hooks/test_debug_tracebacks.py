"""``--log-level debug``: a hook failure's traceback is logged once per distinct error.

Through the CLI with an in-process hook that raises (two distinct errors over many
chunks), and for the remote transports: a Lambda function-error payload's
``stackTrace`` and a webhook's error body.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from dispatcher.errors import HookAttemptError
from dispatcher.hooks.lambda_errors import function_failed
from dispatcher.hooks.tracebacks import log_hook_failure
from dispatcher.hooks.webhook import WebhookTransport
from tests.hooks.webhook_server import Reply, WebhookReceiver

HOOK = """
def handler(event, context):
    if "ep-000" in event["Endpoints"]:
        return check_bureau(event)   # the first chunk: a distinct error
    raise ValueError("credit bureau is down")


def check_bureau(event):
    raise KeyError("bureau-key")
"""

CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "c"
[campaign.Hook]
LambdaFunctionName = "score"
Mode = "FILTER"
[campaign.MessageConfiguration.SMSMessage]
Body = "hi"
[segment]
source = "segment.jsonl"
[functions.score]
python = "hook.py:handler"
[dispatch]
hook_attempts = 1
chunk_size = 10
"""


def _run(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hook.py").write_text(HOOK)
    (tmp_path / "campaign.toml").write_text(CONFIG)
    lines = [
        orjson.dumps({"Id": f"ep-{i:03d}", "ChannelType": "SMS", "Address": f"+1206555{i:04d}"})
        for i in range(60)
    ]
    (tmp_path / "segment.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", "run", "campaign.toml", "--out", "out",
         "--no-report", *flags],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_debug_logs_each_distinct_traceback_once(tmp_path: Path) -> None:
    done = _run(tmp_path, "--log-level", "debug")
    assert done.returncode == 3, done.stderr  # every endpoint ended HOOK_FAILURE
    summary = orjson.loads(done.stdout)
    assert summary["ByStatus"] == {"HOOK_FAILURE": 60}
    # Six chunks failed: five the same way, one another way. Two tracebacks.
    hook_lines = [ln for ln in done.stderr.splitlines() if "dispatcher.hooks:" in ln]
    assert len(hook_lines) == 2, done.stderr
    assert done.stderr.count('raise ValueError("credit bureau is down")') == 1
    assert done.stderr.count('raise KeyError("bureau-key")') == 1
    assert "in check_bureau" in done.stderr
    assert all(" DEBUG dispatcher.hooks: hook score failed: " in ln for ln in hook_lines)


def test_worker_processes_log_their_hook_tracebacks(tmp_path: Path) -> None:
    """With --processes 2 each worker logs the errors its own hook calls met, once each."""
    done = _run(tmp_path, "--log-level", "debug", "--processes", "2")
    assert done.returncode == 3, done.stderr
    assert orjson.loads(done.stdout)["ByStatus"] == {"HOOK_FAILURE": 60}
    assert 1 <= done.stderr.count('raise ValueError("credit bureau is down")') <= 2
    assert 1 <= done.stderr.count('raise KeyError("bureau-key")') <= 2


def test_no_traceback_at_the_default_level(tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "ValueError: credit bureau is down" in done.stderr  # the tally's top reason


class _Transport:
    """Stands in for a LambdaTransport: only its identity matters here."""


def test_lambda_function_error_logs_its_stack_trace_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = {
        "errorType": "TypeError",
        "errorMessage": "Cannot read properties of undefined (reading 'Attributes')",
        "trace": "ignored",
        "stackTrace": [
            "TypeError: Cannot read properties of undefined (reading 'Attributes')",
            "    at exports.handler (/var/task/index.js:7:31)",
        ],
    }
    transport = _Transport()  # the dedup is per transport: one per function and run
    caplog.set_level(logging.DEBUG, logger="dispatcher.hooks")
    for _ in range(3):
        error = function_failed("score", "Unhandled", orjson.dumps(payload))
        log_hook_failure(transport, "score", error)
    logged = [r.getMessage() for r in caplog.records if r.name == "dispatcher.hooks"]
    assert len(logged) == 1
    assert "at exports.handler (/var/task/index.js:7:31)" in logged[0]
    assert logged[0].count("TypeError: Cannot read properties") == 2  # reason + stack head

    # Another run (another transport) logs it again.
    log_hook_failure(
        _Transport(), "score", function_failed("score", "Unhandled", orjson.dumps(payload))
    )
    assert len([r for r in caplog.records if r.name == "dispatcher.hooks"]) == 2


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver("whsec-0123456789abcdef0123456789abcdef")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.anyio
async def test_webhook_error_body_is_logged_once(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'Traceback (most recent call last):\n  File "app.py", line 9, in score\nKeyError: x'
    receiver.replies["/hook"] = Reply(500, body)
    transport = WebhookTransport(receiver.url + "/hook", secret=receiver.secret, name="wh")
    caplog.set_level(logging.DEBUG, logger="dispatcher.hooks")
    try:
        for _ in range(2):
            with pytest.raises(HookAttemptError) as caught:
                await transport.invoke(b'{"Endpoints": {}}')
            log_hook_failure(transport, "wh", caught.value)
    finally:
        await transport.aclose()
    logged = [r.getMessage() for r in caplog.records if r.name == "dispatcher.hooks"]
    assert len(logged) == 1
    assert 'File "app.py", line 9, in score' in logged[0]
