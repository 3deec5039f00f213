"""The push sender (Pinpoint SendMessages) against the local Pinpoint server."""

from __future__ import annotations

import botocore.session
import pytest

from dispatcher.channels import push
from dispatcher.channels.base import Sender
from dispatcher.errors import ConfigError
from dispatcher.model import Status

pytestmark = pytest.mark.anyio

CAMPAIGN_GCM = {  # campaign Message shape
    "Action": "DEEP_LINK",
    "Url": "myapp://offers",
    "Title": "{{raw title}}",
    "Body": "{{raw body}}",
    "ImageUrl": "https://example.com/big.png",
    "ImageSmallIconUrl": "https://example.com/small.png",
    "JsonBody": '{"offer": "spring", "n": 3}',
    "SilentPush": False,
    "TimeToLive": "3600",
}
CAMPAIGN_APNS = {"Action": "URL", "Url": "https://example.com", "MediaUrl": "https://m/1.jpg",
                 "Sound": "default", "TimeToLive": 60, "ImageUrl": "not-for-apns"}  # fmt: skip


async def test_messages_are_sent_100_addresses_per_call_with_per_address_overrides(
    push_server, sender_ctx, make_message
):
    sender = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)
    assert isinstance(sender, Sender) and sender.max_batch == 100
    messages = [
        make_message(f"token-{i}", "GCM" if i % 2 else "APNS", title=f"Hi {i}", body=f"Offer {i}",
                     template=CAMPAIGN_GCM if i % 2 else CAMPAIGN_APNS)
        for i in range(250)
    ]  # fmt: skip

    results = []
    for start in range(0, len(messages), sender.max_batch):
        results += await sender.send(messages[start : start + sender.max_batch])

    assert [len(c["MessageRequest"]["Addresses"]) for c in push_server.calls] == [100, 100, 50]
    assert {c["ApplicationId"] for c in push_server.calls} == {sender_ctx.application_id}
    assert all(r.status is Status.SUCCESS for r in results)
    delivered = {m["Address"]: m for m in push_server.messages}
    for message, result in zip(messages, results, strict=True):
        got = delivered[message.address]
        assert got["MessageId"] == result.message_id
        assert got["ChannelType"] == message.channel_type
        assert (got["TitleOverride"], got["BodyOverride"]) == (message.title, message.body)
    config = push_server.calls[0]["MessageRequest"]["MessageConfiguration"]
    assert config["GCMMessage"] == {
        "Action": "DEEP_LINK",
        "Url": "myapp://offers",
        "ImageUrl": "https://example.com/big.png",
        "SmallImageIconUrl": "https://example.com/small.png",
        "Data": {"offer": "spring", "n": "3"},
        "SilentPush": False,
        "TimeToLive": 3600,
    }
    assert config["APNSMessage"] == {"Action": "URL", "Url": "https://example.com",
                                     "MediaUrl": "https://m/1.jpg", "Sound": "default",
                                     "TimeToLive": 60}  # fmt: skip


def test_platform_fields_exist_in_botocores_model():
    model = botocore.session.get_session().get_service_model("pinpoint")
    for key, fields in push.STATIC_FIELDS.items():
        members = set(model.shape_for(key).members)
        assert fields <= members, fields - members
        assert members - fields == {"Title", "Body", "Substitutions"}
    assert set(push.PLATFORM_MESSAGE.values()) <= set(
        model.shape_for("DirectMessageConfiguration").members
    )


def test_adm_and_baidu_platform_messages():
    adm = push.platform_message("ADMMessage", {"TimeToLive": 90, "Data": {"k": 1}, "Foo": "x"})
    assert adm == {"ExpiresAfter": "90", "Data": {"k": "1"}}
    baidu = push.platform_message("BaiduMessage", {"TimeToLive": 90, "SilentPush": "true"})
    assert baidu == {"TimeToLive": 90, "SilentPush": True}


async def test_per_address_results_map_to_outcomes(push_server, sender_ctx, make_message):
    push_server.faults.update(
        {
            "throttle_addresses": ["t-throttled"],
            "fail_addresses": {"t-bad": {"message": "Invalid registration token", "status": 400}},
            "results": {
                "t-optout": {"DeliveryStatus": "OPT_OUT", "StatusCode": 400,
                             "StatusMessage": "Endpoint opted out"},
                "t-temp": {"DeliveryStatus": "TEMPORARY_FAILURE", "StatusCode": 503,
                           "StatusMessage": "FCM unavailable"},
                "t-dup": {"DeliveryStatus": "DUPLICATE", "StatusCode": 400,
                          "StatusMessage": "Duplicate address"},
                "t-unknown": {"DeliveryStatus": "UNKNOWN_FAILURE", "StatusCode": 500,
                              "StatusMessage": "?"},
            },
        }
    )  # fmt: skip
    sender = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)
    names = ["t-ok", "t-throttled", "t-bad", "t-optout", "t-temp", "t-dup", "t-unknown"]

    results = await sender.send([make_message(n, "GCM") for n in names])

    got = {n: (r.status, r.retryable) for n, r in zip(names, results, strict=True)}
    assert got == {
        "t-ok": (Status.SUCCESS, False),
        "t-throttled": (Status.THROTTLED, True),
        "t-bad": (Status.PERMANENT_FAILURE, False),
        "t-optout": (Status.PERMANENT_FAILURE, False),
        "t-temp": (Status.TEMPORARY_FAILURE, True),
        "t-dup": (Status.PERMANENT_FAILURE, False),
        "t-unknown": (Status.TEMPORARY_FAILURE, False),
    }
    reasons = dict(zip(names, (r.reason for r in results), strict=True))
    assert reasons["t-bad"] == "PERMANENT_FAILURE: Invalid registration token (StatusCode 400)"
    assert reasons["t-optout"].startswith("OPT_OUT: Endpoint opted out")
    assert len(push_server.calls) == 1


async def test_repeated_addresses_and_different_templates_go_in_separate_calls(
    push_server, sender_ctx, make_message
):
    sender = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)
    treatment_b = {**CAMPAIGN_GCM, "Url": "myapp://b"}
    messages = [
        make_message("tok-1", "GCM", title="A1", template=CAMPAIGN_GCM),
        make_message("tok-2", "GCM", title="B2", template=treatment_b),
        make_message("tok-1", "GCM", title="A1 again", template=CAMPAIGN_GCM),
        make_message("tok-3", "GCM", title="A3", template=dict(CAMPAIGN_GCM)),  # equal copy
    ]

    results = await sender.send(messages)

    assert all(r.status is Status.SUCCESS for r in results)
    calls = sorted(
        (sorted(c["MessageRequest"]["Addresses"]),
         c["MessageRequest"]["MessageConfiguration"]["GCMMessage"]["Url"])
        for c in push_server.calls
    )  # fmt: skip
    assert calls == [
        (["tok-1"], "myapp://offers"),
        (["tok-1", "tok-3"], "myapp://offers"),
        (["tok-2"], "myapp://b"),
    ]
    titles = sorted(m["TitleOverride"] for m in push_server.messages if m["Address"] == "tok-1")
    assert titles == ["A1", "A1 again"]


async def test_application_id_option_and_missing_title(push_server, sender_ctx, make_message):
    sender = push.create(
        "APNS", {"endpoint_url": push_server.url, "application_id": "other-app"}, sender_ctx
    )
    [result] = await sender.send([make_message("tok", "APNS_SANDBOX", title=None, body="b")])
    assert result.status is Status.SUCCESS
    [call] = push_server.calls
    assert call["ApplicationId"] == "other-app"
    assert call["MessageRequest"]["Addresses"] == {
        "tok": {"ChannelType": "APNS_SANDBOX", "BodyOverride": "b"}
    }


async def test_non_push_channels_fail_without_a_call(push_server, sender_ctx, make_message):
    sender = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)
    [result] = await sender.send([make_message("a@x.io", "EMAIL")])
    assert result.status is Status.PERMANENT_FAILURE
    assert result.reason.startswith("UnsupportedChannel")
    assert push_server.calls == []


async def test_whole_call_throttling_applies_to_every_message(
    push_server, sender_ctx, make_message
):
    push_server.faults.update({"throttle_next": 1, "retry_after": 4})
    sender = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)
    results = await sender.send([make_message(f"t{i}", "GCM") for i in range(3)])
    assert [(r.status, r.retryable, r.retry_after) for r in results] == [
        (Status.THROTTLED, True, 4.0)
    ] * 3
    assert results[0] is not results[1]
    assert results[0].reason.startswith("TooManyRequestsException")


async def test_5xx_slow_and_rejected_calls(push_server, sender_ctx, make_message):
    sender = push.create("GCM", {"endpoint_url": push_server.url}, sender_ctx)

    push_server.faults.update({"error_next": 1, "error_status": 502})
    [error] = await sender.send([make_message("t1", "GCM")])
    assert error.status is Status.TEMPORARY_FAILURE and error.retryable

    push_server.faults.update({"delay": 2.0, "delay_next": 1})
    [slow] = await sender.send([make_message("t2", "GCM")])
    assert slow.status is Status.TEMPORARY_FAILURE and not slow.retryable
    assert "duplicate" in slow.reason

    bad = await sender.send([make_message("t3", "GCM", template={"TimeToLive": "soon"})])
    assert bad[0].status is Status.PERMANENT_FAILURE and bad[0].reason.startswith("InvalidTemplate")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"application_id": 7}, "application_id"),
        ({"max_batch": 101}, "max_batch"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url"),
        ({"app": "x"}, "app"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(offline_ctx, options, key):
    with pytest.raises(ConfigError) as info:
        push.create("APNS", options, offline_ctx)
    assert info.value.key == f"channels.APNS.{key}"
