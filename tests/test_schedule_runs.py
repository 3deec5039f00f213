"""Running a campaign as it was scheduled: pause, EndTime, StartTime, recurring
occurrences and local-time waves, with a clock the tests control (no real waiting)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest

from dispatcher import dispatch
from dispatcher.channels.base import Message, SendResult
from dispatcher.errors import ConfigError, OccurrenceSent, RunInterrupted
from tests.conftest import endpoint, make_settings, read_jsonl, write_jsonl

pytestmark = pytest.mark.anyio


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ManualClock:
    """Time moves only when the run sleeps, by exactly what it asked for."""

    def __init__(self, now: str) -> None:
        self.time = at(now)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += timedelta(seconds=seconds)
        await anyio.lowlevel.checkpoint()


class ClockedSender:
    """A sender that notes the (test) time each endpoint was sent at."""

    max_batch = 50

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sent: dict[str, list[datetime]] = {}

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        for m in messages:
            self.sent.setdefault(m.endpoint_id, []).append(self.clock.now())
        return [SendResult.ok() for _ in messages]

    async def aclose(self) -> None:
        return None


def settings_with(tmp_path: Path, schedule: dict[str, Any], **campaign: Any) -> Any:
    return make_settings(tmp_path, campaign={"Schedule": schedule, **campaign})


def segment(tmp_path: Path, n: int = 3) -> str:
    return str(write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, n + 1)]))


async def test_a_paused_campaign_is_refused_unless_told(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "IMMEDIATE"}, IsPaused=True)
    with pytest.raises(ConfigError) as refused:
        await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "o",
                       progress=False)  # fmt: skip
    assert refused.value.key == "campaign.IsPaused" and "camp-1 is paused" in str(refused.value)
    assert not (tmp_path / "o" / "outcomes.jsonl").exists()
    # A dry run shows what it would send; --ignore-pause sends.
    preview = await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "d",
                             progress=False, dry_run=True)  # fmt: skip
    assert preview.by_status == {"SUCCESS": 3}
    sent = await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "o",
                          progress=False, ignore_pause=True)  # fmt: skip
    assert sent.by_status == {"SUCCESS": 3}


async def test_a_campaign_whose_end_time_is_past_is_refused(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "2026-05-02T15:00:00.000Z",
                                        "EndTime": "2026-05-03T15:00:00.000Z"})  # fmt: skip
    clock = ManualClock("2026-05-03T15:00:00Z")
    with pytest.raises(ConfigError) as refused:
        await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "o",
                       progress=False, clock=clock)  # fmt: skip
    assert refused.value.key == "campaign.Schedule.EndTime"
    assert "ended at 2026-05-03T15:00:00.000Z" in refused.value.message
    assert not (tmp_path / "o" / "ledger.sqlite").exists()


async def test_a_future_start_waits_unless_now(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "2026-12-01T09:00:00Z"})
    clock = ManualClock("2026-12-01T07:30:00Z")
    sender = ClockedSender(clock)
    summary = await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "now",
                             progress=False, clock=clock, now=True,
                             senders={"SMS": sender})  # fmt: skip
    assert summary.by_status == {"SUCCESS": 3} and clock.slept == []
    assert set(sender.sent) == {"ep-1", "ep-2", "ep-3"}
    assert summary.occurrence == "2026-12-01T09:00:00.000Z"

    waiting = ManualClock("2026-12-01T07:30:00Z")
    sender = ClockedSender(waiting)
    summary = await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "wait",
                             progress=False, clock=waiting, senders={"SMS": sender})  # fmt: skip
    assert sum(waiting.slept) == pytest.approx(90 * 60)
    assert all(t == [at("2026-12-01T09:00:00Z")] for t in sender.sent.values())
    run = orjson.loads((tmp_path / "wait" / "run.json").read_bytes())
    assert run["Occurrence"] == "2026-12-01T09:00:00.000Z"
    written = orjson.loads((tmp_path / "wait" / "summary.json").read_bytes())
    assert written["Occurrence"] == "2026-12-01T09:00:00.000Z"


async def test_stopping_while_waiting_for_the_start_sends_nothing(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "2026-12-01T09:00:00Z"})
    clock = ManualClock("2026-12-01T07:30:00Z")
    stop = anyio.Event()

    class Stopper(ManualClock):
        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds)
            if len(self.slept) == 3:
                stop.set()  # Ctrl-C three seconds into the countdown

    clock = Stopper("2026-12-01T07:30:00Z")
    with pytest.raises(RunInterrupted) as stopped:
        await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "o",
                       progress=False, clock=clock, stop=stop)  # fmt: skip
    assert stopped.value.run_id == "" and "nothing was sent" in str(stopped.value)
    assert len(clock.slept) == 3
    assert not (tmp_path / "o" / "ledger.sqlite").exists()
    assert not (tmp_path / "o" / "outcomes.jsonl").exists()


async def test_a_daily_campaign_sends_each_occurrence_once(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "2026-12-01T09:00:00Z",
                                        "Frequency": "DAILY"})  # fmt: skip
    out = tmp_path / "o"
    clock = ManualClock("2026-12-02T10:00:00Z")
    sender = ClockedSender(clock)
    kwargs: dict[str, Any] = {"segment": segment(tmp_path), "out_dir": out, "progress": False,
                              "clock": clock, "senders": {"SMS": sender}}  # fmt: skip
    first = await dispatch(settings, **kwargs)
    assert first.occurrence == "2026-12-02T09:00:00.000Z" and first.by_status == {"SUCCESS": 3}
    for later in ("2026-12-02T10:05:00Z", "2026-12-02T23:59:59Z"):  # cron, same day
        clock.time = at(later)
        with pytest.raises(OccurrenceSent) as again:
            await dispatch(settings, **kwargs)
        assert again.value.run_id == first.run_id
        assert again.value.occurrence == "2026-12-02T09:00:00.000Z"
        assert again.value.next_occurrence == "2026-12-03T09:00:00.000Z"
    assert {k: len(v) for k, v in sender.sent.items()} == {"ep-1": 1, "ep-2": 1, "ep-3": 1}
    clock.time = at("2026-12-03T09:00:00Z")
    second = await dispatch(settings, **kwargs)
    assert second.run_id != first.run_id
    assert second.occurrence == "2026-12-03T09:00:00.000Z"
    assert {k: len(v) for k, v in sender.sent.items()} == {"ep-1": 2, "ep-2": 2, "ep-3": 2}


async def test_a_late_run_catches_up_only_the_latest_occurrence(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "2026-12-01T09:00:00Z",
                                        "Frequency": "HOURLY"})  # fmt: skip
    clock = ManualClock("2026-12-01T14:59:00Z")
    summary = await dispatch(settings, segment=segment(tmp_path), out_dir=tmp_path / "o",
                             progress=False, clock=clock)  # fmt: skip
    assert summary.occurrence == "2026-12-01T14:00:00.000Z"
    assert len(read_jsonl(tmp_path / "o" / "outbox.jsonl")) == 3


async def test_daily_caps_count_across_occurrences(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"StartTime": "2026-12-01T09:00:00Z",
                                        "Frequency": "HOURLY"},
                             Limits={"Total": 2})  # fmt: skip
    clock = ManualClock("2026-12-01T09:00:00Z")
    statuses = []
    for hour in range(3):
        clock.time = at("2026-12-01T09:00:00Z") + timedelta(hours=hour)
        summary = await dispatch(settings, segment=segment(tmp_path, 2), out_dir=tmp_path / "o",
                                 progress=False, clock=clock)  # fmt: skip
        statuses.append(summary.by_status)
    assert statuses == [{"SUCCESS": 2}, {"SUCCESS": 2}, {"TOTAL_CAP": 2}]


ZONES = {
    "ep-1": "Asia/Tokyo", "ep-2": "Europe/Berlin", "ep-3": "UTC", "ep-4": "America/New_York",
    "ep-5": "America/Los_Angeles", "ep-6": None, "ep-7": "Mars/Olympus_Mons", "ep-8": "",
}  # fmt: skip
LOCAL_NINE = {
    "ep-1": "2026-12-01T00:00:00Z", "ep-2": "2026-12-01T08:00:00Z", "ep-3": "2026-12-01T09:00:00Z",
    "ep-4": "2026-12-01T14:00:00Z", "ep-5": "2026-12-01T17:00:00Z",
}  # fmt: skip


def local_segment(tmp_path: Path) -> str:
    records = []
    for i, (eid, zone) in enumerate(ZONES.items(), 1):
        extra = {"Demographic": {"Timezone": zone}} if zone is not None else {}
        records.append(endpoint(i, **extra))
        assert records[-1]["Id"] == eid
    return str(write_jsonl(tmp_path / "local.jsonl", records))


LOCAL = {"StartTime": "2026-12-01T09:00:00", "Timezone": "UTC", "IsLocalTime": True}


async def test_local_time_sends_each_endpoint_at_its_own_nine(tmp_path: Path) -> None:
    # Quiet time 22:00-07:00: at planning time (19:00Z on 30 Nov) it is 04:00 in Tokyo, so
    # a check at admission would hold Tokyo; at its send time (09:00 local) it is not.
    settings = settings_with(tmp_path, LOCAL, Limits={}, **{
        "Schedule": {**LOCAL, "QuietTime": {"Start": "22:00", "End": "07:00"}}})  # fmt: skip
    clock = ManualClock("2026-11-30T12:00:00Z")
    sender = ClockedSender(clock)
    summary = await dispatch(settings, segment=local_segment(tmp_path), out_dir=tmp_path / "o",
                             progress=False, clock=clock, senders={"SMS": sender})  # fmt: skip
    assert summary.by_status == {"SUCCESS": 5, "NO_TIMEZONE": 3}
    assert {k: v for k, v in sender.sent.items()} == {
        eid: [at(when)] for eid, when in LOCAL_NINE.items()}  # fmt: skip
    outcomes = {o["EndpointId"]: o for o in read_jsonl(tmp_path / "o" / "outcomes.jsonl")}
    assert {k for k, o in outcomes.items() if o["Status"] == "NO_TIMEZONE"} == {
        "ep-6", "ep-7", "ep-8"}  # fmt: skip
    assert "Demographic.Timezone" in outcomes["ep-7"]["Reason"]
    assert summary.occurrence == "2026-12-01T09:00:00.000Z"
    # The run started when 09:00 first came anywhere (UTC+14): 2026-11-30T19:00Z.
    assert clock.slept and sum(clock.slept) == pytest.approx(
        (at("2026-12-01T17:00:00Z") - at("2026-11-30T12:00:00Z")).total_seconds())


async def test_local_time_with_now_sends_every_wave_at_once(tmp_path: Path) -> None:
    clock = ManualClock("2026-11-30T12:00:00Z")
    sender = ClockedSender(clock)
    summary = await dispatch(settings_with(tmp_path, LOCAL), segment=local_segment(tmp_path),
                             out_dir=tmp_path / "o", progress=False, clock=clock, now=True,
                             senders={"SMS": sender})  # fmt: skip
    assert summary.by_status == {"SUCCESS": 5, "NO_TIMEZONE": 3} and clock.slept == []


async def test_the_end_time_expires_the_waves_after_it(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {**LOCAL, "EndTime": "2026-12-01T15:00:00Z"})
    clock = ManualClock("2026-11-30T20:00:00Z")
    sender = ClockedSender(clock)
    summary = await dispatch(settings, segment=local_segment(tmp_path), out_dir=tmp_path / "o",
                             progress=False, clock=clock, senders={"SMS": sender})  # fmt: skip
    assert set(sender.sent) == {"ep-1", "ep-2", "ep-3", "ep-4"}
    outcomes = {o["EndpointId"]: o["Status"] for o in read_jsonl(tmp_path / "o" / "outcomes.jsonl")}
    assert outcomes["ep-5"] == "EXPIRED"
    assert summary.by_status == {"SUCCESS": 4, "EXPIRED": 1, "NO_TIMEZONE": 3}
    assert clock.now() < at("2026-12-01T17:00:00Z")  # it did not wait for a wave it can't send


async def test_duplicates_across_waves_are_decided_in_segment_order(tmp_path: Path) -> None:
    # The same address in Tokyo (line 1) and New York (line 2): one message, to line 1,
    # though New York's wave is the one that would come later anyway; and a twin of
    # New York's address earlier in the file (line 3 vs 4) keeps the earlier line.
    records = [endpoint(1, Demographic={"Timezone": "Asia/Tokyo"}),
               endpoint(1, Demographic={"Timezone": "America/New_York"}),
               endpoint(2, Demographic={"Timezone": "America/New_York"}),
               endpoint(2, Demographic={"Timezone": "Asia/Tokyo"})]  # fmt: skip
    for i, r in enumerate(records, 1):
        r["Id"] = f"ep-{i}"
    seg = write_jsonl(tmp_path / "dup.jsonl", records)
    clock = ManualClock("2026-11-30T20:00:00Z")
    sender = ClockedSender(clock)
    await dispatch(settings_with(tmp_path, LOCAL), segment=str(seg), out_dir=tmp_path / "o",
                   progress=False, clock=clock, senders={"SMS": sender})  # fmt: skip
    outcomes = {o["EndpointId"]: o["Status"] for o in read_jsonl(tmp_path / "o" / "outcomes.jsonl")}
    assert outcomes == {"ep-1": "SUCCESS", "ep-2": "DUPLICATE_ADDRESS", "ep-3": "SUCCESS",
                        "ep-4": "DUPLICATE_ADDRESS"}  # fmt: skip
    assert set(sender.sent) == {"ep-1", "ep-3"}


DRIVER = textwrap.dedent("""
    import sys, anyio
    from datetime import datetime, timedelta
    from dispatcher import dispatch
    from dispatcher.config import load_settings

    class Clock:
        def __init__(self):
            self.time = datetime.fromisoformat("2026-11-30T20:00:00+00:00")
        def now(self):
            return self.time
        async def sleep(self, seconds):
            if self.time + timedelta(seconds=seconds) > datetime.fromisoformat(
                    "2026-12-01T10:00:00+00:00"):
                print("WAITING", flush=True)  # waves 1-3 are sent; 4 and 5 to come
                await anyio.sleep(3600)
            self.time += timedelta(seconds=seconds)

    anyio.run(lambda: dispatch(load_settings(sys.argv[1]), segment=sys.argv[2],
                               out_dir=sys.argv[3], progress=False, clock=Clock()))
""")


def test_sigkill_between_waves_then_resume_sends_each_endpoint_once(tmp_path: Path) -> None:
    config = tmp_path / "local.toml"
    config.write_text(textwrap.dedent("""
        [project]
        ApplicationId = "app-1"
        Region = "us-east-1"
        [campaign]
        Id = "camp-1"
        [campaign.MessageConfiguration.SMSMessage]
        Body = "Hello"
        [campaign.Schedule]
        StartTime = "2026-12-01T09:00:00"
        Timezone = "UTC"
        IsLocalTime = true
    """))
    seg = local_segment(tmp_path)
    out = tmp_path / "o"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(driver), str(config), seg, str(out)],
                            stdout=subprocess.PIPE, env=env)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"WAITING"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    sent_before = Counter(m["EndpointId"] for m in read_jsonl(out / "outbox.jsonl"))
    assert sent_before == {"ep-1": 1, "ep-2": 1, "ep-3": 1}
    run_id = orjson.loads((out / "run.json").read_bytes())["RunId"]

    from dispatcher.config import load_settings

    clock = ManualClock("2026-12-01T13:00:00Z")
    summary = anyio.run(lambda: dispatch(
        load_settings(config), segment=seg, out_dir=out, progress=False, clock=clock,
        run_id=run_id, resume=True))  # fmt: skip
    sent = Counter(m["EndpointId"] for m in read_jsonl(out / "outbox.jsonl"))
    assert sent == {f"ep-{i}": 1 for i in range(1, 6)}
    assert summary.by_status == {"SUCCESS": 5, "NO_TIMEZONE": 3}
    assert summary.occurrence == "2026-12-01T09:00:00.000Z"
    lines = [o["Line"] for o in read_jsonl(out / "outcomes.jsonl")]
    assert sorted(lines) == list(range(1, 9))
    # The resumed run waited for New York (14:00Z) and Los Angeles (17:00Z) only.
    assert clock.now() == at("2026-12-01T17:00:00Z")
