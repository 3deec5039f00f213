"""``Schedule`` as values: validation, occurrences, when they open, local send times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dispatcher.campaign.schedule import CampaignSchedule, WavePlan, parse_offset
from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.progress import span


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("schedule", "key", "words"),
    [
        ({"Frequency": "EVENT", "StartTime": "IMMEDIATE"}, "Frequency", "triggered by events"),
        ({"Frequency": "IN_APP_EVENT"}, "Frequency", "triggered by events"),
        ({"Frequency": "YEARLY"}, "Frequency", "must be one of"),
        ({"StartTime": "next tuesday"}, "StartTime", "ISO 8601"),
        ({"StartTime": "2026-12-01T09:00:00Z", "EndTime": "2026-12-01T08:00:00Z"}, "EndTime",
         "after StartTime"),
        ({"StartTime": "IMMEDIATE", "Frequency": "DAILY"}, "StartTime", "needs a StartTime"),
        ({"StartTime": "IMMEDIATE", "IsLocalTime": True}, "StartTime", "local-time"),
        ({"StartTime": "2026-12-01T09:00:00Z", "Timezone": "CET"}, "Timezone", "UTC offset"),
        ({"StartTime": "2026-12-01T09:00:00Z", "IsLocalTime": "yes"}, "IsLocalTime", "true"),
    ],
)  # fmt: skip
def test_a_bad_schedule_names_its_key(schedule: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as bad:
        CampaignSchedule.parse(schedule, file="c.toml")
    assert bad.value.key == f"campaign.Schedule.{key}" and bad.value.file == "c.toml"
    assert words in bad.value.message


def test_pinpoint_timezone_spellings() -> None:
    assert parse_offset("UTC") == UTC
    assert parse_offset("UTC+05:30") == timezone(timedelta(hours=5, minutes=30))
    assert parse_offset("UTC-04") == timezone(timedelta(hours=-4))
    assert parse_offset("+09:30") == timezone(timedelta(hours=9, minutes=30))
    assert parse_offset("utc+08") == timezone(timedelta(hours=8))
    assert parse_offset("UTC+15") is None and parse_offset("Europe/Paris") is None


def test_no_schedule_or_immediate_has_no_occurrence() -> None:
    for schedule in (None, {}, {"StartTime": "IMMEDIATE", "Frequency": "ONCE"}):
        parsed = CampaignSchedule.parse(schedule)
        assert parsed.start is None and parsed.due(at("2026-12-01T00:00:00Z")) is None
        assert parsed.first() is None and not parsed.recurring


def test_daily_occurrences_and_which_is_due() -> None:
    s = CampaignSchedule.parse({"StartTime": "2026-12-01T09:00:00-05:00", "Frequency": "DAILY",
                                "EndTime": "2026-12-04T00:00:00Z"})  # fmt: skip
    assert [o.isoformat() for o in s.occurrences()] == [
        "2026-12-01T09:00:00-05:00", "2026-12-02T09:00:00-05:00", "2026-12-03T09:00:00-05:00"]
    assert s.due(at("2026-12-01T13:59:59Z")) is None
    assert s.due(at("2026-12-01T14:00:00Z")) == at("2026-12-01T14:00:00Z")
    # A late run catches up only the latest occurrence.
    assert s.due(at("2026-12-03T23:00:00Z")) == at("2026-12-03T14:00:00Z")
    assert s.upcoming(at("2026-12-01T15:00:00Z"), 5) == [at("2026-12-02T14:00:00Z"),
                                                         at("2026-12-03T14:00:00Z")]  # fmt: skip
    assert s.recent(at("2026-12-03T15:00:00Z"), 2) == [at("2026-12-02T14:00:00Z"),
                                                       at("2026-12-03T14:00:00Z")]  # fmt: skip
    assert s.after(at("2026-12-03T14:00:00Z")) is None
    assert s.ended(at("2026-12-04T00:00:00Z")) and not s.ended(at("2026-12-03T23:59:59Z"))


def test_hourly_weekly_and_monthly_steps() -> None:
    hourly = CampaignSchedule.parse({"StartTime": "2026-12-01T09:30:00Z", "Frequency": "HOURLY"})
    assert hourly.due(at("2026-12-01T12:29:00Z")) == at("2026-12-01T11:30:00Z")
    weekly = CampaignSchedule.parse({"StartTime": "2026-12-01T09:00:00Z", "Frequency": "WEEKLY"})
    assert weekly.after(at("2026-12-01T09:00:00Z")) == at("2026-12-08T09:00:00Z")
    monthly = CampaignSchedule.parse({"StartTime": "2026-01-31T09:00:00Z", "Frequency": "MONTHLY"})
    # The 31st, or the month's last day when it is shorter.
    assert [o.date().isoformat() for o in list(monthly.occurrences())[:4]] == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]  # fmt: skip


def test_a_local_time_occurrence_opens_in_the_earliest_time_zone() -> None:
    s = CampaignSchedule.parse({"StartTime": "2026-12-01T09:00:00", "Timezone": "UTC-05",
                                "IsLocalTime": True})  # fmt: skip
    (occurrence,) = s.occurrences()
    assert occurrence == at("2026-12-01T09:00:00-05:00")
    # 09:00 comes first at UTC+14: 2026-11-30T19:00Z.
    assert s.opens(occurrence) == at("2026-11-30T19:00:00Z")
    assert s.due(at("2026-11-30T18:59:59Z")) is None
    assert s.due(at("2026-11-30T19:00:00Z")) == occurrence
    assert s.local_due(occurrence, "Asia/Tokyo") == at("2026-12-01T09:00:00+09:00")
    assert s.local_due(occurrence, "America/Los_Angeles") == at("2026-12-01T09:00:00-08:00")
    assert s.local_due(occurrence, "Mars/Olympus") is None
    assert s.local_due(occurrence, None) is None and s.local_due(occurrence, 7) is None


def test_a_wall_clock_time_skipped_by_dst_is_sent_an_hour_later() -> None:
    s = CampaignSchedule.parse({"StartTime": "2026-03-08T02:30:00Z", "IsLocalTime": True})
    (occurrence,) = s.occurrences()
    # 02:30 does not exist in New York on 2026-03-08 (clocks jump 02:00 -> 03:00).
    assert s.local_due(occurrence, "America/New_York") == at("2026-03-08T03:30:00-04:00")


def test_the_wave_plan_groups_endpoints_by_local_send_time() -> None:
    s = CampaignSchedule.parse({"StartTime": "2026-12-01T09:00:00Z", "IsLocalTime": True})
    (occurrence,) = s.occurrences()
    plan = WavePlan(s, occurrence, start=at("2026-12-01T02:00:00Z"))
    zones = ["Asia/Tokyo", "Europe/Berlin", "Asia/Tokyo", None, "Not/AZone", "Europe/Paris"]
    placed = [plan.place(Record(i, f"ep-{i}", {"Demographic": {"Timezone": z}} if z else {}))
              for i, z in enumerate(zones, 1)]  # fmt: skip
    assert placed == [True, True, True, False, False, True]
    waves = plan.waves()
    # Tokyo's 09:00 (00:00Z) had passed at 02:00Z: sent at once, late rather than never.
    assert [(w.due, w.count) for _, w in waves] == [(at("2026-12-01T02:00:00Z"), 2),
                                                    (at("2026-12-01T08:00:00Z"), 2)]  # fmt: skip
    assert waves[1][1].zones == ("Europe/Berlin", "Europe/Paris")
    first, second = (plan.skip_for(index) for index, _ in waves)
    assert [line for line in range(1, 8) if not first(line)] == [1, 3]
    assert [line for line in range(1, 8) if not second(line)] == [2, 6]


def test_an_immediate_plan_is_one_wave_now() -> None:
    s = CampaignSchedule.parse({"StartTime": "2026-12-01T09:00:00Z", "IsLocalTime": True})
    (occurrence,) = s.occurrences()
    start = at("2026-11-01T00:00:00Z")
    plan = WavePlan(s, occurrence, start=start, immediate=True)
    for i, zone in enumerate(["Asia/Tokyo", "America/Denver", "bogus"], 1):
        plan.place(Record(i, f"ep-{i}", {"Demographic": {"Timezone": zone}}))
    assert [(w.due, w.count) for _, w in plan.waves()] == [(start, 2)]


def test_span_reads_like_a_countdown() -> None:
    assert span(5) == "5s" and span(65) == "1m 05s" and span(3 * 3600 + 725) == "3h 12m 05s"
    assert span(86400 + 3600) == "1d 01h 00m 00s" and span(0.2) == "1s"
