"""LambdaTransport against a real Invoke API on 127.0.0.1, through both invoke paths."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import orjson
import pytest

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, HookAttemptError, HookResultError
from dispatcher.hooks.aws_lambda import LambdaTransport, parse_function_name
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD, HookTransport
from dispatcher.hooks.lambda_lean import FrozenCredentials
from tests.hooks.lambda_api_server import (
    ACCESS_KEY,
    AUTH_RE,
    REGION,
    SESSION_TOKEN,
    Fault,
    InvokeApi,
    error_fault,
    function_error_fault,
)

pytestmark = pytest.mark.anyio

CLIENTS = ["lean", "botocore"]

ENDPOINTS = {
    f"ep{i}": {"ChannelType": "SMS", "Address": f"+1206555{i:04d}", "Attributes": {"n": [str(i)]}}
    for i in range(50)
}
EVENT = orjson.dumps(
    {
        "ApplicationId": "app",
        "CampaignId": "camp",
        "TreatmentId": "0",
        "ActivityId": "act",
        "ScheduledTime": "2026-01-01T00:00:00Z",
        "MessageConfiguration": {},
        "Endpoints": ENDPOINTS,
    }
)

MakeTransport = Callable[..., LambdaTransport]


@pytest.fixture
async def make_transport(lambda_api: InvokeApi, aws: AwsClients) -> AsyncIterator[MakeTransport]:
    made: list[LambdaTransport] = []

    def make(function: str = "echo", **kw: Any) -> LambdaTransport:
        kw.setdefault("endpoint_url", lambda_api.url)
        kw.setdefault("clients", aws)
        kw.setdefault("region", REGION)
        transport = LambdaTransport(function, **kw)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


@pytest.mark.parametrize("client", CLIENTS)
async def test_echo_signed_request(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    transport = make_transport(client=client)
    assert isinstance(transport, HookTransport)
    assert await transport.invoke(EVENT) == ENDPOINTS
    [seen] = lambda_api.requests
    assert seen.signature_ok, seen.signature_problem
    assert seen.body == EVENT
    assert seen.function == "echo" and seen.qualifier is None
    assert seen.headers["X-Amz-Invocation-Type"] == "RequestResponse"
    assert seen.headers["X-Amz-Security-Token"] == SESSION_TOKEN
    auth = AUTH_RE.fullmatch(seen.headers["Authorization"])
    assert auth is not None
    assert auth["key"] == ACCESS_KEY
    assert auth["region"] == REGION and auth["service"] == "lambda"
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(auth["signed"].split(";"))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("name", "path_name", "qualifier"),
    [
        ("echo:live", "echo", "live"),
        ("echo:$LATEST", "echo", "$LATEST"),
        ("123456789012:echo", "arn:aws:lambda:us-west-2:123456789012:function:echo", None),
        (
            "arn:aws:lambda:us-west-2:123456789012:function:Thumbnail:7",
            "arn:aws:lambda:us-west-2:123456789012:function:Thumbnail",
            "7",
        ),
    ],
)
async def test_name_and_qualifier_reach_the_server(
    make_transport: MakeTransport,
    lambda_api: InvokeApi,
    client: str,
    name: str,
    path_name: str,
    qualifier: str | None,
) -> None:
    assert await make_transport(name, client=client).invoke(EVENT) == ENDPOINTS
    [seen] = lambda_api.requests
    assert seen.signature_ok, seen.signature_problem
    assert (seen.function, seen.qualifier) == (path_name, qualifier)


async def test_both_paths_send_the_same_request_line(
    make_transport: MakeTransport, lambda_api: InvokeApi
) -> None:
    name = "arn:aws:lambda:us-west-2:123456789012:function:echo:$LATEST"
    for client in CLIENTS:
        await make_transport(name, client=client).invoke(EVENT)
    lean, stock = lambda_api.requests
    assert lean.raw_path == stock.raw_path
    assert "%3A" in lean.raw_path and "Qualifier=%24LATEST" in lean.raw_path


async def test_built_from_a_parsed_ref_like_the_factory_does(
    lambda_api: InvokeApi, aws: AwsClients
) -> None:
    ref = parse_function_name("echo:live", REGION)
    transport = LambdaTransport(
        ref, clients=aws, endpoint_url=lambda_api.url, concurrency=4, client="lean"
    )
    try:
        assert transport.region == REGION and transport.name == "echo:live"
        assert await transport.invoke(EVENT) == ENDPOINTS
    finally:
        await transport.aclose()
    assert lambda_api.requests[0].qualifier == "live"
    with pytest.raises(ConfigError, match="region"):
        LambdaTransport("echo")
    with pytest.raises(ConfigError, match="eu-west-1"):
        LambdaTransport(ref, region="eu-west-1")


async def test_cross_region_arn_fails_at_construction(lambda_api: InvokeApi) -> None:
    with pytest.raises(ConfigError, match=r"eu-central-1.*us-west-2|us-west-2.*eu-central-1"):
        LambdaTransport(
            "arn:aws:lambda:eu-central-1:123456789012:function:echo",
            region=REGION,
            endpoint_url=lambda_api.url,
        )
    assert lambda_api.requests == []


@pytest.mark.parametrize("client", CLIENTS)
async def test_throttling_is_retryable_with_retry_after_and_clears(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    lambda_api.faults["echo"] = error_fault(
        429,
        "TooManyRequestsException",
        "Rate exceeded",
        headers={"Retry-After": "2"},
        extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
        times=2,
    )
    transport = make_transport(client=client)
    for _ in range(2):
        with pytest.raises(HookAttemptError) as info:
            await transport.invoke(EVENT)
        assert info.value.retryable is True
        assert info.value.retry_after == 2.0
        assert info.value.reason.startswith("TooManyRequestsException: Rate exceeded")
        assert "ReservedFunctionConcurrentInvocationLimitExceeded" in info.value.reason
    assert await transport.invoke(EVENT) == ENDPOINTS


@pytest.mark.parametrize("client", CLIENTS)
async def test_retry_after_http_date(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    lambda_api.faults["echo"] = error_fault(
        429,
        "TooManyRequestsException",
        "Rate exceeded",
        headers={"Retry-After": when.strftime("%a, %d %b %Y %H:%M:%S GMT")},
    )
    with pytest.raises(HookAttemptError) as info:
        await make_transport(client=client).invoke(EVENT)
    assert info.value.retry_after is not None and 60 < info.value.retry_after <= 120


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("fault", "retryable", "reason"),
    [
        (error_fault(500, "ServiceException", "internal"), True, "ServiceException: internal"),
        (
            error_fault(502, "ResourceNotReadyException", "not ready"),
            True,
            "ResourceNotReadyException: not ready",
        ),
        (error_fault(503, "ServiceUnavailable", "busy"), True, "ServiceUnavailable: busy"),
        (
            error_fault(400, "InvalidRequestContentException", "Could not parse request body"),
            False,
            "InvalidRequestContentException: Could not parse request body",
        ),
        (
            error_fault(413, "RequestTooLargeException", "Request must be smaller"),
            False,
            "RequestTooLargeException: Request must be smaller",
        ),
        (
            error_fault(409, "ResourceConflictException", "The function is Pending"),
            False,
            "ResourceConflictException",
        ),
        (Fault(status=500, body=b"<html>oops</html>"), True, "500"),
    ],
)
async def test_status_codes(
    make_transport: MakeTransport,
    lambda_api: InvokeApi,
    client: str,
    fault: Fault,
    retryable: bool,
    reason: str,
) -> None:
    lambda_api.faults["echo"] = fault
    with pytest.raises(HookAttemptError) as info:
        await make_transport(client=client).invoke(EVENT)
    assert info.value.retryable is retryable
    assert reason in info.value.reason
    assert info.value.function == "echo"
    if not retryable:
        assert info.value.retry_after is None


@pytest.mark.parametrize("client", CLIENTS)
async def test_unknown_function_is_not_retryable(
    make_transport: MakeTransport, client: str
) -> None:
    with pytest.raises(HookAttemptError) as info:
        await make_transport("missing", client=client).invoke(EVENT)
    assert info.value.retryable is False
    assert info.value.reason.startswith("ResourceNotFoundException: Function not found: ")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("kind", "error_type", "message"),
    [
        ("Handled", "ValueError", "campaign has no segment"),
        ("Unhandled", "Runtime.ExitError", "Runtime exited with error: signal: killed"),
    ],
)
async def test_function_errors_are_retryable_with_the_functions_error(
    make_transport: MakeTransport,
    lambda_api: InvokeApi,
    client: str,
    kind: str,
    error_type: str,
    message: str,
) -> None:
    lambda_api.faults["echo"] = function_error_fault(kind, error_type, message)
    with pytest.raises(HookAttemptError) as info:
        await make_transport(client=client).invoke(EVENT)
    assert info.value.retryable is True
    assert kind in info.value.reason
    assert f"{error_type}: {message}" in info.value.reason


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("body", [b"<html>not json</html>", b"", b'{"unterminated": '])
async def test_undecodable_result_is_a_result_error(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str, body: bytes
) -> None:
    lambda_api.faults["echo"] = Fault(status=200, body=body)
    with pytest.raises(HookResultError):
        await make_transport(client=client).invoke(EVENT)


@pytest.mark.parametrize("client", CLIENTS)
async def test_result_is_returned_as_decoded(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    """The transport decodes; validating the map is the policy's job (e.g. ``null``)."""
    lambda_api.faults["echo"] = Fault(status=200, body=b"null")
    assert await make_transport(client=client).invoke(EVENT) is None


@pytest.mark.parametrize("client", CLIENTS)
async def test_oversized_event_never_reaches_the_server(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    big = b'{"Endpoints":{"e":"' + b"x" * MAX_SYNC_PAYLOAD + b'"}}'
    with pytest.raises(HookAttemptError) as info:
        await make_transport(client=client).invoke(big)
    assert info.value.retryable is False
    assert "6291456" in info.value.reason
    assert lambda_api.requests == []
    # exactly at the limit is allowed through
    exact = b'"' + b"x" * (MAX_SYNC_PAYLOAD - 2) + b'"'
    lambda_api.faults["echo"] = Fault(status=200, body=b"{}")
    assert await make_transport(client=client).invoke(exact) == {}
    assert len(lambda_api.requests) == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_connection_refused_is_retryable(
    aws: AwsClients, client: str, free_tcp_port: int
) -> None:
    transport = LambdaTransport(  # nothing listens on free_tcp_port
        "echo", region=REGION, endpoint_url=f"http://127.0.0.1:{free_tcp_port}", clients=aws,
        client=client,
    )
    try:
        with pytest.raises(HookAttemptError) as info:
            await transport.invoke(EVENT)
        assert info.value.retryable is True
        assert "connection" in info.value.reason.lower()
    finally:
        await transport.aclose()


@pytest.mark.parametrize("client", CLIENTS)
async def test_bad_signature_is_rejected_and_not_retryable(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    """The server really checks signatures: a different secret gets 403."""
    lambda_api.credentials[ACCESS_KEY] = ("another-secret", SESSION_TOKEN)
    with pytest.raises(HookAttemptError) as info:
        await make_transport(client=client).invoke(EVENT)
    assert info.value.retryable is False
    assert "InvalidSignatureException" in info.value.reason
    assert lambda_api.requests[0].signature_problem == "signature mismatch"


@pytest.mark.parametrize("client", CLIENTS)
async def test_cancelled_attempts_do_not_leak_connections(
    make_transport: MakeTransport, lambda_api: InvokeApi, client: str
) -> None:
    """The policy's cancel scope interrupts slow attempts; the pool must not run dry."""
    lambda_api.faults["echo"] = Fault(status=200, body=b"{}", delay=30.0, times=6)
    # the botocore path's pool is its AwsClients' (max_pool_connections)
    small_pool = AwsClients(REGION, max_pool_connections=2)
    try:
        transport = make_transport(client=client, concurrency=2, clients=small_pool)
        await transport.open()
        for round_ in range(1, 4):  # more cancelled attempts than the pool has connections
            async with anyio.create_task_group() as tg:
                for _ in range(2):
                    tg.start_soon(_invoke_until_cancelled, transport)
                with anyio.fail_after(10):  # both requests are in the server, answer pending
                    await lambda_api.wait_for_requests(2 * round_)
                tg.cancel_scope.cancel()
        assert len(lambda_api.requests) == 6
        with anyio.fail_after(10):  # a leaked pool would hang here, not fail fast
            assert await transport.invoke(EVENT) == ENDPOINTS
    finally:
        await small_pool.aclose()


async def _invoke_until_cancelled(transport: LambdaTransport) -> None:
    await transport.invoke(EVENT)
    raise AssertionError("the slow invocation should have been cancelled")


async def test_endpoint_from_standard_environment_variable(
    lambda_api: InvokeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_api.url)
    async with LambdaTransport("echo", region=REGION) as transport:
        assert transport.invoke_url is not None
        assert transport.invoke_url.startswith(lambda_api.url)
        assert await transport.invoke(EVENT) == ENDPOINTS
    monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA")
    monkeypatch.setenv("AWS_ENDPOINT_URL", lambda_api.url)
    async with LambdaTransport("echo", region=REGION, client="botocore") as transport:
        assert await transport.invoke(EVENT) == ENDPOINTS
    assert len(lambda_api.requests) == 2
    assert all(r.signature_ok for r in lambda_api.requests)


async def test_default_endpoint_is_the_regional_lambda_endpoint() -> None:
    async with LambdaTransport("echo:live", region="eu-west-1") as transport:
        assert transport.invoke_url == (
            "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/echo/invocations"
            "?Qualifier=live"
        )


async def test_refreshed_credentials_are_used(
    lambda_api: InvokeApi, aws: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials from a refreshable provider are re-read, not frozen at start-up."""
    from aiobotocore.credentials import AioRefreshableCredentials
    from botocore.credentials import CredentialProvider

    generation = 0

    async def fetch() -> dict[str, str]:
        nonlocal generation
        generation += 1
        lambda_api.credentials[f"AKIDGEN{generation:013d}"] = (f"secret-{generation}", None)
        expiry = datetime.now(UTC) + timedelta(minutes=5)  # inside the refresh window
        return {
            "access_key": f"AKIDGEN{generation:013d}",
            "secret_key": f"secret-{generation}",
            "token": "",
            "expiry_time": expiry.isoformat(),
        }

    class Provider(CredentialProvider):  # type: ignore[misc]
        METHOD = "test-refreshing"

        async def load(self) -> AioRefreshableCredentials:
            return AioRefreshableCredentials.create_from_metadata(
                await fetch(), refresh_using=fetch, method=self.METHOD
            )

    aws.session.get_component("credential_provider").insert_before("env", Provider())
    monkeypatch.setattr(FrozenCredentials, "_RECHECK", 0.0)
    transport = LambdaTransport("echo", region=REGION, endpoint_url=lambda_api.url, clients=aws)
    try:
        for _ in range(3):
            assert await transport.invoke(EVENT) == ENDPOINTS
    finally:
        await transport.aclose()
    keys = [AUTH_RE.fullmatch(r.headers["Authorization"])["key"] for r in lambda_api.requests]
    assert all(r.signature_ok for r in lambda_api.requests)
    assert len(set(keys)) == 3  # every call saw freshly refreshed credentials


async def test_missing_credentials_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Not loopback: resolving credentials fails before any request could leave.
    transport = LambdaTransport("echo", region=REGION,
                                endpoint_url="https://lambda.us-east-1.amazonaws.com")
    try:
        with pytest.raises(ConfigError, match="credentials"):
            await transport.open()
    finally:
        await transport.aclose()


async def test_a_loopback_lambda_needs_no_credentials(
    lambda_api: InvokeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    transport = LambdaTransport("echo", region=REGION, endpoint_url=lambda_api.url)
    try:
        with pytest.raises(HookAttemptError, match="InvalidSignatureException"):
            await transport.invoke(EVENT)  # signed with placeholder keys the server rejects
    finally:
        await transport.aclose()
    assert len(lambda_api.requests) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"client": "boto3"},
        {"endpoint_url": "ftp://127.0.0.1"},
        {"endpoint_url": "localhost:9000"},
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LambdaTransport("echo", region=REGION, **kwargs)


async def test_closed_transport_refuses_work(make_transport: MakeTransport) -> None:
    transport = make_transport()
    await transport.invoke(EVENT)
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.invoke(EVENT)
