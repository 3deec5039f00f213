"""The EMAIL sender (SES v2) with real aiobotocore clients: moto for the success path,
the local SES server for what moto cannot do (full request capture, faults)."""

from __future__ import annotations

import datetime
import email.utils

import aiohttp
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from dispatcher.channels import _aws, ses
from dispatcher.channels.base import Sender
from dispatcher.errors import ConfigError, SendError
from dispatcher.model import Status

pytestmark = pytest.mark.anyio

SENDER = "news@example.com"


async def test_sends_through_moto_using_the_standard_endpoint_env_var(
    moto, monkeypatch, sender_ctx, aws_clients, make_message
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", moto.url)
    client = await aws_clients.client("sesv2")
    await client.create_email_identity(EmailIdentity="example.com")
    sender = ses.create("EMAIL", {}, sender_ctx)
    assert isinstance(sender, Sender)
    template = {"FromAddress": SENDER}
    messages = [
        make_message("ann@example.org", title="Hello Ann", body="text only", template=template),
        make_message("bob@example.org", title="Hi Bob", body=None, html_body="<p>Bob</p>",
                     template=template),
    ]  # fmt: skip

    results = await sender.send(messages)

    assert [r.status for r in results] == [Status.SUCCESS, Status.SUCCESS]
    sent = {m["id"]: m for m in moto.data()["ses"]["Message"]}
    assert set(sent) == {r.message_id for r in results}
    by_to = {m["destinations"]["ToAddresses"][0]: m for m in sent.values()}
    assert by_to["ann@example.org"]["subject"] == "Hello Ann"
    assert by_to["ann@example.org"]["body"] == "text only"
    assert by_to["bob@example.org"]["body"] == "<p>Bob</p>"
    assert {m["source"] for m in sent.values()} == {SENDER}


async def test_unverified_sender_is_a_permanent_failure_with_the_provider_code(
    moto, sender_ctx, make_message
):
    sender = ses.create("EMAIL", {"endpoint_url": moto.url, "from_address": SENDER}, sender_ctx)

    [result] = await sender.send([make_message("ann@example.org")])

    assert result.status is Status.PERMANENT_FAILURE
    assert result.reason.startswith("MessageRejected: Email address not verified")
    assert not result.retryable
    assert moto.data()["ses"]["Message"] == []


async def test_request_carries_every_part_and_option(ses_server, sender_ctx, make_message):
    options = {
        "endpoint_url": ses_server.url,
        "reply_to": ["help@example.com", "desk@example.com"],
        "configuration_set": "marketing",
        "feedback_forwarding_address": "bounces@example.com",
    }
    sender = ses.create("EMAIL", options, sender_ctx)
    template = {
        "FromAddress": SENDER,
        "ReplyToAddresses": ["ignored@example.com"],  # the option wins
        "Headers": [{"Name": "List-Unsubscribe", "Value": "<mailto:u@example.com>"}],
    }
    message = make_message(
        "ann@example.org", title="Sale", body="plain", html_body="<b>rich</b>", template=template
    )

    [result] = await sender.send([message])

    assert result.status is Status.SUCCESS
    [sent] = ses_server.messages
    assert sent["MessageId"] == result.message_id
    assert sent["FromEmailAddress"] == SENDER
    assert sent["Destination"] == {"ToAddresses": ["ann@example.org"]}
    assert sent["ReplyToAddresses"] == ["help@example.com", "desk@example.com"]
    assert sent["ConfigurationSetName"] == "marketing"
    assert sent["FeedbackForwardingEmailAddress"] == "bounces@example.com"
    simple = sent["Content"]["Simple"]
    assert simple["Subject"]["Data"] == "Sale"
    assert simple["Body"]["Text"]["Data"] == "plain"
    assert simple["Body"]["Html"]["Data"] == "<b>rich</b>"
    assert simple["Headers"] == [{"Name": "List-Unsubscribe", "Value": "<mailto:u@example.com>"}]


async def test_option_from_address_overrides_the_template_and_reply_to_accepts_a_string(
    ses_server, sender_ctx, make_message
):
    sender = ses.create(
        "EMAIL",
        {"endpoint_url": ses_server.url, "from_address": "ops@example.com", "reply_to": "r@x.io"},
        sender_ctx,
    )
    await sender.send([make_message("a@x.io", template={"FromAddress": SENDER})])
    [sent] = ses_server.messages
    assert sent["FromEmailAddress"] == "ops@example.com"
    assert sent["ReplyToAddresses"] == ["r@x.io"]


async def test_messages_without_a_sender_or_a_body_fail_without_a_call(
    ses_server, sender_ctx, make_message
):
    sender = ses.create("EMAIL", {"endpoint_url": ses_server.url}, sender_ctx)
    no_from, no_body = await sender.send(
        [
            make_message("a@x.io", template={}),
            make_message("b@x.io", body=None, html_body=None, template={"FromAddress": SENDER}),
        ]
    )
    assert no_from.status is Status.PERMANENT_FAILURE and no_from.reason.startswith("NoFromAddress")
    assert no_body.status is Status.PERMANENT_FAILURE and no_body.reason.startswith(
        "InvalidMessage"
    )
    assert ses_server.calls == []


async def test_a_batch_is_sent_concurrently_within_the_bound_and_results_keep_order(
    ses_server, sender_ctx, make_message
):
    ses_server.faults.update({"delay": 0.2})
    sender = ses.create(
        "EMAIL",
        {"endpoint_url": ses_server.url, "from_address": SENDER, "max_batch": 20,
         "max_concurrency": 4},
        sender_ctx,
    )  # fmt: skip
    messages = [make_message(f"user{i}@x.io") for i in range(12)]

    results = await sender.send(messages)

    assert sender.max_batch == 20
    assert 2 <= ses_server.max_in_flight <= 4
    by_id = {m["MessageId"]: m["Destination"]["ToAddresses"][0] for m in ses_server.messages}
    assert [by_id[r.message_id] for r in results] == [m.address for m in messages]


async def test_throttling_is_retryable_with_retry_after(ses_server, sender_ctx, make_message):
    ses_server.faults.update({"throttle_next": 1, "retry_after": 2})
    sender = ses.create("EMAIL", {"endpoint_url": ses_server.url, "from_address": SENDER},
                        sender_ctx)  # fmt: skip

    throttled, ok = [await sender.send([make_message("a@x.io")]) for _ in range(2)]

    assert throttled[0].status is Status.THROTTLED
    assert throttled[0].retryable and throttled[0].retry_after == 2.0
    assert throttled[0].reason.startswith("TooManyRequestsException")
    assert ok[0].status is Status.SUCCESS


@pytest.mark.parametrize(
    ("message", "status", "retryable"),
    [
        ("Maximum sending rate exceeded.", Status.THROTTLED, True),
        ("Daily message quota exceeded.", Status.PERMANENT_FAILURE, False),
    ],
)
async def test_limit_exceeded_is_throttling_only_when_it_is_about_the_rate(
    ses_server, sender_ctx, make_message, message, status, retryable
):
    ses_server.faults.update(
        {"fail_addresses": {"a@x.io": {"code": "LimitExceededException", "message": message}}}
    )
    sender = ses.create("EMAIL", {"endpoint_url": ses_server.url, "from_address": SENDER},
                        sender_ctx)  # fmt: skip
    [result] = await sender.send([make_message("a@x.io")])
    assert (result.status, result.retryable) == (status, retryable)
    assert result.reason == f"LimitExceededException: {message}"


async def test_5xx_is_a_retryable_temporary_failure(ses_server, sender_ctx, make_message):
    ses_server.faults.update({"error_next": 1, "error_status": 503})
    sender = ses.create("EMAIL", {"endpoint_url": ses_server.url, "from_address": SENDER},
                        sender_ctx)  # fmt: skip
    [result] = await sender.send([make_message("a@x.io")])
    assert result.status is Status.TEMPORARY_FAILURE and result.retryable
    assert "HTTP 503" in result.reason
    assert ses_server.messages == []


async def test_a_read_timeout_after_sending_is_not_retried(ses_server, sender_ctx, make_message):
    ses_server.faults.update({"delay": 2.0, "delay_next": 1})
    sender = ses.create("EMAIL", {"endpoint_url": ses_server.url, "from_address": SENDER},
                        sender_ctx)  # fmt: skip
    [result] = await sender.send([make_message("a@x.io")])
    assert result.status is Status.TEMPORARY_FAILURE
    assert not result.retryable
    assert "duplicate" in result.reason
    assert len(ses_server.messages) == 1  # the provider did take it: a retry would duplicate


async def test_refused_and_dropped_connections_are_retryable(
    ses_server, sender_ctx, make_message, free_tcp_port
):
    refused = ses.create(
        "EMAIL", {"endpoint_url": f"http://127.0.0.1:{free_tcp_port}", "from_address": SENDER},
        sender_ctx,
    )  # fmt: skip
    [result] = await refused.send([make_message("a@x.io")])
    assert result.status is Status.TEMPORARY_FAILURE and result.retryable
    assert result.reason.startswith("EndpointConnectionError")

    ses_server.faults.update({"drop_next": 1})
    dropped = ses.create("EMAIL", {"endpoint_url": ses_server.url, "from_address": SENDER},
                         sender_ctx)  # fmt: skip
    [result] = await dropped.send([make_message("a@x.io")])
    assert result.status is Status.TEMPORARY_FAILURE and result.retryable
    assert result.reason.startswith("ConnectionClosed")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"from": "a@x.io"}, "from"),
        ({"reply_to": 5}, "reply_to"),
        ({"reply_to": []}, "reply_to"),
        ({"from_address": ""}, "from_address"),
        ({"endpoint_url": "localhost:4566"}, "endpoint_url"),
        ({"max_batch": 0}, "max_batch"),
        ({"max_batch": 101}, "max_batch"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_per_second": 0.5}, "max_per_second"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(offline_ctx, options, key):
    with pytest.raises(ConfigError) as info:
        ses.create("EMAIL", options, offline_ctx)
    assert info.value.key == f"channels.EMAIL.{key}"
    assert info.value.file == "campaign.toml"


def test_good_options_are_exposed(offline_ctx):
    sender = ses.create("EMAIL", {"max_per_second": 14, "max_batch": 5}, offline_ctx)
    assert (sender.max_per_second, sender.max_batch) == (14.0, 5)
    assert ses.create("EMAIL", {}, offline_ctx).max_per_second is None


def test_retry_after_accepts_seconds_and_http_dates():
    from dispatcher.aws import retry_after

    future = email.utils.format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=120), usegmt=True
    )
    assert retry_after({"retry-after": "3"}) == 3.0
    assert 100 < retry_after({"retry-after": future}) <= 120
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_truncated_answers_and_unknown_transport_errors_are_not_retried():
    truncated = ConnectionClosedError(
        endpoint_url="http://x", error=aiohttp.ClientPayloadError("cut"), request=None
    )
    result = _aws.failure_result(truncated)
    assert result.status is Status.TEMPORARY_FAILURE and not result.retryable
    result = _aws.failure_result(ConnectionResetError("reset"))
    assert result.status is Status.TEMPORARY_FAILURE and not result.retryable
    with pytest.raises(SendError):
        _aws.failure_result(_client_error("UnrecognizedClientException", 403))


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendEmail",
    )
