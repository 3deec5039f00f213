"""A campaign over a mixed segment through SES (moto), SMS and push (wire servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from dispatcher import dispatch
from dispatcher.config import parse_settings
from tests.conftest import endpoint, read_jsonl, write_jsonl

pytestmark = pytest.mark.anyio


def settings_for(tmp_path: Path, moto_url: str, sms_url: str, push_url: str, **extra: Any):
    data: dict[str, Any] = {
        "project": {"ApplicationId": "app-e2e", "Region": "us-east-1", "AccountId": "111122223333"},
        "campaign": {
            "Id": "mixed",
            "Hook": {"LambdaFunctionName": "score"},
            "MessageConfiguration": {
                "EmailMessage": {
                    "Title": "Hi {{User.UserAttributes.FirstName}}",
                    "Body": "Score {{Attributes.Score}}",
                    "HtmlBody": "<b>{{Attributes.Score}}</b>",
                    "FromAddress": "offers@example.com",
                },
                "SMSMessage": {
                    "Body": "Score {{Attributes.Score}}",
                    "MessageType": "PROMOTIONAL",
                    "OriginationNumber": "+12065550000",
                },
                "GCMMessage": {
                    "Title": "T{{Attributes.Score}}",
                    "Body": "B {{Id}}",
                    "Action": "OPEN_APP",
                },
            },
        },
        "channels": {
            "EMAIL": {"sender": "ses", "endpoint_url": moto_url},
            "SMS": {"sender": "sms", "endpoint_url": sms_url},
            "GCM": {"sender": "push", "endpoint_url": push_url},
        },
        **extra,
    }
    return parse_settings(data, str(tmp_path / "e2e.toml"), tmp_path)


def score(event: dict[str, Any], context: Any) -> dict[str, Any]:
    for eid, ep in event["Endpoints"].items():
        ep.setdefault("Attributes", {})["Score"] = [700 + int(eid.split("-")[1])]
    return event["Endpoints"]


async def test_email_sms_and_push_each_through_their_provider(
    tmp_path, moto, sms_server, push_server
) -> None:
    session = get_session()
    async with session.create_client(
        "sesv2", region_name="us-east-1", endpoint_url=moto.url
    ) as ses:
        await ses.create_email_identity(EmailIdentity="example.com")
    channels = ["EMAIL", "SMS", "GCM"]
    records: list[Any] = [endpoint(i, channels[i % 3]) for i in range(1, 91)]
    records += ["not json", endpoint(1, "SMS"), {**endpoint(200, "APNS")}]
    segment = write_jsonl(tmp_path / "seg.jsonl", records)
    bad_sms = endpoint(4, "SMS")["Address"]
    sms_server.faults.update({
        "throttle_next": 2,
        "fail_addresses": {bad_sms: {"code": "ConflictException",
                                     "reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT"}},
    })  # fmt: skip
    settings = settings_for(tmp_path, moto.url, sms_server.url, push_server.url)
    out = tmp_path / "out"
    summary = await dispatch(
        settings, segment=str(segment), out_dir=out, handlers={"score": score}, progress=False
    )

    outcomes = read_jsonl(out / "outcomes.jsonl")
    assert sorted(o["Line"] for o in outcomes) == list(range(1, len(records) + 1))
    assert summary.total == len(records)
    by_id = {o["EndpointId"]: o for o in outcomes if o["EndpointId"]}
    assert by_id["ep-4"]["Status"] == "PERMANENT_FAILURE"
    assert by_id["ep-4"]["Reason"].startswith("ConflictException")
    assert summary.by_status == {
        "SUCCESS": 89,
        "PERMANENT_FAILURE": 1,
        "INVALID": 1,
        "DUPLICATE_ADDRESS": 1,
        "UNSUPPORTED_CHANNEL": 1,
    }

    emails = moto.data()["ses"]["Message"]
    assert len(emails) == 30
    first = next(m for m in emails if m["destinations"]["ToAddresses"] == ["user3@example.com"])
    assert first["subject"] == "Hi Name3"
    sms = sms_server.messages
    assert len(sms) == 29  # one opted out; throttled calls were retried, not lost
    assert len({m["DestinationPhoneNumber"] for m in sms}) == 29
    first_sms = [m for m in sms if m["DestinationPhoneNumber"] == endpoint(1)["Address"]]
    assert [m["MessageBody"] for m in first_sms] == ["Score 701"]
    assert first_sms[0]["OriginationIdentity"] == "+12065550000"
    pushed = {m["Address"]: m for m in push_server.messages}
    assert len(pushed) == len(push_server.messages) == 30
    gcm = pushed[endpoint(2, "GCM")["Address"]]
    assert (gcm["TitleOverride"], gcm["BodyOverride"]) == ("T702", "B ep-2")
    assert gcm["Message"]["Action"] == "OPEN_APP"
    assert not (out / "outbox.jsonl").exists() or not (out / "outbox.jsonl").read_text()


async def test_custom_channel_delivers_batches_to_its_function(tmp_path) -> None:
    (tmp_path / "deliver.py").write_text(
        "import json, pathlib\n"
        "def handler(event, context):\n"
        f"    p = pathlib.Path({str(tmp_path / 'calls.jsonl')!r})\n"
        "    with p.open('a') as f: f.write(json.dumps(event) + '\\n')\n"
        "    return {'ok': True}\n"
    )
    data = {
        "project": {"ApplicationId": "app", "Region": "us-east-1"},
        "campaign": {
            "Id": "custom",
            "CustomDeliveryConfiguration": {
                "DeliveryUri": "deliver",
                "EndpointTypes": ["CUSTOM", "SMS"],
            },
            "MessageConfiguration": {
                "CustomMessage": {"Data": '{"offer": 42}'},
                "EmailMessage": {"Title": "t", "Body": "b", "FromAddress": "a@example.com"},
            },
        },
        "functions": {"deliver": {"python": "deliver.py:handler"}},
    }
    settings = parse_settings(data, str(tmp_path / "c.toml"), tmp_path)
    records = [endpoint(i, "SMS") for i in range(1, 61)] + [endpoint(70, "EMAIL")]
    segment = write_jsonl(tmp_path / "seg.jsonl", records)
    summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o", progress=False)
    assert summary.by_status == {"SUCCESS": 61}
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert sorted(len(c["Endpoints"]) for c in calls) == [10, 50]
    assert all(c["Data"] == '{"offer": 42}' and c["CampaignId"] == "custom" for c in calls)
    assert set(calls[0]) == {
        "Message",
        "Data",
        "ApplicationId",
        "CampaignId",
        "TreatmentId",
        "ActivityId",
        "ScheduledTime",
        "Endpoints",
    }
    outbox = read_jsonl(tmp_path / "o" / "outbox.jsonl")
    assert [m["EndpointId"] for m in outbox] == ["ep-70"]  # EMAIL is not a custom type
