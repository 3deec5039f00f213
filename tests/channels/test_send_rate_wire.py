"""The send-rate ceiling as the provider sees it (issue 17): every test counts arrival
stamps at a wire server running in its own process, never grants at the limiter.

The property checked is the issue's definition: no half-open one-second window of
arrivals holds more than the effective ceiling. It must hold however loaded the machine
is, so nothing here asserts a duration or a throughput (the benchmark reports those).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.aws import AwsClients
from dispatcher.channels import push, ses
from dispatcher.channels.base import Message, SenderContext
from dispatcher.errors import ConfigError
from dispatcher.model import Status
from dispatcher.ratelimit import Pacing, RateLimiter
from dispatcher.testing import ServerProcess, http_json
from tests.channels.wire import busiest, endpoints, run_campaign
from tests.conftest import endpoint, read_jsonl

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    """The three wire servers, each in its own process, for the module."""
    with ServerProcess("sms") as sms, ServerProcess("ses") as ses_, ServerProcess("push") as push:
        yield {"sms": sms, "ses": ses_, "push": push}


@pytest.fixture
def wire(servers: dict[str, ServerProcess]) -> dict[str, ServerProcess]:
    for server in servers.values():
        server.reset()
    return servers


def channel(wire: dict[str, ServerProcess], name: str, **options: object) -> dict[str, object]:
    return {"sender": name, "endpoint_url": wire[name].url, **options}


def statuses(tmp_path: Path) -> Counter[str]:
    return Counter(o["Status"] for o in read_jsonl(tmp_path / "out" / "outcomes.jsonl"))


def test_the_window_checker_itself_sees_a_violation() -> None:
    assert busiest([(0.0, 1), (0.999, 1), (1.0, 1)]) == 2
    assert busiest([(0.0, 1), (1.0, 1), (2.0, 1)]) == 1
    assert busiest([(0.5, 3), (1.2, 4), (1.6, 1)]) == 7


@pytest.mark.parametrize(
    ("rate", "n", "workers"),
    [(1, 4, 8), (5, 16, 8), (5, 16, 1), (250, 750, 1), (250, 750, 16)],
    ids=["1/s", "5/s", "5/s-one-worker", "250/s-one-worker", "250/s-16-workers"],
)
async def test_sms_ceiling_holds_at_the_wire(tmp_path, wire, rate, n, workers) -> None:
    # The first request waits for the SMS client to be made; a permit is only taken after
    # it exists, and is held until the answer, so that delay cannot squeeze two seconds'
    # worth of requests into one window (it did: 10 in a window at 5/s).
    summary = await run_campaign(tmp_path, endpoints(n), rate=rate, send_concurrency=workers,
                                 channels={"SMS": channel(wire, "sms")})  # fmt: skip
    arrivals = wire["sms"].arrivals()
    assert summary.by_status == {"SUCCESS": n}
    assert sum(k for _, k in arrivals) == n
    assert busiest(arrivals) <= rate


@pytest.mark.parametrize(("rate", "n"), [(250, 750), (2_000, 6_000)], ids=["250/s", "2000/s"])
async def test_push_batches_count_each_address(tmp_path, wire, rate, n) -> None:
    summary = await run_campaign(tmp_path, endpoints(n, "GCM"), rate=rate,
                                 channels={"GCM": channel(wire, "push")})  # fmt: skip
    arrivals = wire["push"].arrivals()
    assert summary.by_status == {"SUCCESS": n}
    assert sum(k for _, k in arrivals) == n and max(k for _, k in arrivals) > 1
    assert busiest(arrivals) <= rate


async def test_channels_and_treatments_share_the_campaign_ceiling(tmp_path, wire) -> None:
    records = [endpoint(i, "SMS" if i % 2 else "EMAIL") for i in range(1, 151)]
    treatments = {"AdditionalTreatments": [{"SizePercent": 50, "TreatmentName": "B"}]}
    summary = await run_campaign(
        tmp_path, records, rate=50, campaign=treatments,
        channels={"SMS": channel(wire, "sms"),
                  "EMAIL": channel(wire, "ses", account_quota=False)},
    )  # fmt: skip
    sms_arrivals, ses_arrivals = wire["sms"].arrivals(), wire["ses"].arrivals()
    assert summary.by_status == {"SUCCESS": 150}
    treatment_ids = {o.get("TreatmentId") for o in read_jsonl(tmp_path / "out" / "outcomes.jsonl")}
    assert len(treatment_ids) == 2
    assert sms_arrivals and ses_arrivals
    # Both servers stamp with the machine's monotonic clock: one timeline.
    assert busiest(sms_arrivals + ses_arrivals) <= 50


async def test_a_sender_ceiling_and_origination_identity_ceilings_under_the_campaign(
    tmp_path, wire
) -> None:
    pool = ["+12065550100", "+18005550100"]
    sms = channel(wire, "sms", max_per_second=6, origination_identity=pool,
                  origination_rates={pool[0]: 1, pool[1]: 3})  # fmt: skip
    summary = await run_campaign(tmp_path, endpoints(16), rate=100, channels={"SMS": sms})
    assert summary.by_status == {"SUCCESS": 16}
    calls = http_json(f"{wire['sms'].url}/_test/calls")
    arrivals = wire["sms"].arrivals()
    by_identity: dict[str, list[tuple[float, int]]] = {number: [] for number in pool}
    for call, arrival in zip(calls, arrivals, strict=True):
        by_identity[call["Request"]["OriginationIdentity"]].append(arrival)
    assert busiest(by_identity[pool[0]]) <= 1
    assert busiest(by_identity[pool[1]]) <= 3
    assert all(by_identity.values())  # the pool shares the load
    assert busiest(arrivals) <= 4


async def test_the_ses_account_quota_from_get_account_is_a_ceiling(tmp_path, wire) -> None:
    http_json(f"{wire['ses'].url}/_test/account", {"SendQuota": {"MaxSendRate": 4.0}})
    summary = await run_campaign(tmp_path, endpoints(12, "EMAIL"), rate=100,
                                 channels={"EMAIL": channel(wire, "ses")})  # fmt: skip
    assert summary.by_status == {"SUCCESS": 12}
    assert busiest(wire["ses"].arrivals()) <= 4


async def test_the_ses_account_quota_is_one_ceiling_across_processes(tmp_path, wire) -> None:
    # No MessagesPerSecond, no max_per_second: the provider's quota is the only ceiling,
    # and --processes 2 must share it as it shares the campaign's.
    http_json(f"{wire['ses'].url}/_test/account", {"SendQuota": {"MaxSendRate": 4.0}})
    summary = await run_campaign(tmp_path, endpoints(24, "EMAIL"), rate=None,
                                 channels={"EMAIL": channel(wire, "ses")},
                                 processes=2)  # fmt: skip
    assert summary.by_status == {"SUCCESS": 24}
    assert busiest(wire["ses"].arrivals()) <= 4


async def test_get_account_says_what_it_read_and_a_failure_is_a_note(tmp_path, wire) -> None:
    clients = AwsClients("us-east-1", read_timeout=5.0)
    try:
        ctx = SenderContext("app", "us-east-1", "111122223333", clients, tmp_path)
        url = wire["ses"].url
        http_json(f"{url}/_test/account", {"SendQuota": {"MaxSendRate": 14.0}})
        sender = ses.create("EMAIL", {"endpoint_url": url}, ctx)
        assert await sender.open() == (
            "EMAIL: SES account MaxSendRate (us-east-1) 14/s is a ceiling under the "
            "campaign's (GetAccount)")  # fmt: skip
        assert sender.account_rate == 14.0
        assert await sender.open() is None  # once per run
        http_json(f"{url}/_test/account", {"error": {"code": "AccessDeniedException",
                                                     "message": "not authorized"}})  # fmt: skip
        denied = ses.create("EMAIL", {"endpoint_url": url}, ctx)
        note = await denied.open()
        assert note is not None and "not read, not a ceiling" in note
        assert "AccessDeniedException" in note and denied.account_rate is None
        off = ses.create("EMAIL", {"endpoint_url": url, "account_quota": False}, ctx)
        assert await off.open() is None and off.account_rate is None
    finally:
        await clients.aclose()


async def test_throttling_slows_down_loses_nothing_and_gives_up_only_on_refusals(
    tmp_path, wire
) -> None:
    # The provider's own quota is 10/s, the campaign's ceiling 40/s: AIMD and Retry-After
    # bring the rate down; a message ends THROTTLED only if every attempt was refused
    # (one number is always refused).
    refused = endpoint(7)["Address"]
    wire["sms"].set_faults(throttle_rate=10, retry_after=1, throttle_addresses=[refused])
    n = 40
    summary = await run_campaign(tmp_path, endpoints(n), rate=40,
                                 channels={"SMS": channel(wire, "sms")})  # fmt: skip
    outcomes = read_jsonl(tmp_path / "out" / "outcomes.jsonl")
    assert sorted(o["Line"] for o in outcomes) == list(range(1, n + 1))
    accepted = Counter(m["DestinationPhoneNumber"] for m in wire["sms"].messages())
    calls = Counter(c["Request"]["DestinationPhoneNumber"] for c in wire["sms"].calls())
    by_address = {endpoint(o["Line"])["Address"]: o["Status"] for o in outcomes}
    for address, status in by_address.items():
        assert status in ("SUCCESS", "THROTTLED"), status
        if status == "SUCCESS":
            assert accepted[address] == 1
        else:  # refused on each of the 3 attempts, never sent
            assert accepted[address] == 0 and calls[address] == 3
    assert by_address[refused] == "THROTTLED"
    assert summary.total == n
    assert busiest(wire["sms"].arrivals()) <= 40
    # AIMD worked: most messages got through a provider that refuses 3 of 4 at full rate.
    assert summary.by_status.get("SUCCESS", 0) >= n // 2, json.dumps(summary.by_status)


async def test_a_provider_that_stops_refusing_gets_every_message(tmp_path, wire) -> None:
    wire["sms"].set_faults(throttle_next=5)
    summary = await run_campaign(tmp_path, endpoints(20), rate=20,
                                 channels={"SMS": channel(wire, "sms")})  # fmt: skip
    assert summary.by_status == {"SUCCESS": 20}
    assert len(wire["sms"].messages()) == 20
    assert busiest(wire["sms"].arrivals()) <= 20


async def test_a_push_call_never_carries_more_addresses_than_the_limiter_grants(tmp_path, wire):
    # A share of a shared ceiling can be smaller than a 100-address batch.
    clients = AwsClients("us-east-1")
    try:
        ctx = SenderContext("app", "us-east-1", "111122223333", clients, tmp_path)
        sender = push.create("GCM", {"endpoint_url": wire["push"].url}, ctx)
        share = RateLimiter(250)
        share.set_rate(30)
        sender.pace(Pacing(share))
        messages = [Message(f"ep-{i}", i, "GCM", f"tok{i}", "t", "b") for i in range(100)]
        results = await sender.send(messages)
    finally:
        await clients.aclose()
    assert all(r.status is Status.SUCCESS for r in results)
    assert sorted(n for _, n in wire["push"].arrivals()) == [10, 30, 30, 30]
    assert busiest(wire["push"].arrivals()) <= 30


def test_the_account_quota_option_is_a_flag(offline_ctx) -> None:
    with pytest.raises(ConfigError) as info:
        ses.create("EMAIL", {"account_quota": "yes"}, offline_ctx)
    assert info.value.key == "channels.EMAIL.account_quota"
