"""Adaptive hook concurrency end to end: real runs against Lambda Invoke APIs on loopback.

``ThrottlingLambda`` answers after a latency and throttles above a fixed concurrency,
the way Lambda does (429 ``TooManyRequestsException``). What the tests hold the
dispatcher to: a patient client delivers every endpoint of a throttling function; the
function is not pushed far past its limit; the concurrency grows past its start and
stays inside its bound; an explicit ``hook_concurrency`` stays exactly that; a throttle
is not an attempt and does not spend the deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from dispatcher import dispatch
from dispatcher.errors import HookAttemptError, RunInterrupted
from dispatcher.hooks.aws_lambda import LambdaTransport
from dispatcher.hooks.concurrency import HookConcurrency
from dispatcher.hooks.invoke import InvokePolicy, invoke_with_policy
from tests.conftest import endpoint, make_settings, read_jsonl, write_jsonl
from tests.hooks.lambda_api_server import REGION, InvokeApi, error_fault
from tests.hooks.throttling_lambda import ThrottlingLambda

pytestmark = pytest.mark.anyio

EVENT = b'{"Endpoints": {"ep-1": {"ChannelType": "SMS", "Address": "+12065550100"}}}'
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


async def start(server: ThrottlingLambda) -> ThrottlingLambda:
    await server.start()
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[ThrottlingLambda]]:
    started: list[ThrottlingLambda] = []
    try:
        yield started
    finally:
        for server in started:
            await server.stop()


async def run(tmp_path: Path, server: ThrottlingLambda, n: int, **dispatch_options: Any) -> Any:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, n + 1)))
    settings = make_settings(
        tmp_path,
        project={"ApplicationId": "app-1", "Region": REGION, "AccountId": "111122223333"},
        campaign={"Hook": {"LambdaFunctionName": "fn", "Mode": "FILTER"}},
        functions={"fn": {"endpoint_url": server.url}},
        dispatch=dispatch_options,
    )
    return await dispatch(settings, segment=str(segment), out_dir=tmp_path / "out",
                          progress=False)  # fmt: skip


# -- whole runs ----------------------------------------------------------------------------


async def test_a_throttling_function_gets_every_endpoint_and_is_not_overrun(
    tmp_path: Path, servers: list[ThrottlingLambda]
) -> None:
    # Four executions at once, against a gate that starts at 16: the first round trip
    # alone is three quarters throttled.
    server = await start(ThrottlingLambda(limit=4, latency=0.02))
    servers.append(server)
    summary = await run(tmp_path, server, 4000)
    assert summary.by_status == {"SUCCESS": 4000}  # none THROTTLED or HOOK_FAILURE
    assert server.endpoints == 4000 and server.accepted == 80  # each chunk ran once
    assert summary.hook_invocations == 80  # throttled calls are not invocations
    assert server.max_running <= 4
    assert server.throttled > 0  # it did throttle...
    assert server.throttled <= server.accepted // 2  # ...but the client backed off
    outcomes = read_jsonl(tmp_path / "out" / "outcomes.jsonl")
    assert len(outcomes) == 4000 and {o["Status"] for o in outcomes} == {"SUCCESS"}


async def test_throttles_with_retry_after_are_waited_out(
    tmp_path: Path, servers: list[ThrottlingLambda]
) -> None:
    # Every throttled chunk waits 0.3 s a time; a short deadline would not cover it,
    # but a throttle's wait is not the function's time.
    server = await start(ThrottlingLambda(limit=2, latency=0.02, retry_after=0.3))
    servers.append(server)
    summary = await run(tmp_path, server, 1000, hook_deadline=0.5, hook_attempts=1)
    assert summary.by_status == {"SUCCESS": 1000}
    assert server.throttled > 0 and server.accepted == 20


async def test_concurrency_grows_past_its_start_and_stays_inside_its_bound(
    tmp_path: Path, servers: list[ThrottlingLambda]
) -> None:
    server = await start(ThrottlingLambda(limit=1000, latency=0.2))
    servers.append(server)
    summary = await run(tmp_path, server, 4000, hook_concurrency_max=24)
    assert summary.by_status == {"SUCCESS": 4000}
    assert 16 < server.max_running <= 24
    assert server.throttled == 0


async def test_an_explicit_hook_concurrency_stays_fixed(
    tmp_path: Path, servers: list[ThrottlingLambda]
) -> None:
    server = await start(ThrottlingLambda(limit=1000, latency=0.05))
    servers.append(server)
    summary = await run(tmp_path, server, 2000, hook_concurrency=4)
    assert summary.by_status == {"SUCCESS": 2000}
    assert server.max_running == 4  # reached, never exceeded, never grown


async def test_stopping_while_throttled_leaves_the_chunks_for_resume(
    tmp_path: Path, lambda_api: InvokeApi
) -> None:
    lambda_api.faults["echo"] = throttle(None)  # the function takes nothing
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 201)))
    settings = make_settings(
        tmp_path,
        project={"ApplicationId": "app-1", "Region": REGION, "AccountId": "111122223333"},
        campaign={"Hook": {"LambdaFunctionName": "echo", "Mode": "FILTER"}},
        functions={"echo": {"endpoint_url": lambda_api.url}},
    )
    out, stop = tmp_path / "out", anyio.Event()

    async def stop_when_throttled() -> None:
        await lambda_api.wait_for_requests(12)
        stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_when_throttled)
        with pytest.raises(RunInterrupted) as stopped:
            await dispatch(settings, segment=str(segment), out_dir=out, progress=False,
                           stop=stop)  # fmt: skip
    assert read_jsonl(out / "outcomes.jsonl") == []  # no chunk ran: none ends HOOK_FAILURE
    del lambda_api.faults["echo"]  # the function has capacity again
    resumed = await dispatch(settings, segment=str(segment), out_dir=out, progress=False,
                             run_id=stopped.value.run_id, resume=True)  # fmt: skip
    assert resumed.by_status == {"SUCCESS": 200}


# -- one chunk under the invoke policy -------------------------------------------------------


def throttle(times: int | None, **kw: Any) -> Any:
    return error_fault(
        429,
        "TooManyRequestsException",
        "Rate Exceeded.",
        extra={"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
        times=times,
        **kw,
    )


async def test_a_throttle_is_not_an_attempt(lambda_api: InvokeApi) -> None:
    lambda_api.faults["echo"] = throttle(5)
    attempts, throttles = [], []
    gate = HookConcurrency(maximum=32)
    async with LambdaTransport("echo", region=REGION, endpoint_url=lambda_api.url) as transport:
        result = await invoke_with_policy(
            transport, EVENT, InvokePolicy(attempts=1, **FAST), gate=gate,
            on_attempt=lambda: attempts.append(1), on_throttle=lambda: throttles.append(1),
        )  # fmt: skip
    assert result == {"ep-1": {"ChannelType": "SMS", "Address": "+12065550100"}}
    assert (len(attempts), len(throttles), len(lambda_api.requests)) == (1, 5, 6)
    assert gate.throttles == 5 and gate.limit < 16  # the gate was cut
    assert gate.calls == 0


async def test_a_function_that_only_throttles_fails_after_the_patience(
    lambda_api: InvokeApi,
) -> None:
    lambda_api.faults["echo"] = throttle(None)
    policy = InvokePolicy(throttle_patience=0.3, **FAST)
    async with LambdaTransport("echo", region=REGION, endpoint_url=lambda_api.url) as transport:
        with pytest.raises(HookAttemptError) as info:
            await invoke_with_policy(transport, EVENT, policy, gate=HookConcurrency(maximum=4))
    assert info.value.reason == (
        "TooManyRequestsException: Rate Exceeded. "
        "(ReservedFunctionConcurrentInvocationLimitExceeded) "
        "(the function answered no call for 0.3 s; after 0 attempts)"
    )
    assert len(lambda_api.requests) >= 2  # it was asked again before giving up


async def test_retry_after_on_a_5xx_is_an_attempt_and_slows_the_gate(
    lambda_api: InvokeApi,
) -> None:
    # A 503 may come after the function ran: it counts as an attempt, yet its
    # Retry-After asks for less load, so the gate is cut as for a throttle.
    lambda_api.faults["echo"] = error_fault(
        503, "ServiceException", "busy", headers={"Retry-After": "0.01"}, times=1
    )
    attempts: list[int] = []
    gate = HookConcurrency(maximum=32)
    async with LambdaTransport("echo", region=REGION, endpoint_url=lambda_api.url) as transport:
        await invoke_with_policy(transport, EVENT, InvokePolicy(**FAST), gate=gate,
                                 on_attempt=lambda: attempts.append(1))  # fmt: skip
    assert len(attempts) == 2
    assert gate.throttles == 1 and gate.limit == 11  # 16 * 0.7


async def test_attempts_still_bound_real_failures(lambda_api: InvokeApi) -> None:
    lambda_api.faults["echo"] = error_fault(500, "ServiceException", "boom")
    policy = InvokePolicy(attempts=3, **FAST)
    async with LambdaTransport("echo", region=REGION, endpoint_url=lambda_api.url) as transport:
        with pytest.raises(HookAttemptError) as info:
            await invoke_with_policy(transport, EVENT, policy, gate=HookConcurrency(maximum=4))
    assert info.value.reason == "ServiceException: boom (after 3 attempts)"
    assert len(lambda_api.requests) == 3
