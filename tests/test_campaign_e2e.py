"""Campaign semantics through whole runs: A/B and holdout, quiet time, caps, expiry,
the event stream and pasted get-campaign output."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher import dispatch
from tests.conftest import endpoint, make_settings, read_jsonl, with_hook, write_jsonl

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent

AB = {
    "HoldoutPercent": 10,
    "TreatmentName": "A",
    "AdditionalTreatments": [
        {"SizePercent": 30, "TreatmentName": "B",
         "MessageConfiguration": {"SMSMessage": {"Body": "B {{Id}}"},
                                  "EmailMessage": {"Title": "B", "Body": "B",
                                                   "FromAddress": "b@example.com"},
                                  "GCMMessage": {"Title": "B", "Body": "B"}}},
    ],
}  # fmt: skip


async def test_ab_treatments_and_holdout_are_stable_and_reach_hooks(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 2001)))
    seen: dict[str, str] = {}

    def hook(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for eid in event["Endpoints"]:
            seen[eid] = event["TreatmentId"]
        if event["TreatmentId"] == "1":
            assert event["MessageConfiguration"]["SMSMessage"]["Body"] == "B {{Id}}"
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign={**with_hook("h"), **AB})
    first = await dispatch(
        settings, segment=str(segment), out_dir=tmp_path / "a", handlers={"h": hook}, progress=False
    )
    second = await dispatch(
        settings, segment=str(segment), out_dir=tmp_path / "b", handlers={"h": hook}, progress=False
    )
    a = {
        o["EndpointId"]: (o["Status"], o["TreatmentId"])
        for o in read_jsonl(tmp_path / "a" / "outcomes.jsonl")
    }
    b = {
        o["EndpointId"]: (o["Status"], o["TreatmentId"])
        for o in read_jsonl(tmp_path / "b" / "outcomes.jsonl")
    }
    assert a == b  # a rerun assigns the same way
    statuses = Counter(status for status, _ in a.values())
    treatments = Counter(t for status, t in a.values() if status == "SUCCESS")
    assert first.by_status == second.by_status == dict(statuses)
    assert 150 <= statuses["HOLDOUT"] <= 250  # 10 % of 2000
    assert 500 <= treatments["1"] <= 700 and 1100 <= treatments["0"] <= 1300
    assert all(seen[eid] == t for eid, (status, t) in a.items() if status == "SUCCESS")
    assert not any(eid in seen for eid, (status, _) in a.items() if status == "HOLDOUT")
    sent = read_jsonl(tmp_path / "a" / "outbox.jsonl")
    assert all(m["Body"] == f"B {m['EndpointId']}" for m in sent if m.get("TreatmentId") == "1")


async def test_quiet_time_holds_endpoints_in_their_local_window(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=30)).strftime("%H:%M")
    end = (now + timedelta(minutes=30)).strftime("%H:%M")
    records = [
        endpoint(1, Demographic={"Timezone": "UTC"}),  # local now is inside
        endpoint(2, Demographic={"Timezone": "Asia/Kolkata"}),  # +5:30: outside
        endpoint(3, Demographic={"Timezone": "Not/AZone"}),  # invalid: never held
        endpoint(4),  # none: never held
    ]
    segment = write_jsonl(tmp_path / "seg.jsonl", records)
    settings = make_settings(
        tmp_path, campaign={"Schedule": {"QuietTime": {"Start": start, "End": end}}}
    )
    await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o", progress=False)
    status = {o["EndpointId"]: o["Status"] for o in read_jsonl(tmp_path / "o" / "outcomes.jsonl")}
    assert status == {"ep-1": "QUIET_TIME", "ep-2": "SUCCESS", "ep-3": "SUCCESS", "ep-4": "SUCCESS"}


async def test_total_and_daily_caps_count_sends_across_runs(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 11)))
    ledger = tmp_path / "shared-ledger.sqlite"
    capped = make_settings(tmp_path, campaign={"Limits": {"Total": 1}})
    first = await dispatch(
        capped, segment=str(segment), out_dir=tmp_path / "1", ledger=ledger, progress=False
    )
    again = await dispatch(  # a second run of a sent campaign must be deliberate
        capped, segment=str(segment), out_dir=tmp_path / "2", ledger=ledger, progress=False,
        send_again=True,
    )
    assert first.by_status == {"SUCCESS": 10}
    assert again.by_status == {"TOTAL_CAP": 10}
    other = make_settings(
        tmp_path,
        campaign={"Id": "other-campaign"},
        project={"ApplicationId": "app-1", "Region": "us-east-1", "Limits": {"Daily": 1}},
    )
    daily = await dispatch(
        other, segment=str(segment), out_dir=tmp_path / "3", ledger=ledger, progress=False
    )
    assert daily.by_status == {"DAILY_CAP": 10}
    assert not (tmp_path / "2" / "outbox.jsonl").read_text()


async def test_resume_after_maximum_duration_expires_what_is_left(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 101)))
    settings = make_settings(tmp_path, campaign={"Limits": {"MaximumDuration": 60}})
    out = tmp_path / "o"
    summary = await dispatch(settings, segment=str(segment), out_dir=out, progress=False)
    # Forget the second half of the run and move its start two minutes back.
    db = sqlite3.connect(out / "ledger.sqlite")
    db.execute("DELETE FROM outcomes WHERE line > 50")
    db.execute("DELETE FROM claims WHERE line > 50")
    info = json.loads(db.execute("SELECT info FROM runs").fetchone()[0])
    info["started_at"] = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    db.execute("UPDATE runs SET info = ?", (json.dumps(info),))
    db.commit()
    db.close()
    resumed = await dispatch(
        settings,
        segment=str(segment),
        out_dir=out,
        run_id=summary.run_id,
        resume=True,
        progress=False,
    )
    assert resumed.by_status == {"SUCCESS": 50, "EXPIRED": 50}
    assert len(read_jsonl(out / "outcomes.jsonl")) == 100


async def test_event_stream_records_every_outcome(tmp_path: Path) -> None:
    segment = write_jsonl(
        tmp_path / "seg.jsonl", [endpoint(1), endpoint(2, OptOut="ALL"), endpoint(3, "EMAIL")]
    )
    settings = make_settings(tmp_path, event_stream={"path": "events.jsonl"})
    summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o", progress=False)
    events = read_jsonl(tmp_path / "o" / "events.jsonl")
    assert {e["client"]["client_id"] for e in events} == {"ep-1", "ep-2", "ep-3"}
    e1 = next(e for e in events if e["client"]["client_id"] == "ep-1")
    assert e1["event_type"] == "_campaign.send"
    assert e1["application"]["app_id"] == "app-1"
    assert e1["attributes"]["campaign_id"] == "camp-1"
    assert e1["attributes"]["campaign_activity_id"] == summary.run_id
    assert e1["attributes"]["campaign_send_status"] == "SUCCESS"
    assert e1["attributes"]["delivery_type"] == "SMS"
    assert (
        json.loads(e1["client_context"]["custom"]["endpoint"])["Address"] == endpoint(1)["Address"]
    )
    assert e1["awsAccountId"] == "111122223333"


def test_campaign_json_from_get_campaign_runs_as_it_is(tmp_path: Path) -> None:
    campaign = {"CampaignResponse": {
        "ApplicationId": "pasted-app", "Id": "pasted-campaign", "Name": "spring",
        "Arn": "arn:aws:mobiletargeting:us-east-1:111122223333:apps/pasted-app/campaigns/x",
        "CreationDate": "2026-01-01T00:00:00.000Z", "LastModifiedDate": "2026-01-01T00:00:00.000Z",
        "SegmentId": "seg", "SegmentVersion": 1, "State": {"CampaignStatus": "COMPLETED"},
        "Version": 3, "Hook": {}, "Limits": {"Total": 5},
        "MessageConfiguration": {"SMSMessage": {"Body": "Pasted {{Id}}"}},
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
    }}  # fmt: skip
    (tmp_path / "campaign.json").write_text(json.dumps(campaign))
    (tmp_path / "c.toml").write_text(
        '[project]\nRegion = "us-east-1"\n[segment]\nsource = "s.jsonl"\n'
    )
    write_jsonl(tmp_path / "s.jsonl", [endpoint(1)])
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "run", str(tmp_path / "c.toml"), "--campaign-json",
         str(tmp_path / "campaign.json"), "--out", str(tmp_path / "o"), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [sent] = read_jsonl(tmp_path / "o" / "outbox.jsonl")
    assert sent["Body"] == "Pasted ep-1"
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["CampaignId"] == "pasted-campaign" and run["ApplicationId"] == "pasted-app"
