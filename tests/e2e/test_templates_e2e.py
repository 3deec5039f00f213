"""Pinpoint message templates through real runs (issue 11): every template type to the
outbox, email to SES on moto, push block merging, defaults, strict mode, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from dispatcher import dispatch
from dispatcher.config import load_settings
from tests.conftest import endpoint, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def template(kind: str, name: str, version: str | None = "1", *, wrapped: bool = True,
             **content: Any) -> dict[str, Any]:  # fmt: skip
    wrapper = {"EMAIL": "EmailTemplateResponse", "SMS": "SMSTemplateResponse",
               "PUSH": "PushNotificationTemplateResponse", "VOICE": "VoiceTemplateResponse"}
    body = {"TemplateName": name, "TemplateType": kind, "CreationDate": "2026-01-01T00:00:00Z",
            "LastModifiedDate": "2026-01-01T00:00:00Z",
            "Arn": f"arn:aws:mobiletargeting:us-east-1:111122223333:templates/{name}/{kind}",
            **({"Version": version} if version else {}), **content}  # fmt: skip
    return {wrapper[kind]: body} if wrapped else body


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "tpl"
[campaign.MessageConfiguration.EmailMessage]
FromAddress = "offers@example.com"
[campaign.TemplateConfiguration]
EXTRA
[templates]
dir = "templates"
[segment]
source = "seg.jsonl"
"""


def campaign(tmp_path: Path, references: str, **templates: Any) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for file_name, data in templates.items():
        write(folder / file_name.replace("__", "."), data)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.replace("EXTRA", references))
    return cfg


def people(tmp_path: Path) -> Path:
    records = [endpoint(1, "EMAIL"), endpoint(2, "SMS"), endpoint(3, "GCM"),
               endpoint(4, "APNS"), endpoint(5, "VOICE"),
               {**endpoint(6, "SMS"), "User": {"UserAttributes": {}}}]  # fmt: skip
    return write_jsonl(tmp_path / "seg.jsonl", records)


REFERENCES = """EmailTemplate = { Name = "welcome", Version = "2" }
SMSTemplate = { Name = "welcome" }
PushTemplate = { Name = "welcome" }
VoiceTemplate = { Name = "welcome" }"""

TEMPLATES = {
    "welcome__email__v2__json": template(
        "EMAIL", "welcome", "2", Subject="Hi {{User.UserAttributes.FirstName.[0]}}",
        HtmlPart="<p>{{#if Attributes.Tier}}{{upper Attributes.Tier.[0]}}{{else}}-{{/if}} "
                 "&amp; {{User.UserAttributes.[FirstName].[0]}}</p>",
        TextPart="Tier {{Attributes.Tier}}",
        Headers=[{"Name": "X-Campaign", "Value": "welcome-{{Id}}"}],
    ),
    "welcome__email__json": template("EMAIL", "welcome", "3", Subject="active v3"),
    "welcome__sms__json": template(
        "SMS", "welcome", Body="Hi {{User.UserAttributes.FirstName.[0]}}",
        DefaultSubstitutions=json.dumps({"User.UserAttributes.FirstName": "friend"}),
    ),
    "welcome__push__json": template(
        "PUSH", "welcome",
        Default={"Title": "Default title", "Body": "Default body {{Id}}", "Action": "OPEN_APP"},
        GCM={"Title": "GCM title {{Id}}", "Action": "URL", "Url": "https://example.com"},
    ),
    "welcome__voice__json": template(
        "VOICE", "welcome", wrapped=False, Body="Hello {{User.UserAttributes.FirstName.[0]}}",
        LanguageCode="en-US", VoiceId="Joanna",
    ),
}  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", "run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_every_template_type_through_a_run_to_the_outbox(tmp_path: Path) -> None:
    people(tmp_path)
    cfg = campaign(tmp_path, REFERENCES, **TEMPLATES)
    result = run(str(cfg), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    sent = {m["EndpointId"]: m for m in read_jsonl(tmp_path / "o" / "outbox.jsonl")}
    assert sent["ep-1"]["Title"] == "Hi Name1"  # version 2, not the active version 3
    assert sent["ep-1"]["HtmlBody"] == "<p>GOLD &amp; Name1</p>"
    assert sent["ep-1"]["Body"] == "Tier gold"
    assert sent["ep-2"]["Body"] == "Hi Name2"
    assert sent["ep-6"]["Body"] == "Hi friend"  # DefaultSubstitutions, flat dotted key
    # Push: the GCM block over Default field by field; APNS has no block: Default.
    assert (sent["ep-3"]["Title"], sent["ep-3"]["Body"]) == ("GCM title ep-3", "Default body ep-3")
    assert (sent["ep-4"]["Title"], sent["ep-4"]["Body"]) == ("Default title", "Default body ep-4")
    assert sent["ep-5"]["Body"] == "Hello Name5"  # a voice template, bare JSON form


@pytest.mark.anyio
async def test_email_template_reaches_ses_as_ses_stores_it(tmp_path: Path, moto: Any) -> None:
    async with get_session().create_client("sesv2", region_name="us-east-1",
                                           endpoint_url=moto.url) as ses:  # fmt: skip
        await ses.create_email_identity(EmailIdentity="example.com")
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(i, "EMAIL") for i in range(1, 4)])
    cfg = campaign(tmp_path, 'EmailTemplate = { Name = "welcome", Version = "2" }', **TEMPLATES)
    cfg.write_text(cfg.read_text() + f'[channels.EMAIL]\nsender = "ses"\nendpoint_url = '
                   f'"{moto.url}"\n')  # fmt: skip
    summary = await dispatch(load_settings(cfg), out_dir=tmp_path / "o", progress=False)
    assert summary.by_status == {"SUCCESS": 3}
    stored = {m["destinations"]["ToAddresses"][0]: m for m in moto.data()["ses"]["Message"]}
    first = stored["user1@example.com"]
    assert first["subject"] == "Hi Name1"
    assert first["source"] == "offers@example.com"
    assert first["body"] == "<p>GOLD &amp; Name1</p>"  # moto keeps the HTML part when there is one


def test_default_substitutions_in_the_nested_shape(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "seg.jsonl", [{**endpoint(1), "Attributes": {}}])
    sms = template("SMS", "nested", Body="Deal: {{Attributes.Purchase}}",
                   DefaultSubstitutions=json.dumps({"Attributes": {"Purchase": "Test"}}))
    cfg = campaign(tmp_path, 'SMSTemplate = { Name = "nested" }', nested__sms__json=sms)
    assert run(str(cfg), "--out", str(tmp_path / "o")).returncode == 0
    assert read_jsonl(tmp_path / "o" / "outbox.jsonl")[0]["Body"] == "Deal: Test"


def test_strict_variables_fail_only_the_endpoints_missing_one(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "seg.jsonl",
                [endpoint(1), {**endpoint(2), "Attributes": {}}, endpoint(3)])  # fmt: skip
    sms = template("SMS", "strict", Body="Tier {{Attributes.Tier}}")
    cfg = campaign(tmp_path, 'SMSTemplate = { Name = "strict" }', strict__sms__json=sms)
    lenient = run(str(cfg), "--out", str(tmp_path / "a"))
    assert lenient.returncode == 0
    strict = run(str(cfg), "--out", str(tmp_path / "b"), "--strict-variables")
    assert strict.returncode == 3
    outcomes = {o["EndpointId"]: o for o in read_jsonl(tmp_path / "b" / "outcomes.jsonl")}
    assert outcomes["ep-2"]["Status"] == "PERMANENT_FAILURE"
    assert "Attributes.Tier" in outcomes["ep-2"]["Reason"]
    assert {outcomes["ep-1"]["Status"], outcomes["ep-3"]["Status"]} == {"SUCCESS"}
    cfg.write_text(cfg.read_text().replace('Id = "tpl"', 'Id = "tpl"\nstrict_variables = true'))
    assert run(str(cfg), "--out", str(tmp_path / "c")).returncode == 3


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", ["welcome.sms.json", "invalid JSON"]),
        (json.dumps({"Body": "hi"}), ["welcome.sms.json", "not a Pinpoint template"]),
        (json.dumps(template("SMS", "welcome", Body="Hi {{#if x}}open")),
         ["welcome.sms.json", "Body", "line 1, column"]),
        (json.dumps(template("SMS", "welcome", Body="Hi {{shout Id}}")),
         ["welcome.sms.json", "Body", "shout"]),
        (json.dumps(template("SMS", "welcome", Body="{{abbreviate Id}}")),
         ["welcome.sms.json", "Body", "abbreviate"]),
        (json.dumps(template("SMS", "welcome", Body="hi", DefaultSubstitutions="{oops")),
         ["welcome.sms.json", "DefaultSubstitutions", "not JSON"]),
    ],
)
def test_bad_templates_exit_2_before_anything_is_sent(
    tmp_path: Path, content: str, words: list[str]
) -> None:
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(1)])
    cfg = campaign(tmp_path, 'SMSTemplate = { Name = "welcome" }')
    (tmp_path / "templates" / "welcome.sms.json").write_text(content)
    result = run(str(cfg), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert all(w in line for w in words), line
    assert not (tmp_path / "o" / "outbox.jsonl").exists()


def test_a_missing_template_names_the_key_and_the_file_looked_for(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(1)])
    cfg = campaign(tmp_path, 'SMSTemplate = { Name = "gone", Version = "7" }')
    result = run(str(cfg), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "campaign.TemplateConfiguration.SMSTemplate" in line
    assert str(tmp_path / "templates" / "gone.sms.v7.json") in line


def test_get_campaign_json_with_templates_and_template_json_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(1), endpoint(2, "EMAIL")])
    response = {"CampaignResponse": {
        "Id": "from-json", "ApplicationId": "app", "Name": "x",
        "MessageConfiguration": {"EmailMessage": {"FromAddress": "a@example.com",
                                                  "Body": "inline body"}},
        "TemplateConfiguration": {"EmailTemplate": {"Name": "mail", "Version": "latest"},
                                  "SMSTemplate": {"Name": "text"}},
        "State": {"CampaignStatus": "COMPLETED"}, "Version": 1}}  # fmt: skip
    write(tmp_path / "campaign.json", response)
    v1 = write(tmp_path / "m1.json", template("EMAIL", "mail", "1", Subject="old", TextPart="v1"))
    v4 = write(tmp_path / "m4.json", template("EMAIL", "mail", "4", Subject="new", TextPart="v4"))
    text = write(tmp_path / "t.json", template("SMS", "text", "2", Body="sms {{Id}}"))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[project]\nRegion = "us-east-1"\n[segment]\nsource = "seg.jsonl"\n')
    result = run(str(cfg), "--campaign-json", str(tmp_path / "campaign.json"), "--out",
                 str(tmp_path / "o"), *[a for f in (v1, v4, text)
                                        for a in ("--template-json", str(f))])  # fmt: skip
    assert result.returncode == 0, result.stderr
    sent = {m["EndpointId"]: m for m in read_jsonl(tmp_path / "o" / "outbox.jsonl")}
    assert (sent["ep-2"]["Title"], sent["ep-2"]["Body"]) == ("new", "v4")  # latest version
    assert sent["ep-1"]["Body"] == "sms ep-1"
    # Inline content and a template for the same part: the template wins, said once.
    notes = [line for line in result.stderr.splitlines() if "inline and by the template" in line]
    assert len(notes) == 1 and "EmailMessage.Body" in notes[0]


def test_errors_in_campaign_json_name_the_json_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(1)])
    write(tmp_path / "campaign.json", {"CampaignResponse": {
        "Id": "c", "TemplateConfiguration": {"SMSTemplate": {"Name": "nowhere"}}}})  # fmt: skip
    cfg = tmp_path / "c.toml"
    cfg.write_text('[project]\nApplicationId = "a"\nRegion = "us-east-1"\n'
                   '[segment]\nsource = "seg.jsonl"\n')  # fmt: skip
    result = run(str(cfg), "--campaign-json", str(tmp_path / "campaign.json"), "--out",
                 str(tmp_path / "o"))  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"dispatcher: {tmp_path / 'campaign.json'}: ")
    assert "campaign.TemplateConfiguration.SMSTemplate" in line
