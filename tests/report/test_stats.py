"""Counting outcomes.jsonl: the fast path (regular expressions over blocks) agrees with
parsing every line, whatever the lines hold."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

import dispatcher.report.stats as stats_module
from dispatcher.errors import ConfigError
from dispatcher.report.stats import OTHER_REASONS, OutcomeStats
from tests.report.synth import outcome

NASTY_REASONS = [
    'bad "quoted" reason with "Status":"SUCCESS" inside',
    '"TreatmentId":"9" and a backslash \\ and "Status":"HOOK_FAILURE"',
    "<script>alert(1)</script>",
    "line\nbreak and unicode é 🚀",
    None,
]


def slow(path: Path) -> OutcomeStats:
    """The reference: parse every line."""
    reference = OutcomeStats()
    for line in path.read_bytes().splitlines():
        if line.strip():
            o = orjson.loads(line)
            reference.add(o["Status"], o.get("TreatmentId"), o.get("Reason"),
                          o.get("EndpointId"), o.get("Line"))  # fmt: skip
    return reference


def write(path: Path, lines: list[dict[str, object] | bytes]) -> Path:
    with path.open("wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else orjson.dumps(line) + b"\n")
    return path


def assert_same(a: OutcomeStats, b: OutcomeStats) -> None:
    assert a.by_status == b.by_status
    assert a.by_treatment == b.by_treatment
    assert a.reasons() == b.reasons()
    assert a.complete == b.complete


@pytest.mark.parametrize("block", [64, 1000, 4 << 20])
def test_the_fast_path_counts_what_parsing_counts(
    tmp_path: Path, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_module, "_BLOCK", block)  # lines cut across blocks
    rng = random.Random(5)
    statuses = ["SUCCESS"] * 8 + ["PERMANENT_FAILURE", "FILTERED", "HOOK_FAILURE", "INVALID"]
    lines: list[dict[str, object] | bytes] = [
        outcome(i, rng.choice(statuses), rng.choice(NASTY_REASONS),
                treatment=rng.choice(["0", "1", None, 'tr "x"']))
        for i in range(3000)
    ]  # fmt: skip
    path = write(tmp_path / "outcomes.jsonl", lines)
    fast = OutcomeStats()
    fast.feed_jsonl(path)
    assert fast.total == 3000
    assert_same(fast, slow(path))


def test_odd_lines_fall_back_to_parsing(tmp_path: Path) -> None:
    lines: list[dict[str, object] | bytes] = [
        outcome(1, "SUCCESS"),
        b"\n",  # a blank line
        b'{"EndpointId":"ep-2","Status":"SUCCESS"}\n',  # no TreatmentId
        b'{"TreatmentId":"1",  "Status" : "INVALID", "Reason":"spaced", "EndpointId":"ep-3"}\n',
        outcome(4, "THROTTLED", "slow down"),
    ]
    path = write(tmp_path / "outcomes.jsonl", lines)
    stats = OutcomeStats()
    stats.feed_jsonl(path)
    assert stats.by_status == {"SUCCESS": 2, "INVALID": 1, "THROTTLED": 1}
    assert stats.by_treatment == {"0": {"SUCCESS": 1, "THROTTLED": 1}, "": {"SUCCESS": 1},
                                  "1": {"INVALID": 1}}  # fmt: skip
    assert_same(stats, slow(path))


def test_a_file_without_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_bytes(orjson.dumps(outcome(1, "SUCCESS")) + b"\n" +
                     orjson.dumps(outcome(2, "OPT_OUT", "opted out")))  # fmt: skip
    stats = OutcomeStats()
    stats.feed_jsonl(path)
    assert stats.by_status == {"SUCCESS": 1, "OPT_OUT": 1}


def test_a_record_without_an_endpoint_id_is_sampled_by_its_line(tmp_path: Path) -> None:
    lines: list[dict[str, object] | bytes] = [
        {"EndpointId": None, "Line": 7, "Status": "INVALID", "Reason": "malformed JSON",
         "ChannelType": None, "TreatmentId": None},
        {"EndpointId": None, "Status": "INVALID", "Reason": "malformed JSON",
         "ChannelType": None, "TreatmentId": None},
    ]  # fmt: skip
    stats = OutcomeStats()
    stats.feed_jsonl(write(tmp_path / "o.jsonl", lines))
    (reason,) = stats.reasons()
    assert reason.count == 2 and reason.samples == ("line 7",)


def test_samples_are_capped_at_five(tmp_path: Path) -> None:
    path = write(tmp_path / "o.jsonl", [outcome(i, "PERMANENT_FAILURE", "nope") for i in range(9)])
    stats = OutcomeStats()
    stats.feed_jsonl(path)
    (reason,) = stats.reasons()
    assert (reason.status, reason.reason, reason.count) == ("PERMANENT_FAILURE", "nope", 9)
    assert reason.samples == ("ep-0", "ep-1", "ep-2", "ep-3", "ep-4")


def test_too_many_distinct_reasons_are_lumped_together() -> None:
    stats = OutcomeStats(max_reasons=3)
    for i in range(10):
        stats.add("PERMANENT_FAILURE", "0", f"reason {i}", f"ep-{i}")
    stats.add("PERMANENT_FAILURE", "0", "reason 1", "ep-x")
    rows = stats.reasons()
    assert not stats.complete
    assert sum(r.count for r in rows) == 11
    assert [(r.reason, r.count) for r in rows] == [
        (OTHER_REASONS, 7), ("reason 1", 2), ("reason 0", 1), ("reason 2", 1)]  # fmt: skip


def test_a_broken_line_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "outcomes.jsonl", [outcome(1, "SUCCESS"), b"{broken\n"])
    with pytest.raises(ConfigError, match=r"outcomes\.jsonl: not a JSON line: b'\{broken'"):
        OutcomeStats().feed_jsonl(path)
    path.write_bytes(b'{"EndpointId": "ep-1"}\n')
    with pytest.raises(ConfigError, match="without a Status"):
        OutcomeStats().feed_jsonl(path)
