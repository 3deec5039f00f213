"""SMS origination identities: per-identity ceilings' configuration, and how a pool of
numbers picks each message's identity (the wire test checks the ceilings themselves)."""

from __future__ import annotations

from collections import Counter

import pytest

from dispatcher.channels import sms
from dispatcher.channels.base import PacedSender
from dispatcher.errors import ConfigError
from dispatcher.model import Status

pytestmark = pytest.mark.anyio

POOL = ["+12065550100", "+18005550100"]


@pytest.mark.parametrize(
    ("rates", "key", "words"),
    [
        ({"+12065550100": 0.5}, 'origination_rates."+12065550100"', "messages per second >= 1"),
        ({"+12065550100": True}, 'origination_rates."+12065550100"', "messages per second"),
        ({"+12065550100": "1"}, 'origination_rates."+12065550100"', "messages per second"),
        ({" ": 1}, 'origination_rates." "', "non-empty name"),
        ({}, "origination_rates", "must be a table"),
        (3, "origination_rates", "must be a table"),
    ],
)
def test_bad_origination_rates_are_config_errors_naming_the_key(offline_ctx, rates, key, words):
    with pytest.raises(ConfigError) as info:
        sms.create("SMS", {"origination_rates": rates}, offline_ctx)
    assert info.value.key == f"channels.SMS.{key}"
    assert words in info.value.message
    assert str(info.value).startswith(f"campaign.toml: channels.SMS.{key}: ")


def test_a_pool_lists_each_identity_once(offline_ctx):
    with pytest.raises(ConfigError) as info:
        sms.create("SMS", {"origination_identity": [POOL[0], POOL[0]]}, offline_ctx)
    assert info.value.key == "channels.SMS.origination_identity"
    assert "twice" in info.value.message


def test_the_sender_declares_its_rates_through_the_protocol(offline_ctx):
    rates = {POOL[0]: 1, POOL[1]: 3}
    options = {"max_per_second": 20, "origination_identity": POOL, "origination_rates": rates}
    sender = sms.create("SMS", options, offline_ctx)
    assert isinstance(sender, PacedSender)
    assert sender.max_per_second == 20.0
    assert sender.origination_rates == {POOL[0]: 1.0, POOL[1]: 3.0}


def test_a_pool_keeps_each_destination_on_one_number_in_proportion_to_rates() -> None:
    pool = [(POOL[0], 1.0), (POOL[1], 3.0)]
    destinations = [f"+1425{i:07d}" for i in range(4000)]
    picked = [sms.pick_identity(pool, d) for d in destinations]
    assert picked == [sms.pick_identity(pool, d) for d in destinations]  # stable
    share = Counter(picked)[POOL[0]] / len(picked)
    assert 0.22 < share < 0.28  # weight 1 of 4 (a fixed data set: no chance involved)
    # Adding a number moves only the destinations it wins: the others keep theirs.
    bigger = [*pool, ("+18885550100", 1.0)]
    moved = [(a, sms.pick_identity(bigger, d)) for a, d in zip(picked, destinations, strict=True)]
    assert all(b in (a, "+18885550100") for a, b in moved)


async def test_a_pooled_sender_sends_each_message_from_its_picked_number(
    sms_server, sender_ctx, make_message
):
    rates = {POOL[0]: 1, POOL[1]: 3}
    options = {"endpoint_url": sms_server.url, "origination_identity": POOL,
               "origination_rates": rates}  # fmt: skip
    sender = sms.create("SMS", options, sender_ctx)
    messages = [make_message(f"+1425555{i:04d}", "SMS", template={"OriginationNumber": "+1999"})
                for i in range(12)]  # fmt: skip
    results = await sender.send(messages)
    assert all(r.status is Status.SUCCESS for r in results)
    sent = {m["DestinationPhoneNumber"]: m["OriginationIdentity"] for m in sms_server.messages}
    assert sent == {m.address: sender.identity_of(m) for m in messages}
    assert set(sent.values()) == set(POOL)
    assert sender.identity_of(make_message("+14255550000", "SMS")) in POOL


async def test_without_a_pool_the_template_number_is_the_identity(offline_ctx, make_message):
    sender = sms.create("SMS", {"origination_rates": {"+12065550199": 1}}, offline_ctx)
    message = make_message("+14255550100", "SMS", template={"OriginationNumber": "+12065550199"})
    assert sender.identity_of(message) == "+12065550199"
    assert sender.identity_of(make_message("+14255550100", "SMS")) is None
