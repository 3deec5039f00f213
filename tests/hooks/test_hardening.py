"""Hooks that misbehave, proxies that would leak, secrets that would travel (issue 12)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web

from dispatcher import dispatch
from dispatcher.errors import ConfigError, HookResultError
from dispatcher.hooks.aws_lambda import LambdaTransport
from dispatcher.hooks.webhook import WebhookTransport
from dispatcher.testing.moto import MotoServer
from tests.conftest import endpoint, make_settings, read_jsonl, write_jsonl
from tests.hooks.lambda_api_server import InvokeApi
from tests.hooks.webhook_server import WebhookReceiver

pytestmark = pytest.mark.anyio

SECRET = "whsec-0123456789abcdef0123456789abcdef"


class RecordingProxy:
    """An HTTP proxy that records every request it gets and answers ``{}`` itself."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> RecordingProxy:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append(str(request.url))
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy() as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("HTTPS_PROXY", server.url)
        yield server


EVENT = orjson.dumps({"ApplicationId": "a", "CampaignId": "c",
                      "Endpoints": {"e1": {"ChannelType": "SMS", "Address": "+1"}}})  # fmt: skip


async def test_a_loopback_webhook_is_never_reached_through_a_proxy(
    proxy: RecordingProxy,
) -> None:
    receiver = WebhookReceiver(SECRET)
    await receiver.start()
    try:
        async with WebhookTransport(f"{receiver.url}/hook", secret=SECRET) as transport:
            assert await transport.invoke(EVENT) == {"e1": {"ChannelType": "SMS",
                                                            "Address": "+1"}}  # fmt: skip
    finally:
        await receiver.stop()
    assert proxy.seen == [] and len(receiver.requests) == 1


@pytest.mark.parametrize("client", ["lean", "botocore"])
async def test_a_loopback_lambda_is_never_reached_through_a_proxy(
    proxy: RecordingProxy, lambda_api: InvokeApi, region: str, client: str
) -> None:
    async with LambdaTransport("echo", region=region, endpoint_url=lambda_api.url,
                               client=client) as transport:  # fmt: skip
        result = await transport.invoke(EVENT)
    assert result == {"e1": {"ChannelType": "SMS", "Address": "+1"}}
    assert proxy.seen == []


async def test_a_remote_lambda_goes_through_the_proxy_as_the_sdks_do(
    proxy: RecordingProxy, region: str
) -> None:
    url = "http://lambda.example.test"  # not loopback: HTTP_PROXY applies
    async with LambdaTransport("echo", region=region, endpoint_url=url) as transport:
        assert await transport.invoke(EVENT) == {}
    assert proxy.seen and proxy.seen[0].startswith(url)


async def test_a_huge_lambda_answer_fails_the_attempt_unread(region: str) -> None:
    sent = 0

    async def huge(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        await request.read()
        response = web.StreamResponse()  # chunked: no length announced
        await response.prepare(request)
        block = b" " * (1 << 20)
        try:
            for _ in range(200):  # 200 MiB if the client kept reading
                await response.write(block)
                sent += len(block)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", huge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with LambdaTransport("big", region=region, endpoint_url=url) as transport:
            with pytest.raises(HookResultError, match="over the 6291556-byte limit"):
                await transport.invoke(EVENT)
    finally:
        await runner.cleanup()
    assert sent < 100 << 20  # the client stopped reading long before the end


# -- pipeline: one big record, blocking hooks, ids without a ledger ----------------------


async def test_one_oversized_record_fails_alone(tmp_path: Path) -> None:
    big = endpoint(25, Attributes={"Blob": ["x" * (7 << 20)]})  # 7 MiB: over 6 MiB alone
    records = [endpoint(i) for i in range(1, 51)]
    records[24] = big
    segment = write_jsonl(tmp_path / "seg.jsonl", records)
    calls: list[int] = []

    def hook(event: dict[str, Any], context: Any) -> Any:
        calls.append(len(event["Endpoints"]))
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign={"Hook": {"LambdaFunctionName": "h"}},
                             segment={"max_record_bytes": 16 << 20})  # fmt: skip
    summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o",
                             handlers={"h": hook}, progress=False)  # fmt: skip
    assert summary.by_status == {"SUCCESS": 49, "INVALID": 1}
    [invalid] = [o for o in read_jsonl(tmp_path / "o" / "outcomes.jsonl")
                 if o["Status"] == "INVALID"]  # fmt: skip
    assert invalid["EndpointId"] == "ep-25" and "too large" in invalid["Reason"]
    assert sum(calls) == 49 and len(calls) >= 2  # its chunk was split around it


async def test_a_chunk_over_the_payload_limit_is_split_and_all_sent(tmp_path: Path) -> None:
    # 50 records of ~150 KB: a 7.5 MB event, though every record is small.
    records = [endpoint(i, Attributes={"Blob": ["y" * 150_000]}) for i in range(1, 51)]
    segment = write_jsonl(tmp_path / "seg.jsonl", records)
    calls: list[int] = []

    def hook(event: dict[str, Any], context: Any) -> Any:
        calls.append(len(event["Endpoints"]))
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign={"Hook": {"LambdaFunctionName": "h"}})
    summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o",
                             handlers={"h": hook}, progress=False)  # fmt: skip
    assert summary.by_status == {"SUCCESS": 50}
    assert sorted(calls) == [25, 25]


async def test_an_async_hook_that_blocks_the_loop_fails_its_chunk(tmp_path: Path) -> None:
    import time

    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, 4)])

    async def blocking(event: dict[str, Any], context: Any) -> Any:
        time.sleep(2.5)  # noqa: ASYNC251 - the point: it blocks the loop, no time-out fires
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign={"Hook": {"LambdaFunctionName": "h"}},
                             dispatch={"hook_attempt_timeout": 0.5, "hook_deadline": 1.0})
    summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o",
                             handlers={"h": blocking}, progress=False)  # fmt: skip
    assert summary.by_status == {"HOOK_FAILURE": 3}
    reason = read_jsonl(tmp_path / "o" / "outcomes.jsonl")[0]["Reason"]
    assert "hook h:" in reason and "event loop was blocked" in reason and "def hook" in reason


async def test_without_a_ledger_a_repeated_endpoint_id_is_sent_once(tmp_path: Path) -> None:
    twin = {**endpoint(2), "Id": "ep-1"}  # same Id, another address
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(1), twin, endpoint(3)])
    summary = await dispatch(make_settings(tmp_path), segment=str(segment),
                             out_dir=tmp_path, ledger=False, progress=False)  # fmt: skip
    assert summary.by_status == {"SUCCESS": 2, "INVALID": 1}
    sent = [m["EndpointId"] for m in read_jsonl(tmp_path / "outbox.jsonl")]
    assert sorted(sent) == ["ep-1", "ep-3"]


async def test_retry_skips_sends_in_doubt_without_calling_the_hook(tmp_path: Path) -> None:
    import sqlite3

    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, 11)])
    calls: list[str] = []

    def hook(event: dict[str, Any], context: Any) -> Any:
        calls.extend(event["Endpoints"])
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign={"Hook": {"LambdaFunctionName": "h"}})
    first = await dispatch(settings, segment=str(segment), out_dir=tmp_path,
                           handlers={"h": hook}, progress=False)  # fmt: skip
    # As after an SMS provider time-out past the request: ep-3's claim stands, its
    # outcome in doubt; ep-7 provably failed (its claim was released).
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.execute("UPDATE outcomes SET status = 'TEMPORARY_FAILURE' WHERE line IN (3, 7)")
    db.execute("UPDATE claims SET sender = 'sms' WHERE line = 3")  # the outbox can't settle it
    db.execute("DELETE FROM claims WHERE line = 7")
    db.commit()
    db.close()
    (tmp_path / "outbox.jsonl").write_text("")
    calls.clear()
    retried = await dispatch(settings, segment=str(segment), out_dir=tmp_path,
                             run_id=first.run_id, retry=["TEMPORARY_FAILURE"],
                             handlers={"h": hook}, progress=False)  # fmt: skip
    assert calls == ["ep-7"]  # the hook never saw ep-3
    assert retried.skipped_in_doubt == 1 and retried.to_json()["SkippedInDoubt"] == 1
    assert [m["EndpointId"] for m in read_jsonl(tmp_path / "outbox.jsonl")] == ["ep-7"]


# -- secrets ------------------------------------------------------------------------------


WEBHOOK_CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "c"
[campaign.Hook]
LambdaFunctionName = "hook"
[campaign.MessageConfiguration.SMSMessage]
Body = "hi"
[segment]
source = "seg.jsonl"
[functions.hook]
url = "URL"
SECRET_LINE
"""


def test_submit_refuses_an_inline_secret(tmp_path: Path) -> None:
    from dispatcher.config import load_settings
    from dispatcher.fleet.submit import refuse_inline_secrets

    cfg = tmp_path / "c.toml"
    cfg.write_text(WEBHOOK_CONFIG.replace("URL", "https://hooks.example.com/x")
                   .replace("SECRET_LINE", f'secret = "{SECRET}"'))  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        refuse_inline_secrets(load_settings(cfg))
    text = str(refused.value)
    assert "functions.hook.secret" in text and "secret_env" in text and "secret_id" in text
    cfg.write_text(WEBHOOK_CONFIG.replace("URL", "https://hooks.example.com/x")
                   .replace("SECRET_LINE", 'secret_env = "HOOK_SECRET"'))  # fmt: skip
    refuse_inline_secrets(load_settings(cfg))  # a reference is fine


@pytest.mark.parametrize("source", ["secret_id", "secret_parameter"])
async def test_webhook_secrets_from_secrets_manager_and_ssm(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    import boto3

    from dispatcher.config import load_settings

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    kw: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": moto.url}
    if source == "secret_id":
        boto3.client("secretsmanager", **kw).create_secret(Name="hook-secret",
                                                           SecretString=SECRET)  # fmt: skip
        line = 'secret_id = "hook-secret"'
    else:
        boto3.client("ssm", **kw).put_parameter(Name="/hooks/secret", Value=SECRET,
                                                Type="SecureString")  # fmt: skip
        line = 'secret_parameter = "/hooks/secret"'
    receiver = WebhookReceiver(SECRET)
    await receiver.start()
    try:
        write_jsonl(tmp_path / "seg.jsonl", [endpoint(1)])
        cfg = tmp_path / "c.toml"
        cfg.write_text(WEBHOOK_CONFIG.replace("URL", f"{receiver.url}/hook")
                       .replace("SECRET_LINE", line))  # fmt: skip
        summary = await dispatch(load_settings(cfg), out_dir=tmp_path / "o", progress=False)
    finally:
        await receiver.stop()
    assert summary.by_status == {"SUCCESS": 1}
    assert [r.signature_ok for r in receiver.requests] == [True]
    written = "".join(p.read_text() for p in (tmp_path / "o").iterdir() if p.suffix in
                      (".json", ".jsonl"))  # fmt: skip
    assert SECRET not in written and json.dumps(SECRET) not in written
    assert "AWS_ENDPOINT_URL" in os.environ  # the fixture's environment, restored after


async def test_a_sync_hook_thread_never_outlives_the_run(tmp_path: Path) -> None:
    """A hung sync hook: the run ends at its deadline, and its thread is a daemon."""
    import threading

    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(1)])
    release = threading.Event()

    def hung(event: dict[str, Any], context: Any) -> Any:
        release.wait(60)
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign={"Hook": {"LambdaFunctionName": "h"}},
                             dispatch={"hook_attempt_timeout": 0.3, "hook_deadline": 0.5,
                                       "hook_attempts": 1})  # fmt: skip
    with anyio.fail_after(30):
        summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path,
                                 handlers={"h": hung}, progress=False)  # fmt: skip
    assert summary.by_status == {"HOOK_FAILURE": 1}
    stuck = [t for t in threading.enumerate() if t.name == "dispatcher-hook" and t.is_alive()]
    assert stuck and all(t.daemon for t in stuck)  # interpreter exit will not wait for it
    release.set()
