"""Campaign semantics: A/B treatments and holdout, quiet time, MaximumDuration, caps."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.campaign import (
    BUCKETS,
    Expiry,
    QuietTime,
    Treatments,
    bucket,
    cap_check,
    cap_status,
)
from dispatcher.config import Limits
from dispatcher.errors import ConfigError
from dispatcher.model import Record, Status
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[1]

SMS_B = {"SMSMessage": {"Body": "treatment B"}}
SMS_EMAIL_GCM_C = {
    "SMSMessage": {"Body": "treatment C"},
    "CustomMessage": {"Data": "C custom"},
    "EmailMessage": {"Title": "C", "Body": "C", "FromAddress": "c@example.com"},
    "DefaultMessage": {"Body": "C push"},
}


def ab_settings(tmp_path: Path, holdout: int = 10, sizes: tuple[int, ...] = (20, 30), **extra: Any):
    treatments = [{"SizePercent": s, "TreatmentName": f"T{i + 1}"} for i, s in enumerate(sizes)]
    return make_settings(
        tmp_path,
        campaign={"HoldoutPercent": holdout, "AdditionalTreatments": treatments,
                  "TreatmentName": "Main", **extra},
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Treatments
# --------------------------------------------------------------------------------------


def test_split_over_100k_endpoints_is_within_one_percent(tmp_path: Path) -> None:
    t = Treatments.from_settings(ab_settings(tmp_path, holdout=10, sizes=(20, 30, 5)))
    n = 100_000
    counts = Counter(t.assign(f"endpoint-{i:06d}") for i in range(n))
    expected = {None: 10, "1": 20, "2": 30, "3": 5, "0": 35}
    assert set(counts) == set(expected)
    for treatment, percent in expected.items():
        assert abs(counts[treatment] / n * 100 - percent) < 1.0, (treatment, counts)


def test_assign_follows_the_documented_bucket_layout(tmp_path: Path) -> None:
    t = Treatments.from_settings(ab_settings(tmp_path, holdout=10, sizes=(20, 30)))
    layout = [(1000, None), (3000, "1"), (6000, "2"), (BUCKETS, "0")]  # holdout | 1 | 2 | main
    for i in range(20_000):
        b = bucket("camp-1", f"id-{i}")
        expected = next(target for upper, target in layout if b < upper)
        assert t.assign(f"id-{i}") == expected


def test_main_treatment_gets_the_remainder_and_sizes_are_reported(tmp_path: Path) -> None:
    t = Treatments.from_settings(ab_settings(tmp_path, holdout=0, sizes=(50,)))
    assert {tid: tr.size_percent for tid, tr in t.treatments.items()} == {"0": 50, "1": 50}
    assert t.ids == ["0", "1"]
    assert t.treatments["0"].name == "Main" and t.treatments["1"].name == "T1"


def test_assignment_is_stable_across_processes_and_campaign_specific(tmp_path: Path) -> None:
    t = Treatments.from_settings(ab_settings(tmp_path))
    ids = [f"ep-{i}" for i in range(2000)]
    here = [t.assign(i) for i in ids]
    code = (
        "import json, sys\n"
        "from dispatcher.campaign import bucket\n"
        "ids = json.load(sys.stdin)\n"
        "print(json.dumps([bucket('camp-1', i) for i in ids]))\n"
    )
    buckets = []
    for seed in ("1", "2"):  # different hash salts: Python's hash() would differ
        out = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(ids), capture_output=True,
            text=True, check=True, cwd=REPO, env={"PYTHONHASHSEED": seed, "PATH": ""},
        )  # fmt: skip
        buckets.append(json.loads(out.stdout))
    assert buckets[0] == buckets[1] == [bucket("camp-1", i) for i in ids]
    again = Treatments.from_settings(ab_settings(tmp_path))
    assert [again.assign(i) for i in ids] == here
    other = [bucket("camp-2", i) for i in ids]
    assert sum(a == b for a, b in zip(buckets[0], other, strict=True)) < 20  # ~0.01 % each
    assert all(0 <= b < BUCKETS for b in other)


def test_holdout_100_holds_everyone_and_no_ab_sends_everything_as_main(tmp_path: Path) -> None:
    everyone = Treatments.from_settings(ab_settings(tmp_path, holdout=100, sizes=()))
    assert {everyone.assign(f"e{i}") for i in range(500)} == {None}
    plain = Treatments.from_settings(make_settings(tmp_path))
    assert {plain.assign(f"e{i}") for i in range(500)} == {"0"}
    assert list(plain.message_configurations()) == ["0"]


@pytest.mark.anyio
async def test_admission_sets_the_treatment_or_holds_the_record_out(tmp_path: Path) -> None:
    from dispatcher.eligibility import Admission, Eligibility

    t = Treatments.from_settings(ab_settings(tmp_path, holdout=50, sizes=(50,)))
    admission = Admission(Eligibility({"SMS"}), treatments=t)
    records = [Record(i + 1, f"ep-{i}", {"ChannelType": "SMS", "Address": f"+1{i:010d}"})
               for i in range(200)]  # fmt: skip
    settled, admitted = await admission(records)
    outcomes = {o.endpoint_id: (o, None) for o in settled}
    outcomes.update({r.endpoint_id: (None, r.treatment) for r in admitted})
    held = [(o, tr) for o, tr in outcomes.values() if o is not None]
    sent = [tr for o, tr in outcomes.values() if o is None]
    assert held and sent
    assert all(o.status is Status.HOLDOUT and tr is None and o.treatment_id is None
               for o, tr in held)  # fmt: skip
    assert set(sent) == {"1"}
    assert all(t.assign(str(eid)) == tr for eid, (_, tr) in outcomes.items())


def test_treatment_messages_inherit_or_replace_the_campaigns(tmp_path: Path) -> None:
    custom = {"DeliveryUri": "https://x.example", "EndpointTypes": ["SMS"]}
    s = make_settings(tmp_path, campaign={"AdditionalTreatments": [
        {"SizePercent": 30},
        {"SizePercent": 30, "MessageConfiguration": SMS_EMAIL_GCM_C,
         "CustomDeliveryConfiguration": custom},
    ]})  # fmt: skip
    t = Treatments.from_settings(s)
    mcs = t.message_configurations()
    assert list(mcs) == ["0", "1", "2"]
    assert mcs["0"] == mcs["1"] == s.campaign.message_configuration
    assert mcs["2"] == SMS_EMAIL_GCM_C
    assert t.message_for("1", "SMS") == s.campaign.message_configuration["SMSMessage"]
    assert t.message_for("2", "SMS") == {"Data": "C custom"}  # its custom delivery
    assert t.message_for("2", "EMAIL")["Title"] == "C"  # type: ignore[index]
    assert t.message_for("2", "GCM") == {"Body": "C push"}  # DefaultMessage fallback
    assert t.message_for("1", "GCM") == s.campaign.message_configuration["GCMMessage"]
    assert t.campaign_for("2").custom_delivery == {
        "DeliveryUri": "https://x.example",
        "EndpointTypes": ["SMS"],
    }
    assert t.campaign_for("0") is s.campaign


def test_a_treatment_with_its_own_custom_delivery_needs_only_a_custom_message(
    tmp_path: Path,
) -> None:
    s = make_settings(tmp_path, campaign={"AdditionalTreatments": [{
        "SizePercent": 50, "MessageConfiguration": {"CustomMessage": {"Data": "d"}},
        "CustomDeliveryConfiguration": {"DeliveryUri": "https://x.example",
                                        "EndpointTypes": ["SMS", "EMAIL", "GCM"]}}]})  # fmt: skip
    t = Treatments.from_settings(s)
    assert {t.message_for("1", c)["Data"] for c in ("SMS", "EMAIL", "GCM")} == {"d"}  # type: ignore[index]
    assert t.campaign_for("0").custom_delivery is None


@pytest.mark.parametrize(
    ("treatments", "key", "words"),
    [
        (
            [{"SizePercent": 50}, {"SizePercent": 41}],
            "campaign.AdditionalTreatments[1].SizePercent",
            "is 101, over 100",
        ),
        ([{"SizePercent": 5}] * 5, "campaign.AdditionalTreatments", "at most 4"),
        ([{"TreatmentName": "x"}], "campaign.AdditionalTreatments[0].SizePercent", "is required"),
        ([{"SizePercent": True}], "campaign.AdditionalTreatments[0].SizePercent", "is required"),
        (
            [{"SizePercent": 10, "Sizepercent": 1}],
            "campaign.AdditionalTreatments[0].Sizepercent",
            "unknown key",
        ),
        (["half"], "campaign.AdditionalTreatments[0]", "expected a table"),
        (
            [{"SizePercent": 10, "MessageConfiguration": SMS_B}],
            "campaign.AdditionalTreatments[0].MessageConfiguration",
            "no message for EMAIL, GCM",
        ),
        (
            [{"SizePercent": 10, "MessageConfiguration": {"SmsMessage": {"Body": "x"}}}],
            "campaign.AdditionalTreatments[0].MessageConfiguration.SmsMessage",
            "unknown",
        ),
    ],
)
def test_bad_treatments_are_config_errors_naming_the_key(
    tmp_path: Path, treatments: list[Any], key: str, words: str
) -> None:
    s = make_settings(tmp_path, campaign={"HoldoutPercent": 10, "AdditionalTreatments": treatments})
    with pytest.raises(ConfigError) as info:
        Treatments.from_settings(s)
    assert info.value.key == key
    assert info.value.file == s.file
    assert words in info.value.message


def test_read_only_and_empty_treatment_fields_are_accepted(tmp_path: Path) -> None:
    s = make_settings(tmp_path, campaign={"AdditionalTreatments": [
        {"Id": "1", "SizePercent": 40, "State": {"CampaignStatus": "COMPLETED"},
         "TemplateConfiguration": {}, "Schedule": {"StartTime": "IMMEDIATE"}},
    ]})  # fmt: skip
    assert Treatments.from_settings(s).treatments["1"].size_percent == 40


# --------------------------------------------------------------------------------------
# Quiet time
# --------------------------------------------------------------------------------------

NY = "America/New_York"


def at(zone: str, *args: int) -> datetime:
    """A local wall time in ``zone``, as the aware UTC datetime the dispatcher would pass."""
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


def endpoint(tz: Any) -> dict[str, Any]:
    return {"ChannelType": "SMS", "Address": "+12065550100", "Demographic": {"Timezone": tz}}


@pytest.mark.parametrize(
    ("local", "held"),
    [
        ((21, 59, 59), False),
        ((22, 0, 0), True),
        ((23, 59, 59), True),
        ((0, 0, 0), True),
        ((3, 0, 0), True),
        ((7, 0, 0), True),
        ((7, 0, 59), True),  # End's minute is included ("earlier than or equal to End")
        ((7, 1, 0), False),
        ((12, 0, 0), False),
    ],
)
def test_window_crossing_midnight_boundaries(local: tuple[int, int, int], held: bool) -> None:
    qt = QuietTime("22:00", "07:00")
    assert qt.holds(endpoint(NY), at(NY, 2026, 3, 2, *local)) is held


@pytest.mark.parametrize(
    ("local", "held"),
    [((12, 59, 59), False), ((13, 0, 0), True), ((14, 0, 59), True), ((14, 1, 0), False)],
)
def test_window_within_one_day(local: tuple[int, int, int], held: bool) -> None:
    qt = QuietTime("13:00", "14:00")
    assert qt.holds(endpoint("Asia/Kathmandu"), at("Asia/Kathmandu", 2026, 6, 1, *local)) is held


def test_start_equal_to_end_holds_for_that_minute_only() -> None:
    qt = QuietTime("09:30", "09:30")
    assert qt.holds(endpoint(NY), at(NY, 2026, 1, 5, 9, 30, 59))
    assert not qt.holds(endpoint(NY), at(NY, 2026, 1, 5, 9, 31, 0))
    assert not qt.holds(endpoint(NY), at(NY, 2026, 1, 5, 9, 29, 59))


def test_uses_the_zone_rules_of_the_date_daylight_saving_included() -> None:
    qt = QuietTime("22:00", "07:00")
    # 02:30 UTC is 21:30 EST in January (not quiet) and 22:30 EDT in July (quiet).
    assert not qt.holds(endpoint(NY), datetime(2026, 1, 15, 2, 30, tzinfo=UTC))
    assert qt.holds(endpoint(NY), datetime(2026, 7, 15, 2, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    "definition",
    [
        endpoint("Mars/Olympus_Mons"),
        endpoint(""),
        endpoint(None),
        endpoint(5),
        endpoint("../../etc/passwd"),
        endpoint("America/New_York\x00"),
        {"ChannelType": "SMS", "Address": "+1"},
        {"ChannelType": "SMS", "Address": "+1", "Demographic": "America/New_York"},
        {"ChannelType": "SMS", "Address": "+1", "Demographic": {"Timezone": ["UTC"]}},
    ],
)
def test_endpoints_without_a_valid_time_zone_are_never_held(definition: dict[str, Any]) -> None:
    qt = QuietTime("00:00", "23:59")  # the whole day
    assert qt.holds(definition, datetime(2026, 5, 5, 12, tzinfo=UTC)) is False
    assert qt.holds(endpoint("UTC"), datetime(2026, 5, 5, 12, tzinfo=UTC)) is True


def test_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        QuietTime("22:00", "07:00").holds(endpoint(NY), datetime(2026, 1, 1, 3, 0))


def test_bad_window_strings_are_refused() -> None:
    for bad in ("7:00", "24:00", "12:60", "12-00", ""):
        with pytest.raises(ValueError, match="HH:MM"):
            QuietTime(bad, "07:00")


ZONES = ["UTC", NY, "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/St_Johns", "Europe/Berlin", "Not/AZone"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 1439),
    end=st.integers(0, 1439),
    probes=st.lists(
        st.tuples(st.sampled_from(ZONES), st.integers(1_700_000_000, 1_900_000_000)), max_size=40
    ),
)
def test_cached_verdicts_match_a_direct_computation(
    start: int, end: int, probes: list[tuple[str, int]]
) -> None:
    qt = QuietTime(f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}")
    for zone, ts in probes + probes[::-1]:  # revisits hit the cache
        now = datetime.fromtimestamp(ts, UTC)
        if zone == "Not/AZone":
            expected = False
        else:
            local = now.astimezone(ZoneInfo(zone))
            m = local.hour * 60 + local.minute
            expected = start <= m <= end if start <= end else (m >= start or m <= end)
        assert qt.holds(endpoint(zone), now) is expected, (zone, now)


def test_campaign_quiet_time_overrides_the_project_default(tmp_path: Path) -> None:
    project = {"ApplicationId": "app-1", "Region": "us-east-1",
               "QuietTime": {"Start": "21:00", "End": "08:00"}}  # fmt: skip
    campaign_qt = make_settings(
        tmp_path,
        project=project,
        campaign={"Schedule": {"QuietTime": {"Start": "23:00", "End": "06:00"}}},
    )
    assert repr(QuietTime.from_settings(campaign_qt)) == "QuietTime(23:00-06:00)"
    inherits = make_settings(tmp_path, project=project, campaign={"Schedule": {"QuietTime": {}}})
    assert repr(QuietTime.from_settings(inherits)) == "QuietTime(21:00-08:00)"
    none = make_settings(tmp_path, campaign={"Schedule": {"StartTime": "IMMEDIATE"}})
    assert QuietTime.from_settings(none) is None


def test_a_bad_campaign_quiet_time_is_a_config_error(tmp_path: Path) -> None:
    s = make_settings(
        tmp_path, campaign={"Schedule": {"QuietTime": {"Start": "10pm", "End": "07:00"}}}
    )
    with pytest.raises(ConfigError) as info:
        QuietTime.from_settings(s)
    assert info.value.key == "campaign.Schedule.QuietTime.Start"
    assert info.value.file == s.file


# --------------------------------------------------------------------------------------
# MaximumDuration
# --------------------------------------------------------------------------------------


def test_expiry_on_the_monotonic_clock() -> None:
    e = Expiry(1000.0, 60)
    assert not e.expired(1000.0)
    assert not e.expired(1060.0)  # the deadline instant itself is in time
    assert e.expired(1060.001)


def test_expiry_on_wall_clock_for_a_resumed_run() -> None:
    start = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    e = Expiry(start, 3600)
    assert not e.expired(start + timedelta(minutes=59))
    assert e.expired(start + timedelta(hours=1, microseconds=1))
    with pytest.raises(TypeError):
        e.expired(5.0)
    with pytest.raises(ValueError, match="aware"):
        Expiry(datetime(2026, 10, 1, 12, 0), 60)


def test_expiry_without_now_reads_the_clock_of_its_start() -> None:
    import time

    assert not Expiry(time.monotonic(), 60).expired()
    assert Expiry(time.monotonic() - 61, 60).expired()
    assert Expiry(datetime.now(UTC) - timedelta(seconds=61), 60).expired()
    assert not Expiry(datetime.now(UTC), 60).expired()


def test_no_maximum_duration_never_expires() -> None:
    for duration in (None, 0):
        assert not Expiry(0.0, duration).expired(10.0**9)


# --------------------------------------------------------------------------------------
# Caps
# --------------------------------------------------------------------------------------


def test_campaign_limits_override_project_limits_field_by_field() -> None:
    campaign = Limits(daily=3, total=None, messages_per_second=None, maximum_duration=0)
    project = Limits(daily=10, total=5, session=2, messages_per_second=200, maximum_duration=600)
    assert campaign.over(project) == Limits(
        daily=3, total=5, session=2, messages_per_second=200, maximum_duration=600
    )
    assert Limits().over(Limits()) == Limits()


@pytest.mark.parametrize(
    ("limits", "daily", "total", "expected"),
    [
        (Limits(daily=2, total=5), 1, 4, None),
        (Limits(daily=2, total=5), 2, 4, Status.DAILY_CAP),
        (Limits(daily=2, total=5), 1, 5, Status.TOTAL_CAP),
        (Limits(daily=2, total=5), 9, 9, Status.TOTAL_CAP),  # permanent cap reported first
        (Limits(), 1000, 1000, None),
        (Limits(daily=0, total=0), 1000, 1000, None),
        (Limits(daily=1), 0, 50, None),
    ],
)
def test_cap_status(limits: Limits, daily: int, total: int, expected: Status | None) -> None:
    assert cap_status(limits, daily, total) is expected


@pytest.mark.anyio
async def test_cap_check_asks_the_history_once_per_batch() -> None:
    asked: list[tuple[list[str], str, float]] = []
    history = {"ep-1": (2, 0), "ep-2": (0, 5), "ep-3": (1, 4)}

    async def ledger_history(ids: list[str], *, campaign_id: str, since: float):
        asked.append((list(ids), campaign_id, since))
        return {i: history[i] for i in ids if i in history}

    check = cap_check(ledger_history, Limits(daily=2, total=5), campaign_id="camp-1",
                      clock=lambda: 100_000.0)  # fmt: skip
    records = [
        Record(n, f"ep-{n}", {"ChannelType": "SMS", "Address": f"+1{n}"}) for n in (1, 2, 3, 4)
    ]
    capped = await check(records)
    assert asked == [(["ep-1", "ep-2", "ep-3", "ep-4"], "camp-1", 100_000.0 - 86_400)]
    assert {eid: o.status for eid, o in capped.items()} == {
        "ep-1": Status.DAILY_CAP,
        "ep-2": Status.TOTAL_CAP,
    }
    assert capped["ep-1"].line == 1 and "Daily cap 2" in (capped["ep-1"].reason or "")
    nothing = cap_check(ledger_history, Limits(messages_per_second=5), campaign_id="camp-1")
    assert await nothing(records) == {} and len(asked) == 1  # no caps: no query
