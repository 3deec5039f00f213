"""The schedule from the command line: exit codes, messages, ``dispatcher schedule``."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.cli import main
from tests.conftest import endpoint, write_jsonl

Capture = pytest.CaptureFixture[str]


def config(tmp_path: Path, schedule: str, extra: str = "") -> Path:
    seg = write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, 4)])
    path = tmp_path / "campaign.toml"
    path.write_text(textwrap.dedent(f"""
        [project]
        ApplicationId = "app-1"
        Region = "us-east-1"
        [segment]
        source = "{seg.name}"
        [campaign]
        Id = "camp-1"
        {extra}
        [campaign.MessageConfiguration.SMSMessage]
        Body = "Hello"
        [campaign.Schedule]
    """) + textwrap.dedent(schedule))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_paused_exits_2_unless_ignore_pause(tmp_path: Path, capsys: Capture) -> None:
    cfg = config(tmp_path, 'StartTime = "IMMEDIATE"', "IsPaused = true")
    out = str(tmp_path / "o")
    code, stdout, stderr = run(capsys, "run", str(cfg), "--out", out)
    assert code == 2 and stdout == ""
    assert stderr.strip() == (f"dispatcher: {cfg}: campaign.IsPaused: campaign camp-1 is paused "
                              "(IsPaused: true); set IsPaused to false, or pass --ignore-pause "
                              "to run it anyway")  # fmt: skip
    code, stdout, _ = run(capsys, "run", str(cfg), "--out", out, "--ignore-pause")
    assert code == 0 and json.loads(stdout)["ByStatus"] == {"SUCCESS": 3}


def test_past_end_time_exits_2(tmp_path: Path, capsys: Capture) -> None:
    cfg = config(tmp_path, 'StartTime = "2026-05-02T15:00:00Z"\nEndTime = "2026-05-03T15:00:00Z"')
    code, stdout, stderr = run(capsys, "run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and stdout == ""
    assert "campaign.Schedule.EndTime: campaign camp-1 ended at 2026-05-03T15:00:00.000Z" in stderr


def test_event_campaigns_exit_2_naming_the_key(tmp_path: Path, capsys: Capture) -> None:
    cfg = config(tmp_path, 'StartTime = "IMMEDIATE"\nFrequency = "EVENT"')
    code, _, stderr = run(capsys, "run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and "campaign.Schedule.Frequency: EVENT campaigns are triggered" in stderr


def test_future_start_with_now_sends_at_once(tmp_path: Path, capsys: Capture) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    cfg = config(tmp_path, f'StartTime = "{iso(start)}"')
    code, stdout, _ = run(capsys, "run", str(cfg), "--out", str(tmp_path / "o"), "--now")
    summary = json.loads(stdout)
    assert code == 0 and summary["ByStatus"] == {"SUCCESS": 3}
    assert summary["Occurrence"] == start.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_recurring_campaign_run_again_says_it_was_sent_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, 'StartTime = "2026-01-01T00:00:00Z"\nFrequency = "DAILY"')
    out = str(tmp_path / "o")
    code, stdout, _ = run(capsys, "run", str(cfg), "--out", out, "--quiet")
    first = json.loads(stdout)
    day = datetime.fromisoformat(first["Occurrence"][:10]).date()
    today = day.isoformat()
    assert code == 0 and first["Occurrence"] == f"{today}T00:00:00.000Z"
    assert day == datetime.now(UTC).date()
    code, stdout, stderr = run(capsys, "run", str(cfg), "--out", out)
    again = json.loads(stdout)
    assert code == 0 and again["AlreadySent"] is True and again["RunId"] == first["RunId"]
    assert again["Occurrence"] == first["Occurrence"]
    tomorrow = (day + timedelta(days=1)).isoformat()
    assert again["NextOccurrence"] == f"{tomorrow}T00:00:00.000Z"
    assert f"was already sent by run {first['RunId']} (3 sent)" in stderr
    outbox = (tmp_path / "o" / "outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 3

    code, stdout, _ = run(capsys, "schedule", str(cfg), "--out", out, "--json", "-n", "2")
    report = json.loads(stdout)
    assert code == 0 and report["Frequency"] == "DAILY" and report["IsPaused"] is False
    states = [(o["Occurrence"][:10], o["State"]) for o in report["Occurrences"]]
    yesterday = (day - timedelta(days=1)).isoformat()
    day_after = (day + timedelta(days=2)).isoformat()
    assert states[-4:] == [(yesterday, "MISSED"), (today, "SENT"), (tomorrow, "UPCOMING"),
                           (day_after, "UPCOMING")]  # fmt: skip
    assert report["Occurrences"][-3]["RunId"] == first["RunId"]
    code, stdout, _ = run(capsys, "schedule", str(cfg), "--out", out)
    assert code == 0 and f"{today}T00:00:00.000Z  SENT" in stdout
    assert f"run {first['RunId']} (3 sent)" in stdout
