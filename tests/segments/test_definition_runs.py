"""Segment definitions in runs: ``[segment] definition`` and ``--segment-definition``
narrow a run's source before admission, in one process, across ``--processes`` and on
resume, and ``summary.json`` counts ``Scanned`` beside ``Total``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from dispatcher import dispatch
from dispatcher.channels.base import Message, SendResult
from dispatcher.errors import InputChanged, RunInterrupted
from dispatcher.model import Status
from dispatcher.segments.definition import compile_definition
from tests.conftest import endpoint, export_with_twins, make_settings, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime.fromisoformat("2026-10-15T12:00:00+00:00")


def definition(*dimensions: dict[str, Any]) -> dict[str, Any]:
    """get-segment output with one group of ``dimensions``, all of which must hold."""
    return {"SegmentResponse": {
        "Id": "seg-1", "Name": "test", "SegmentType": "DIMENSIONAL", "Version": 1,
        "SegmentGroups": {"Include": "ALL", "Groups": [
            {"Type": "ALL", "SourceType": "ANY", "SourceSegments": [],
             "Dimensions": list(dimensions)}]},
    }}  # fmt: skip


def platform(*values: str) -> dict[str, Any]:
    return {"Demographic": {"Platform": {"DimensionType": "INCLUSIVE", "Values": list(values)}}}


def write_definition(path: Path, *dimensions: dict[str, Any]) -> Path:
    path.write_text(json.dumps(definition(*dimensions)))
    return path


def export(path: Path, n: int) -> tuple[Path, set[int], set[int]]:
    """``n`` lines: ios on every third, android elsewhere, a malformed line every 50th.
    Returns the file, the ios lines and the malformed lines."""
    records: list[dict[str, Any] | str] = []
    ios, bad = set(), set()
    for line in range(1, n + 1):
        if line % 50 == 0:
            records.append("{not json")
            bad.add(line)
            continue
        os_name = "ios" if line % 3 == 0 else "android"
        if os_name == "ios":
            ios.add(line)
        records.append(endpoint(line, Demographic={"Platform": os_name}))
    write_jsonl(path, records)
    return path, ios, bad


def outcome_lines(out: Path) -> list[int]:
    return [o["Line"] for o in read_jsonl(out / "outcomes.jsonl")]


pytestmark = pytest.mark.anyio


async def test_the_config_key_narrows_the_run_and_summary_counts_scanned(tmp_path: Path) -> None:
    source, ios, bad = export(tmp_path / "export.jsonl", 300)
    write_definition(tmp_path / "ios.json", platform("iOS"))
    # Relative to the config file, like [segment] source.
    settings = make_settings(tmp_path, segment={"source": "export.jsonl",
                                                "definition": "ios.json"})  # fmt: skip
    assert settings.segment_definition == str(tmp_path / "ios.json")
    out = tmp_path / "out"
    summary = await dispatch(settings, out_dir=out, progress=False)
    lines = outcome_lines(out)
    # In the segment, plus the unreadable lines (they can't be evaluated), under their
    # physical line numbers, each once; nothing for the android records.
    assert sorted(lines) == sorted(ios | bad) and len(lines) == len(set(lines))
    assert summary.by_status == {"SUCCESS": len(ios), "INVALID": len(bad)}
    written = json.loads((out / "summary.json").read_text())
    assert written["Total"] == len(ios) + len(bad) == summary.total
    assert written["Scanned"] == 300 == summary.scanned
    run = json.loads((out / "run.json").read_text())
    assert run["SegmentDefinition"] == str(tmp_path / "ios.json")
    assert source.exists()


async def test_without_a_definition_scanned_equals_total(tmp_path: Path) -> None:
    export(tmp_path / "export.jsonl", 120)
    settings = make_settings(tmp_path, segment={"source": "export.jsonl"})
    summary = await dispatch(settings, out_dir=tmp_path / "out", progress=False)
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["Scanned"] == written["Total"] == 120 == summary.scanned


async def test_the_argument_overrides_the_config_key(tmp_path: Path) -> None:
    _, ios, bad = export(tmp_path / "export.jsonl", 200)
    write_definition(tmp_path / "android.json", platform("android"))
    write_definition(tmp_path / "ios.json", platform("ios"))
    settings = make_settings(tmp_path, segment={"source": "export.jsonl",
                                                "definition": "android.json"})  # fmt: skip
    await dispatch(settings, segment_definition=str(tmp_path / "ios.json"),
                   out_dir=tmp_path / "out", progress=False)  # fmt: skip
    assert sorted(outcome_lines(tmp_path / "out")) == sorted(ios | bad)


class ManualClock:
    """Time moves only when told to (no waiting in tests)."""

    def __init__(self, now: datetime) -> None:
        self.time = now

    def now(self) -> datetime:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)
        await anyio.lowlevel.checkpoint()


class StoppingSender:
    """Records what it sends; sets ``stop`` at its first call (a Ctrl-C mid-run)."""

    max_batch = 50

    def __init__(self, stop: anyio.Event | None = None) -> None:
        self.stop = stop
        self.sent: list[str] = []

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        self.sent.extend(m.endpoint_id for m in messages)
        if self.stop is not None:
            self.stop.set()
        return [SendResult.ok() for _ in messages]

    async def aclose(self) -> None:
        return None


async def test_a_resumed_run_judges_recency_at_the_original_start(tmp_path: Path) -> None:
    # Every other endpoint was active an hour before T0; the rest two days before it. A
    # day later, none of them is active in the last 24 hours any more.
    n = 5000
    records = []
    for i in range(1, n + 1):
        seen = T0 - (timedelta(hours=1) if i % 2 else timedelta(days=2))
        records.append(endpoint(i, EffectiveDate=seen.isoformat().replace("+00:00", "Z")))
    write_jsonl(tmp_path / "export.jsonl", records)
    active = {f"ep-{i}" for i in range(1, n + 1) if i % 2}
    write_definition(tmp_path / "recent.json",
                     {"Behavior": {"Recency": {"Duration": "HR_24", "RecencyType": "ACTIVE"}}})
    settings = make_settings(tmp_path, segment={"source": "export.jsonl",
                                                "definition": "recent.json"})  # fmt: skip
    out = tmp_path / "out"
    clock = ManualClock(T0)
    stop = anyio.Event()
    first = StoppingSender(stop)
    with pytest.raises(RunInterrupted) as stopped:
        await dispatch(settings, out_dir=out, progress=False, clock=clock, stop=stop,
                       senders={"SMS": first})  # fmt: skip
    run_id = stopped.value.run_id
    settled = {o["EndpointId"] for o in read_jsonl(out / "outcomes.jsonl")}
    assert settled and settled < active, "the first attempt stopped part way"

    clock.time = T0 + timedelta(days=1)
    second = StoppingSender()
    summary = await dispatch(settings, out_dir=out, progress=False, clock=clock,
                             run_id=run_id, resume=True, senders={"SMS": second})  # fmt: skip
    outcomes = Counter(o["EndpointId"] for o in read_jsonl(out / "outcomes.jsonl"))
    assert set(outcomes) == active and max(outcomes.values()) == 1
    assert Counter(first.sent + second.sent) == Counter(dict.fromkeys(active, 1))
    assert summary.total == len(active) and summary.scanned == n
    assert summary.started_at == "2026-10-15T12:00:00.000Z"

    # The same definition judged at the resume's own time selects nobody: the resume
    # above kept the segment only because it measured from the original start.
    fresh = await dispatch(settings, out_dir=tmp_path / "fresh", progress=False, clock=clock,
                           senders={"SMS": StoppingSender()})  # fmt: skip
    assert fresh.total == 0 and fresh.scanned == n


async def test_resume_refuses_another_definition(tmp_path: Path) -> None:
    export(tmp_path / "export.jsonl", 3000)
    ios = write_definition(tmp_path / "ios.json", platform("ios"))
    settings = make_settings(tmp_path, segment={"source": "export.jsonl",
                                                "definition": "ios.json"})  # fmt: skip
    stop = anyio.Event()
    with pytest.raises(RunInterrupted) as stopped:
        await dispatch(settings, out_dir=tmp_path / "out", progress=False, stop=stop,
                       senders={"SMS": StoppingSender(stop)})  # fmt: skip
    write_definition(ios, platform("android"))  # edited between the attempts
    with pytest.raises(InputChanged) as changed:
        await dispatch(settings, out_dir=tmp_path / "out", progress=False,
                       run_id=stopped.value.run_id, resume=True)  # fmt: skip
    assert "segment definition" in str(changed.value)
    assert "--force-changed-input" in str(changed.value)


class RefusingSender:
    """Refuses every message, provably unsent (a retry may send it), and notes who."""

    max_batch = 50

    def __init__(self) -> None:
        self.tried: list[str] = []

    async def send(self, messages: Sequence[Message]) -> list[SendResult]:
        self.tried.extend(m.endpoint_id for m in messages)
        return [SendResult(Status.TEMPORARY_FAILURE, "down", unsent=True) for _ in messages]

    async def aclose(self) -> None:
        return None


async def test_a_retry_applies_the_definition_the_run_started_with(tmp_path: Path) -> None:
    _, ios, bad = export(tmp_path / "export.jsonl", 200)
    write_definition(tmp_path / "ios.json", platform("ios"))
    # Given by argument (the flag), not by the config: only the run record has it.
    settings = make_settings(tmp_path, segment={"source": "export.jsonl"})
    out = tmp_path / "out"
    first = await dispatch(settings, segment_definition=str(tmp_path / "ios.json"),
                           out_dir=out, progress=False,
                           senders={"SMS": RefusingSender()})  # fmt: skip
    assert first.by_status == {"TEMPORARY_FAILURE": len(ios), "INVALID": len(bad)}
    sender = StoppingSender()
    again = await dispatch(settings, run_id=first.run_id, retry=["TEMPORARY_FAILURE"],
                           out_dir=out, progress=False, senders={"SMS": sender})  # fmt: skip
    assert sorted(sender.sent) == sorted(f"ep-{line}" for line in ios)
    assert again.by_status == {"SUCCESS": len(ios), "INVALID": len(bad)}
    assert sorted(outcome_lines(out)) == sorted(ios | bad)
    assert again.scanned == 200 and again.total == len(ios | bad)


PROCESS_CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "defined"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{User.UserAttributes.FirstName}}"
[segment]
source = "export.jsonl"
definition = "ios.json"
"""


def test_two_processes_give_the_outcomes_one_gives(tmp_path: Path) -> None:
    from dispatcher import load_settings

    # Twins: an android record (outside the segment) shares its address with a later
    # ios one. Outside the segment, it must not make its in-segment twin a duplicate.
    records = export_with_twins(1200)
    write_jsonl(tmp_path / "export.jsonl", records)
    write_definition(tmp_path / "ios.json", platform("ios"))
    (tmp_path / "c.toml").write_text(PROCESS_CONFIG)
    settings = load_settings(tmp_path / "c.toml")
    one = anyio.run(lambda: dispatch(settings, out_dir=tmp_path / "one", progress=False))
    two = anyio.run(lambda: dispatch(settings, out_dir=tmp_path / "two", progress=False,
                                     processes=2))  # fmt: skip

    def outcomes(out: Path) -> set[tuple[int, str | None, str]]:
        found = read_jsonl(out / "outcomes.jsonl")
        assert len({o["Line"] for o in found}) == len(found), "a record has two outcomes"
        return {(o["Line"], o["EndpointId"], o["Status"]) for o in found}

    assert outcomes(tmp_path / "two") == outcomes(tmp_path / "one")
    assert two.by_status == one.by_status and two.scanned == one.scanned == 1200
    assert {"SUCCESS", "DUPLICATE_ADDRESS", "INVALID"} <= set(one.by_status)
    ios_lines = {line for line, r in enumerate(records, 1)
                 if isinstance(r, dict) and r["Demographic"]["Platform"] == "ios"}  # fmt: skip
    bad = {line for line, r in enumerate(records, 1) if isinstance(r, str)}
    assert {line for line, _, _ in outcomes(tmp_path / "two")} == ios_lines | bad
    # ep-10's twin (line 5, android) is outside the segment: ep-10 is sent, not a duplicate.
    assert (10, "ep-10", "SUCCESS") in outcomes(tmp_path / "one")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


CLI_CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "defined"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi"
[segment]
source = "export.jsonl"
"""


def test_the_command_line_flag(tmp_path: Path) -> None:
    _, ios, bad = export(tmp_path / "export.jsonl", 150)
    write_definition(tmp_path / "ios.json", platform("ios"))
    (tmp_path / "c.toml").write_text(CLI_CONFIG)
    done = cli("run", "c.toml", "--segment-definition", "ios.json", "--out", "out",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(outcome_lines(tmp_path / "out")) == sorted(ios | bad)
    summary = json.loads(done.stdout)
    assert summary["Scanned"] == 150 and summary["Total"] == len(ios | bad)
    assert f"{len(ios | bad)} records of 150 scanned" in done.stderr


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("dispatcher:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_definition_that_cannot_be_used_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    export(tmp_path / "export.jsonl", 10)
    (tmp_path / "c.toml").write_text(CLI_CONFIG + 'definition = "missing.json"\n')
    line = one_line_error(cli("run", "c.toml", "--out", "out", cwd=tmp_path))
    assert "c.toml: segment.definition: can't read the segment definition" in line
    assert not (tmp_path / "out" / "outcomes.jsonl").exists()

    line = one_line_error(cli("run", "c.toml", "--segment-definition", "nope.json",
                              "--out", "out", cwd=tmp_path))  # fmt: skip
    assert "--segment-definition: can't read the segment definition nope.json" in line

    bad = definition({"Demographic": {"Platfrom": {"DimensionType": "INCLUSIVE",
                                                   "Values": ["ios"]}}})  # fmt: skip
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    line = one_line_error(cli("run", "c.toml", "--segment-definition", "bad.json",
                              "--out", "out", cwd=tmp_path))  # fmt: skip
    assert "bad.json: SegmentResponse.SegmentGroups.Groups[0].Dimensions[0]" in line
    assert "Platfrom" in line

    (tmp_path / "c.toml").write_text(CLI_CONFIG + 'definition = ""\n')
    line = one_line_error(cli("run", "c.toml", "--out", "out", cwd=tmp_path))
    assert "segment.definition" in line


def test_the_benchmark_runs_at_a_small_size(tmp_path: Path) -> None:
    from benchmarks.bench_definition import measure_definition

    figures = measure_definition(3000, tmp_path, rounds=1, run_endpoints=1000)
    assert 0 < figures["in_segment"] < figures["endpoints"] == 3000
    runs = figures["runs"]
    assert runs["run"]["Scanned"] == runs["run+definition"]["Scanned"] == 1000
    assert runs["run"]["Total"] == 1000 > runs["run+definition"]["Total"] > 0
    assert "ratio_to_run" in runs["run+definition"]


async def test_progress_follows_the_scan_of_the_source(tmp_path: Path) -> None:
    from dispatcher.progress import Counters
    from dispatcher.segments import open_source
    from dispatcher.segments.definition import DefinedSource, load_definition

    path, _, _ = export(tmp_path / "export.jsonl", 3000)
    ios = write_definition(tmp_path / "ios.json", platform("ios"))
    matches = compile_definition(load_definition(ios), now=T0)
    source = DefinedSource(open_source(str(path)), matches)
    counters = Counters(position=source.progress)
    assert counters.fraction() is None, "nothing read yet"
    async for batch in source.batches():
        counters.read += len(batch)
    # Every byte of the export was read, though only a third of its records were kept.
    assert counters.fraction() == 1.0
    assert counters.read == source.counts.kept < source.scanned == 3000
