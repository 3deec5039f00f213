"""WebhookTransport against a real receiver on 127.0.0.1 that verifies signatures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.errors import ConfigError, HookAttemptError, HookResultError
from dispatcher.hooks.base import HookTransport
from dispatcher.hooks.webhook import (
    APPLICATION_HEADER,
    CAMPAIGN_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookTransport,
    compute_signature,
    sign_request,
    validate_webhook_url,
    verify_signature,
)
from tests.hooks.webhook_server import Reply, WebhookReceiver

SECRET = "whsec-0123456789abcdef0123456789abcdef"
ENDPOINTS = {f"ep{i}": {"ChannelType": "EMAIL", "Address": f"u{i}@example.com"} for i in range(5)}
EVENT = orjson.dumps({"ApplicationId": "app", "CampaignId": "c", "Endpoints": ENDPOINTS})

Make = Callable[..., WebhookTransport]


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def make(receiver: WebhookReceiver) -> AsyncIterator[Make]:
    made: list[WebhookTransport] = []

    def build(path: str = "/hook", **kw: Any) -> WebhookTransport:
        if "secret_env" not in kw:
            kw.setdefault("secret", SECRET)
        transport = WebhookTransport(receiver.url + path, **kw)
        made.append(transport)
        return transport

    yield build
    for transport in made:
        await transport.aclose()


# --- the wire --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_signed_post_returns_the_endpoints_map(make: Make, receiver: WebhookReceiver) -> None:
    transport = make()
    assert isinstance(transport, HookTransport)
    assert await transport.invoke(EVENT) == ENDPOINTS
    [seen] = receiver.requests
    assert seen.signature_ok
    assert seen.body == EVENT
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers[SIGNATURE_HEADER].startswith("v1=")
    assert abs(int(seen.headers[TIMESTAMP_HEADER]) - time.time()) < 300


@pytest.mark.anyio
async def test_secret_from_environment(
    make: Make, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    assert await make(secret_env="HOOK_SECRET").invoke(EVENT) == ENDPOINTS
    assert receiver.requests[0].signature_ok


@pytest.mark.anyio
async def test_wrong_secret_is_rejected_and_not_retried(
    make: Make, receiver: WebhookReceiver
) -> None:
    with pytest.raises(HookAttemptError) as info:
        await make(secret="a-different-secret-0123456789").invoke(EVENT)
    assert info.value.retryable is False
    assert "401" in info.value.reason
    assert receiver.requests[0].signature_ok is False


@pytest.mark.anyio
async def test_context_headers(make: Make, receiver: WebhookReceiver) -> None:
    await make(application_id="app-1", campaign_id="camp-9").invoke(EVENT)
    await make().invoke(EVENT)
    with_ids, without = receiver.requests
    assert with_ids.headers[APPLICATION_HEADER] == "app-1"
    assert with_ids.headers[CAMPAIGN_HEADER] == "camp-9"
    assert APPLICATION_HEADER not in without.headers
    assert CAMPAIGN_HEADER not in without.headers


@pytest.mark.anyio
async def test_extra_headers_are_sent(make: Make, receiver: WebhookReceiver) -> None:
    await make(headers={"X-Api-Key": "k1"}).invoke(EVENT)
    assert receiver.requests[0].headers["X-Api-Key"] == "k1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after"),
    [
        (Reply(429, b"slow down", {"Retry-After": "7"}), True, 7.0),
        (Reply(503, b"", {"Retry-After": "1.5"}), True, 1.5),
        (Reply(500, b"boom"), True, None),
        (Reply(502), True, None),
        (Reply(408), True, None),
        (Reply(400, b"bad event"), False, None),
        (Reply(404), False, None),
        (Reply(410, b"", {"Retry-After": "5"}), False, None),
    ],
)
async def test_status_codes(
    make: Make,
    receiver: WebhookReceiver,
    reply: Reply,
    retryable: bool,
    retry_after: float | None,
) -> None:
    receiver.replies["/hook"] = reply
    with pytest.raises(HookAttemptError) as info:
        await make().invoke(EVENT)
    assert info.value.retryable is retryable
    assert info.value.retry_after == retry_after
    assert str(reply.status) in info.value.reason
    if reply.body:
        assert reply.body.decode() in info.value.reason


@pytest.mark.anyio
async def test_throttling_clears(make: Make, receiver: WebhookReceiver) -> None:
    receiver.replies["/hook"] = Reply(429, b"", {"Retry-After": "1"}, times=1)
    transport = make()
    with pytest.raises(HookAttemptError):
        await transport.invoke(EVENT)
    assert await transport.invoke(EVENT) == ENDPOINTS


@pytest.mark.anyio
async def test_redirects_are_not_followed(make: Make, receiver: WebhookReceiver) -> None:
    receiver.replies["/old"] = Reply(301, b"", {"Location": "/hook"})
    with pytest.raises(HookAttemptError) as info:
        await make("/old").invoke(EVENT)
    assert info.value.retryable is False
    assert "redirect" in info.value.reason and "/hook" in info.value.reason
    assert [r.path for r in receiver.requests] == ["/old"]


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"", b"   ", b"<html>ok</html>", b'{"a": '])
async def test_undecodable_2xx_is_a_result_error(
    make: Make, receiver: WebhookReceiver, body: bytes
) -> None:
    receiver.replies["/hook"] = Reply(200, body)
    with pytest.raises(HookResultError):
        await make().invoke(EVENT)


@pytest.mark.anyio
async def test_empty_map_is_a_valid_answer(make: Make, receiver: WebhookReceiver) -> None:
    receiver.replies["/hook"] = Reply(200, b"{}", {"Content-Type": "application/json"})
    assert await make().invoke(EVENT) == {}


@pytest.mark.anyio
async def test_oversized_response_is_a_result_error(make: Make, receiver: WebhookReceiver) -> None:
    from dispatcher.hooks.base import MAX_RESPONSE

    receiver.replies["/hook"] = Reply(200, b'"' + b"x" * MAX_RESPONSE + b'"')
    with pytest.raises(HookResultError, match="limit"):
        await make().invoke(EVENT)


@pytest.mark.anyio
async def test_time_out_is_retryable(make: Make, receiver: WebhookReceiver) -> None:
    receiver.replies["/hook"] = Reply(200, b"{}", delay=30.0)
    with pytest.raises(HookAttemptError) as info:
        await make(timeout=0.2).invoke(EVENT)
    assert info.value.retryable is True


@pytest.mark.anyio
async def test_connection_refused_is_retryable(free_tcp_port: int) -> None:
    url = f"http://127.0.0.1:{free_tcp_port}/hook"  # nothing listens there
    async with WebhookTransport(url, secret=SECRET) as transport:
        with pytest.raises(HookAttemptError) as info:
            await transport.invoke(EVENT)
    assert info.value.retryable is True


# --- construction rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/pinpoint",
        "https://hooks.example.com:8443/a/b?c=d",
        "http://127.0.0.1:8080/hook",
        "http://127.42.0.9/hook",
        "http://[::1]:9000/hook",
        "http://localhost/hook",
        "HTTPS://EXAMPLE.COM/x",
    ],
)
def test_accepted_urls(url: str) -> None:
    validate_webhook_url(url)
    WebhookTransport(url, secret=SECRET)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/pinpoint",  # plain http off loopback
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://localhost.example.com/hook",
        "http://0.0.0.0/hook",
        "ftp://hooks.example.com/x",
        "hooks.example.com/x",
        "https:///no-host",
        "https://user:pass@hooks.example.com/x",
        "https://hooks.example.com:99999/x",
        "",
    ],
)
def test_rejected_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        WebhookTransport(url, secret=SECRET)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2hunter2@hooks.example.com/x",
        "http://user:hunter2hunter2@hooks.example.com/x",
        "ftp://user:hunter2hunter2@hooks.example.com/x",
        "https://user:hunter2hunter2@hooks.example.com:99999/x",
    ],
)
def test_credentials_in_url_are_not_echoed(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_webhook_url(url)
    assert "hunter2" not in str(info.value)
    assert "hooks.example.com" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"secret": SECRET, "secret_env": "HOOK_SECRET"},
        {"secret_env": "UNSET_HOOK_SECRET_VARIABLE"},
        {"secret": "short"},
        {"secret": ""},
        {"secret": SECRET, "headers": {"x-dispatcher-signature": "v1=forged"}},
        {"secret": SECRET, "headers": {"Content-Type": "text/plain"}},
        {"secret": SECRET, "headers": {"X-Dispatcher-Campaign-Id": "spoofed"}},
        {"secret": SECRET, "concurrency": 0},
        {"secret": SECRET, "timeout": 0},
    ],
)
def test_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        WebhookTransport("https://hooks.example.com/x", **kwargs)


def test_missing_secret_env_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="UNSET_HOOK_SECRET_VARIABLE"):
        WebhookTransport("https://h.example.com/x", secret_env="UNSET_HOOK_SECRET_VARIABLE")


# --- signatures ------------------------------------------------------------------------


def test_signature_known_answer() -> None:
    """A fixed vector receivers in other languages can test their implementation with."""
    import hashlib
    import hmac

    body = b'{"Endpoints":{}}'
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert compute_signature("secret", 1700000000, body) == expected
    assert sign_request("secret", body, timestamp=1700000000) == {
        TIMESTAMP_HEADER: "1700000000",
        SIGNATURE_HEADER: f"v1={expected}",
    }


def test_verify_rejects_stale_and_future_timestamps() -> None:
    headers = sign_request(SECRET, EVENT, timestamp=1_700_000_000)
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET, ts, EVENT, sig, now=1_700_000_000 + 300)
    assert not verify_signature(SECRET, ts, EVENT, sig, now=1_700_000_000 + 301)
    assert not verify_signature(SECRET, ts, EVENT, sig, now=1_700_000_000 - 301)
    assert verify_signature(SECRET, ts, EVENT, sig, now=1_700_000_000 + 3000, tolerance=3600)


def test_verify_rotation_and_malformed_headers() -> None:
    ts = str(int(time.time()))
    good = compute_signature(SECRET, ts, EVENT)
    other = compute_signature("old-secret-0123456789", ts, EVENT)
    assert verify_signature(SECRET, ts, EVENT, f"v1={other}, v1={good}")
    assert not verify_signature(SECRET, ts, EVENT, f"v0={good}")
    assert not verify_signature(SECRET, ts, EVENT, good)
    assert not verify_signature(SECRET, ts, EVENT, "")
    assert not verify_signature(SECRET, None, EVENT, f"v1={good}")
    assert not verify_signature(SECRET, "12ab", EVENT, f"v1={good}")
    assert not verify_signature(SECRET, f"-{ts}", EVENT, f"v1={good}")


@given(
    secret=st.text(min_size=1, max_size=64),
    body=st.binary(max_size=2048),
    skew=st.integers(min_value=-300, max_value=300),
    flip=st.integers(min_value=0),
)
def test_signatures_verify_and_any_change_breaks_them(
    secret: str, body: bytes, skew: int, flip: int
) -> None:
    now = 1_800_000_000
    headers = sign_request(secret, body, timestamp=now + skew)
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert verify_signature(secret, ts, body, sig, now=now)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        assert not verify_signature(secret, ts, tampered, sig, now=now)
    assert not verify_signature(secret + "x", ts, body, sig, now=now)
    assert not verify_signature(secret, str(now + skew + 1), body, sig, now=now)


# --- Retry-After -----------------------------------------------------------------------


def test_parse_retry_after() -> None:
    from dispatcher.aws import retry_after as parse_retry_after

    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    earlier = (now - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(later, now=now.timestamp()) == 90.0
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0
    assert parse_retry_after("-4") == 0.0
    for junk in (None, "", "soon", "nan", "inf", "Mon, 99 Foo 2026"):
        assert parse_retry_after(junk) is None
