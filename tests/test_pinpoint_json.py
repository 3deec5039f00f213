"""``--campaign-json`` / ``--settings-json``: Pinpoint's get-campaign and
get-application-settings output turned into ``[campaign]`` / ``[project]`` tables."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.campaign import QuietTime, Treatments
from dispatcher.config import CampaignHook, Limits, load_settings, parse_settings
from dispatcher.config.pinpoint import campaign_table, merge_tables, settings_table
from dispatcher.errors import ConfigError

APP = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
CAMPAIGN_ID = "4f8d6097c2e8400fa3081d875example"

# `aws pinpoint get-campaign --application-id ... --campaign-id ...` for an A/B campaign
# with two additional treatments, a 10% holdout, a FILTER hook, limits and quiet time.
GET_CAMPAIGN: dict[str, Any] = {
    "CampaignResponse": {
        "AdditionalTreatments": [
            {
                "Id": "1",
                "MessageConfiguration": {
                    "SMSMessage": {
                        "Body": "B: {{User.UserAttributes.FirstName}}, 20% off this week",
                        "MessageType": "PROMOTIONAL",
                        "OriginationNumber": "+12065550100",
                    }
                },
                "SizePercent": 30,
                "State": {"CampaignStatus": "COMPLETED"},
                "TreatmentDescription": "discount copy",
                "TreatmentName": "Discount",
            },
            {
                "Id": "2",
                "Schedule": {"StartTime": "2026-05-02T15:00:00.000Z", "Frequency": "ONCE",
                             "IsLocalTime": False, "Timezone": "UTC"},
                "SizePercent": 20,
                "State": {"CampaignStatus": "COMPLETED"},
                "TemplateConfiguration": {},
                "TreatmentName": "Same copy, second look",
            },
        ],
        "ApplicationId": APP,
        "Arn": f"arn:aws:mobiletargeting:us-east-1:123456789012:apps/{APP}/campaigns/{CAMPAIGN_ID}",
        "CreationDate": "2026-05-01T10:00:00.000Z",
        "DefaultState": {"CampaignStatus": "COMPLETED"},
        "Description": "",
        "HoldoutPercent": 10,
        "Hook": {
            "LambdaFunctionName": "arn:aws:lambda:us-east-1:123456789012:function:segment-filter",
            "Mode": "FILTER",
        },
        "Id": CAMPAIGN_ID,
        "IsPaused": False,
        "LastModifiedDate": "2026-05-01T10:05:00.000Z",
        "Limits": {"Daily": 3, "MaximumDuration": 3600, "MessagesPerSecond": 100, "Total": 5,
                   "Session": 0},
        "MessageConfiguration": {
            "SMSMessage": {
                "Body": "A: hello {{User.UserAttributes.FirstName}}",
                "MessageType": "PROMOTIONAL",
                "OriginationNumber": "+12065550100",
            }
        },
        "Name": "Spring promo A/B",
        "Schedule": {
            "EndTime": "2026-05-03T15:00:00.000Z",
            "Frequency": "ONCE",
            "IsLocalTime": False,
            "QuietTime": {"End": "07:00", "Start": "22:00"},
            "StartTime": "2026-05-02T15:00:00.000Z",
            "Timezone": "UTC",
        },
        "SegmentId": "8f7e6d5c4b3a29181716151413121110",
        "SegmentVersion": 1,
        "State": {"CampaignStatus": "COMPLETED"},
        "TemplateConfiguration": {},
        "TreatmentDescription": "original copy",
        "TreatmentName": "Original",
        "Version": 3,
        "tags": {},
    }
}  # fmt: skip

GET_SETTINGS: dict[str, Any] = {
    "ApplicationSettingsResource": {
        "ApplicationId": APP,
        "CampaignHook": {"LambdaFunctionName": "default-filter", "Mode": "FILTER"},
        "JourneyLimits": {"DailyCap": 0, "TimeframeCap": {"Cap": 0, "Days": 0}, "TotalCap": 0},
        "LastModifiedDate": "2026-04-01T00:00:00.000Z",
        "Limits": {"Daily": 10, "MaximumDuration": 60, "MessagesPerSecond": 50, "Total": 0},
        "QuietTime": {"End": "08:00", "Start": "21:00"},
    }
}

TOML = """\
[project]
Region = "us-east-1"
AccountId = "123456789012"

[segment]
source = "segment.jsonl"
"""


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=4))
    return path


def test_get_campaign_output_becomes_a_campaign_table(tmp_path: Path) -> None:
    table = campaign_table(write(tmp_path, "campaign.json", GET_CAMPAIGN))
    for read_only in (
        "Arn",
        "CreationDate",
        "LastModifiedDate",
        "State",
        "DefaultState",
        "Version",
    ):
        assert read_only not in table
    assert "TemplateConfiguration" not in table and "tags" not in table  # empty objects
    assert table["Limits"] == {"Daily": 3, "MaximumDuration": 3600, "MessagesPerSecond": 100,
                               "Total": 5}  # Session 0 = unset  # fmt: skip
    assert table["Hook"] == GET_CAMPAIGN["CampaignResponse"]["Hook"]
    assert table["Schedule"]["QuietTime"] == {"Start": "22:00", "End": "07:00"}
    assert [t.get("State") for t in table["AdditionalTreatments"]] == [None, None]
    assert table["AdditionalTreatments"][1] == {
        "Id": "2", "SizePercent": 20, "TreatmentName": "Same copy, second look",
        "Schedule": GET_CAMPAIGN["CampaignResponse"]["AdditionalTreatments"][1]["Schedule"],
    }  # fmt: skip
    bare = campaign_table(write(tmp_path, "bare.json", GET_CAMPAIGN["CampaignResponse"]))
    assert bare == table


def test_get_application_settings_output_becomes_a_project_table(tmp_path: Path) -> None:
    table = settings_table(write(tmp_path, "settings.json", GET_SETTINGS))
    assert table == {
        "ApplicationId": APP,
        "CampaignHook": {"LambdaFunctionName": "default-filter", "Mode": "FILTER"},
        "Limits": {"Daily": 10, "MaximumDuration": 60, "MessagesPerSecond": 50},
        "QuietTime": {"End": "08:00", "Start": "21:00"},
    }
    bare = settings_table(write(tmp_path, "bare.json", GET_SETTINGS["ApplicationSettingsResource"]))
    assert bare == table
    empty = settings_table(write(tmp_path, "empty.json", {"ApplicationSettingsResource": {
        "ApplicationId": APP, "CampaignHook": {}, "QuietTime": {}, "Limits": {},
        "LastModifiedDate": None}}))  # fmt: skip
    assert empty == {"ApplicationId": APP}


def test_a_full_run_config_from_toml_plus_both_json_files(tmp_path: Path) -> None:
    settings = load_settings(  # the integrated path: TOML plus both JSON files
        write(tmp_path, "run.toml", TOML),
        campaign_json=write(tmp_path, "campaign.json", GET_CAMPAIGN),
        settings_json=write(tmp_path, "settings.json", GET_SETTINGS),
    )
    assert settings.file == str(tmp_path / "run.toml")
    assert settings.project.application_id == APP
    assert settings.project.region == "us-east-1"
    assert settings.campaign.id == CAMPAIGN_ID and settings.campaign.name == "Spring promo A/B"
    assert settings.hook == CampaignHook(
        "arn:aws:lambda:us-east-1:123456789012:function:segment-filter", None, "FILTER"
    )
    assert settings.project.campaign_hook == CampaignHook("default-filter", None, "FILTER")
    assert settings.limits == Limits(
        daily=3, total=5, session=None, messages_per_second=100, maximum_duration=3600
    )
    assert repr(QuietTime.from_settings(settings)) == "QuietTime(22:00-07:00)"
    t = Treatments.from_settings(settings)
    assert t.holdout_percent == 10
    assert {tid: tr.size_percent for tid, tr in t.treatments.items()} == {"0": 40, "1": 30, "2": 20}
    assert t.treatments["0"].name == "Original" and t.treatments["1"].name == "Discount"
    assert t.message_for("1", "SMS")["Body"].startswith("B: ")  # type: ignore[index]
    assert t.message_for("2", "SMS")["Body"].startswith("A: ")  # type: ignore[index]  # inherited
    assert settings.campaign.channels == frozenset({"SMS"})


def test_merge_tables_application_id_from_toml_then_settings_then_campaign(tmp_path: Path) -> None:
    campaign = campaign_table(write(tmp_path, "campaign.json", GET_CAMPAIGN))
    settings = settings_table(write(tmp_path, "settings.json", {
        "ApplicationSettingsResource": {"ApplicationId": "from-settings"}}))  # fmt: skip
    base = {"project": {"Region": "us-east-1"}}
    assert merge_tables(base, campaign=campaign)["project"]["ApplicationId"] == APP
    both = merge_tables(base, campaign=campaign, settings=settings)
    assert both["project"]["ApplicationId"] == "from-settings"
    toml = {"project": {"Region": "us-east-1", "ApplicationId": "from-toml"}}
    assert (
        merge_tables(toml, campaign=campaign, settings=settings)["project"]["ApplicationId"]
        == "from-toml"
    )
    assert base == {"project": {"Region": "us-east-1"}}  # the input is not modified


def test_merge_tables_lets_toml_campaign_keys_override_the_json(tmp_path: Path) -> None:
    campaign = campaign_table(write(tmp_path, "campaign.json", GET_CAMPAIGN))
    doc = {
        "project": {"Region": "us-east-1"},
        "campaign": {"Hook": {"LambdaFunctionName": "local-filter"}, "Limits": {"Daily": 1}},
    }
    settings = parse_settings(merge_tables(doc, campaign=campaign), "run.toml", tmp_path)
    assert settings.hook == CampaignHook("local-filter", None, "FILTER")
    assert settings.campaign.limits == Limits(daily=1)
    assert settings.campaign.holdout_percent == 10  # the rest from the JSON


def test_custom_delivery_campaign_keeps_its_configuration(tmp_path: Path) -> None:
    data = copy.deepcopy(GET_CAMPAIGN)
    response = data["CampaignResponse"]
    del response["AdditionalTreatments"], response["HoldoutPercent"]
    response["MessageConfiguration"] = {"CustomMessage": {"Data": '{"offer": 42}'}}
    response["CustomDeliveryConfiguration"] = {
        "DeliveryUri": "https://hooks.example.com/pinpoint",
        "EndpointTypes": ["EMAIL", "SMS"],
    }
    table = campaign_table(write(tmp_path, "custom.json", data))
    assert table["CustomDeliveryConfiguration"] == response["CustomDeliveryConfiguration"]
    assert table["MessageConfiguration"] == {"CustomMessage": {"Data": '{"offer": 42}'}}


def mutated(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GET_CAMPAIGN)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        (
            mutated(["CampaignResponse", "Limits", "Daily"], 500),
            "CampaignResponse.Limits.Daily",
            "between 0 and 100",
        ),
        (
            mutated(["CampaignResponse", "AdditionalTreatments", 1, "SizePercent"], 70),
            "CampaignResponse.AdditionalTreatments[1].SizePercent",
            "over 100",
        ),
        (
            mutated(["CampaignResponse", "Schedule", "QuietTime", "Start"], "10pm"),
            "CampaignResponse.Schedule.QuietTime.Start",
            "HH:MM",
        ),
        (
            mutated(["CampaignResponse", "Hook", "Mode"], "DELIVER"),
            "CampaignResponse.Hook.Mode",
            "FILTER or DELIVERY",
        ),
        (
            mutated(["CampaignResponse", "Journey"], {"x": 1}),
            "CampaignResponse.Journey",
            "unknown campaign field",
        ),
        (
            mutated(["CampaignResponse", "MessageConfiguration", "SmsMessage"], {"Body": "x"}),
            "CampaignResponse.MessageConfiguration.SmsMessage",
            "unknown key",
        ),
        ({"CampaignsResponse": {"Item": []}}, None, 'expected {"CampaignResponse"'),
        ({"CampaignResponse": []}, "CampaignResponse", "expected an object"),
    ],
)
def test_campaign_errors_name_the_json_file_and_key(
    tmp_path: Path, data: Any, key: str | None, words: str
) -> None:
    path = write(tmp_path, "campaign.json", data)
    with pytest.raises(ConfigError) as info:
        campaign_table(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert words in info.value.message


@pytest.mark.parametrize(
    ("content", "key", "words"),
    [
        ('{"ApplicationSettingsResource": ', None, "invalid JSON"),
        (
            {"ApplicationSettingsResource": {"Limits": {"MessagesPerSecond": 30000}}},
            "ApplicationSettingsResource.Limits.MessagesPerSecond",
            "between 1 and 20000",
        ),
        (
            {"ApplicationSettingsResource": {"QuietTime": {"Start": "21:00", "End": "25:00"}}},
            "ApplicationSettingsResource.QuietTime.End",
            "HH:MM",
        ),
        (
            {"ApplicationSettingsResource": {"Quiet": {}}},
            "ApplicationSettingsResource.Quiet",
            "unknown application settings field",
        ),
        ({"Limits": {"Daily": "3"}}, "Limits.Daily", "expected an integer"),
    ],
)
def test_settings_errors_name_the_json_file_and_key(
    tmp_path: Path, content: Any, key: str | None, words: str
) -> None:
    path = write(tmp_path, "settings.json", content)
    with pytest.raises(ConfigError) as info:
        settings_table(path)
    assert (info.value.file, info.value.key) == (str(path), key)
    assert words in info.value.message


def test_a_missing_json_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as info:
        campaign_table(tmp_path / "nope.json")
    assert info.value.file == str(tmp_path / "nope.json")
