"""The SMS sender (pinpoint-sms-voice-v2 SendTextMessage) against the local SMS server."""

from __future__ import annotations

import dataclasses

import botocore.session
import pytest

from dispatcher.channels import sms
from dispatcher.channels.base import Sender
from dispatcher.errors import ConfigError, SendError
from dispatcher.model import Status

pytestmark = pytest.mark.anyio

CAMPAIGN_SMS = {
    "OriginationNumber": "+12065550199",
    "SenderId": "ACME",
    "MessageType": "PROMOTIONAL",
    "Keyword": "ACME",
    "EntityId": "1101234567890",
    "TemplateId": "1107000000000001",
    "MediaUrl": "https://example.com/ignored.png",
}


async def test_template_fields_map_onto_send_text_message(sms_server, sender_ctx, make_message):
    sender = sms.create("SMS", {"endpoint_url": sms_server.url}, sender_ctx)
    assert isinstance(sender, Sender)
    messages = [
        make_message("+14255550100", "SMS", body="Your code is 1234", template=CAMPAIGN_SMS),
        make_message("+14255550101", "SMS", body="Hi Bob", template=CAMPAIGN_SMS),
    ]

    results = await sender.send(messages)

    assert [r.status for r in results] == [Status.SUCCESS] * 2
    first, second = sms_server.messages
    assert first == {
        "DestinationPhoneNumber": "+14255550100",
        "MessageBody": "Your code is 1234",
        "OriginationIdentity": "+12065550199",
        "MessageType": "PROMOTIONAL",
        "Keyword": "ACME",
        "DestinationCountryParameters": {
            "IN_ENTITY_ID": "1101234567890",
            "IN_TEMPLATE_ID": "1107000000000001",
        },
        "MessageId": results[0].message_id,
    }
    assert second["MessageBody"] == "Hi Bob" and second["MessageId"] == results[1].message_id
    assert {c["Target"] for c in sms_server.calls} == {"PinpointSMSVoiceV2.SendTextMessage"}


async def test_the_campaign_region_signs_the_send_unless_the_channel_names_one(
    sms_server, sender_ctx, make_message
):
    """A fleet worker's clients default to the worker's region; the send goes to the
    campaign's project region (``SenderContext.region``), or the channel's own."""
    assert sender_ctx.clients.region == "us-east-1"
    message = make_message("+14255550100", "SMS", body="Hi", template=CAMPAIGN_SMS)
    for options, region in (({}, "eu-west-1"), ({"region": "ap-south-1"}, "ap-south-1")):
        ctx = dataclasses.replace(sender_ctx, region="eu-west-1")
        sender = sms.create("SMS", {"endpoint_url": sms_server.url, **options}, ctx)
        try:
            [result] = await sender.send([message])
        finally:
            await sender.aclose()
        assert result.status == Status.SUCCESS
        assert sms_server.calls[-1]["Region"] == region


async def test_options_override_the_template_and_sender_id_is_the_fallback_identity(
    sms_server, sender_ctx, make_message
):
    options = {
        "endpoint_url": sms_server.url,
        "message_type": "TRANSACTIONAL",
        "configuration_set": "otp",
        "max_price": 0.05,
        "time_to_live": 300,
        "entity_id": "E-OPT",
        "dry_run": True,
    }
    sender = sms.create("SMS", options, sender_ctx)
    template = {"SenderId": "ACME", "MessageType": "PROMOTIONAL", "EntityId": "E-TPL"}

    [result] = await sender.send([make_message("+14255550100", "SMS", template=template)])

    assert result.status is Status.SUCCESS
    [sent] = sms_server.messages
    assert sent["OriginationIdentity"] == "ACME"
    assert sent["MessageType"] == "TRANSACTIONAL"
    assert sent["ConfigurationSetName"] == "otp"
    assert sent["MaxPrice"] == "0.05"
    assert sent["TimeToLive"] == 300
    assert sent["DryRun"] is True
    assert sent["DestinationCountryParameters"] == {"IN_ENTITY_ID": "E-OPT"}
    assert "Keyword" not in sent

    explicit = sms.create(
        "SMS", {"endpoint_url": sms_server.url, "origination_identity": "pool-abc"}, sender_ctx
    )
    await explicit.send([make_message("+14255550100", "SMS", template=CAMPAIGN_SMS)])
    assert sms_server.messages[-1]["OriginationIdentity"] == "pool-abc"


def test_the_v2_request_fields_used_exist_in_botocores_model():
    model = botocore.session.get_session().get_service_model("pinpoint-sms-voice-v2")
    shape = model.operation_model("SendTextMessage").input_shape
    used = {"DestinationPhoneNumber", "MessageBody", "OriginationIdentity", "MessageType",
            "Keyword", "ConfigurationSetName", "MaxPrice", "TimeToLive", "DryRun",
            "ProtectConfigurationId", "DestinationCountryParameters"}  # fmt: skip
    assert used <= set(shape.members)
    keys = shape.members["DestinationCountryParameters"].key.enum
    assert {"IN_ENTITY_ID", "IN_TEMPLATE_ID"} <= set(keys)


async def test_throttling_is_retryable_with_retry_after(sms_server, sender_ctx, make_message):
    sms_server.faults.update({"throttle_addresses": ["+14255550100"], "retry_after": 1.5})
    sender = sms.create("SMS", {"endpoint_url": sms_server.url}, sender_ctx)

    throttled, ok = await sender.send(
        [make_message("+14255550100", "SMS"), make_message("+14255550101", "SMS")]
    )

    assert throttled.status is Status.THROTTLED and throttled.retryable
    assert throttled.retry_after == 1.5
    assert throttled.reason.startswith("ThrottlingException")
    assert ok.status is Status.SUCCESS


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (
            {"code": "ConflictException", "reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
             "message": "The destination phone number is opted out."},
            "ConflictException: DESTINATION_PHONE_NUMBER_OPTED_OUT: "
            "The destination phone number is opted out.",
        ),
        (
            {"code": "ServiceQuotaExceededException",
             "reason": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT", "message": "Spend limit"},
            "ServiceQuotaExceededException: MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT: Spend limit",
        ),
        (
            {"code": "ResourceNotFoundException", "message": "Pool not found"},
            "ResourceNotFoundException: Pool not found",
        ),
    ],
)  # fmt: skip
async def test_rejections_are_permanent_with_code_and_reason(
    sms_server, sender_ctx, make_message, fault, reason
):
    sms_server.faults.update({"fail_addresses": {"+14255550100": fault}})
    sender = sms.create("SMS", {"endpoint_url": sms_server.url}, sender_ctx)
    [result] = await sender.send([make_message("+14255550100", "SMS")])
    assert (result.status, result.retryable, result.reason) == (
        Status.PERMANENT_FAILURE, False, reason,
    )  # fmt: skip


async def test_invalid_number_is_a_permanent_validation_failure(
    sms_server, sender_ctx, make_message
):
    sender = sms.create("SMS", {"endpoint_url": sms_server.url}, sender_ctx)
    bad, empty = await sender.send(
        [make_message("425-555-0100", "SMS"), make_message("+14255550100", "SMS", body="")]
    )
    assert bad.status is Status.PERMANENT_FAILURE
    assert bad.reason.startswith("ValidationException: INVALID_PARAMETER")
    assert empty.status is Status.PERMANENT_FAILURE and empty.reason.startswith("InvalidMessage")
    assert len(sms_server.calls) == 1


async def test_5xx_and_dropped_connections_are_retryable(sms_server, sender_ctx, make_message):
    sms_server.faults.update({"error_next": 1, "drop_next": 1})
    sender = sms.create("SMS", {"endpoint_url": sms_server.url, "max_concurrency": 1}, sender_ctx)
    dropped, error = [(await sender.send([make_message("+14255550100", "SMS")]))[0]
                      for _ in range(2)]  # fmt: skip
    assert dropped.status is Status.TEMPORARY_FAILURE and dropped.retryable
    assert error.status is Status.TEMPORARY_FAILURE and error.retryable
    assert error.reason.startswith("InternalServerException") and "HTTP 500" in error.reason
    assert sms_server.messages == []


async def test_a_slow_answer_is_a_temporary_failure_that_is_not_retried(
    sms_server, sender_ctx, make_message
):
    sms_server.faults.update({"delay": 2.0, "delay_next": 1})
    sender = sms.create("SMS", {"endpoint_url": sms_server.url}, sender_ctx)
    [result] = await sender.send([make_message("+14255550100", "SMS")])
    assert result.status is Status.TEMPORARY_FAILURE and not result.retryable
    assert "duplicate" in result.reason


async def test_missing_credentials_make_the_sender_unusable(
    sms_server, sender_ctx, make_message, monkeypatch
):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    sender = sms.create("SMS", {"endpoint_url": sms_server.url}, sender_ctx)
    with pytest.raises(SendError) as info:
        await sender.send([make_message("+14255550100", "SMS")])
    assert info.value.code == "NoCredentialsError"
    batch = [make_message(f"+1425555010{i}", "SMS") for i in range(3)]
    with pytest.raises(SendError) as info:  # itself, not an exception group
        await sender.send(batch)
    assert info.value.code == "NoCredentialsError"
    assert sms_server.calls == []


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"message_type": "URGENT"}, "message_type"),
        ({"origination_identity": 12065550199}, "origination_identity"),
        ({"max_price": "cheap"}, "max_price"),
        ({"max_price": -1}, "max_price"),
        ({"time_to_live": 1}, "time_to_live"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"sender_id": "ACME"}, "sender_id"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(offline_ctx, options, key):
    with pytest.raises(ConfigError) as info:
        sms.create("SMS", options, offline_ctx)
    assert info.value.key == f"channels.SMS.{key}"
