"""The Timeline: per-second bucketing, latency percentiles from the histogram, the JSON
file, resume. (Its cost per call is measured in docs/report.md, not asserted here.)"""

from __future__ import annotations

import math
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.errors import ConfigError
from dispatcher.latency import (
    BUCKETS,
    PER_OCTAVE,
    bucket_bounds,
    bucket_of,
    merge,
    new_histogram,
    percentile,
)
from dispatcher.timeline import Timeline
from tests.report.synth import FakeClock, synthetic_timeline

ONE_BUCKET = 2 ** (1 / PER_OCTAVE)  # the ratio between a bucket's edges


def exact(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: the definition ``percentile`` follows."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def at(clock: FakeClock, offset: float) -> FakeClock:
    clock.now = 1000.0 + offset
    return clock


def test_counts_land_in_their_second() -> None:
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock, ceiling=100)
    at(clock, 0.2)
    t.sent(50, "SMS")
    at(clock, 0.99)
    t.sent(10, "SMS")
    t.outcome("SUCCESS", 60)
    at(clock, 1.0)
    t.sent(5, "EMAIL")
    at(clock, 4.5)
    t.sent(7, "SMS")
    t.outcome("PERMANENT_FAILURE")
    t.throttled(3)
    t.hook(0.05, ok=True)
    t.hook(0.07, ok=False)
    at(clock, 6.2)
    t.finish()

    assert t.seconds == 7  # the duration, rounded up
    assert t.sends() == {"EMAIL": [0, 5, 0, 0, 0, 0, 0], "SMS": [60, 0, 0, 0, 7, 0, 0]}
    assert t.outcomes() == {"PERMANENT_FAILURE": [0, 0, 0, 0, 1, 0, 0],
                            "SUCCESS": [60, 0, 0, 0, 0, 0, 0]}  # fmt: skip
    assert t.hook_calls() == ([0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0, 0])
    assert t.throttles() == [0, 0, 0, 0, 3, 0, 0]
    assert t.totals() == {"sent": 72, "hook_calls": 2, "hook_failed": 1, "throttled": 3}
    histograms = t.latency_histograms()
    assert [h is not None for h in histograms] == [False] * 4 + [True] + [False] * 2
    assert sum(histograms[4] or []) == 2


def test_a_clock_before_the_start_counts_in_second_zero() -> None:
    clock = FakeClock()
    t = Timeline(clock.now + 3, clock=clock)
    t.sent(1, "SMS")
    t.outcome("SUCCESS")
    t.hook(0.01, ok=True)
    t.throttled()
    assert t.sends()["SMS"][0] == 1
    assert t.outcomes()["SUCCESS"][0] == 1
    assert t.hook_calls()[0][0] == 1
    assert t.throttles()[0] == 1


def test_a_long_run_grows_its_series() -> None:
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock)
    for second in range(0, 7200, 7):
        at(clock, second + 0.5)
        t.sent(second, "SMS")
        t.hook(0.001 * (1 + second % 50), ok=True)
    at(clock, 7200)
    t.finish()
    sends = t.sends()["SMS"]
    assert len(sends) == 7200
    assert sum(sends) == sum(range(0, 7200, 7))
    assert sends[7 * 100] == 700 and sends[701] == 0


@given(st.floats(min_value=1e-7, max_value=1e5, allow_nan=False))
def test_a_latency_falls_inside_its_bucket(latency: float) -> None:
    bucket = bucket_of(latency)
    low, high = bucket_bounds(bucket)
    assert 0 <= bucket < BUCKETS
    if 0 < bucket < BUCKETS - 1:
        assert low <= latency < high * (1 + 1e-12)
    elif bucket == 0:
        assert latency < high * (1 + 1e-12)
    else:
        assert latency >= low * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-4, max_value=100.0), min_size=1, max_size=400),
    st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_histogram_percentiles_are_within_one_bucket_of_exact(
    samples: list[float], q: float
) -> None:
    histogram = new_histogram()
    for s in samples:
        histogram[bucket_of(s)] += 1
    estimate = percentile(histogram, q)
    truth = exact(samples, q)
    assert estimate is not None
    # Same bucket as the exact percentile, so at most one bucket's width apart ...
    assert bucket_of(estimate) == bucket_of(truth)
    assert truth / ONE_BUCKET <= estimate <= truth * ONE_BUCKET
    # ... and, the bucket's geometric middle, within half a bucket (4.4 %).
    assert abs(math.log2(estimate / truth)) <= 0.5 / PER_OCTAVE + 1e-9


def test_percentiles_per_second_and_overall_from_a_timeline() -> None:
    rng = random.Random(1)
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock)
    per_second: list[list[float]] = [[] for _ in range(5)]
    for second, samples in enumerate(per_second):
        for _ in range(300):
            latency = rng.lognormvariate(math.log(0.05 * (second + 1)), 0.7)
            samples.append(latency)
            at(clock, second + rng.random() * 0.99)
            t.hook(latency, ok=True)
    everything = [s for samples in per_second for s in samples]
    for q in (0.5, 0.95, 0.99):
        for second, samples in enumerate(per_second):
            histogram = t.latency_histograms()[second]
            assert histogram is not None
            estimate = percentile(histogram, q)
            assert estimate is not None
            assert bucket_of(estimate) == bucket_of(exact(samples, q))
        overall = percentile(t.latency_overall(), q)
        assert overall is not None
        assert bucket_of(overall) == bucket_of(exact(everything, q))
    merged = merge(h for h in t.latency_histograms() if h is not None)
    assert list(merged) == list(t.latency_overall())


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile(new_histogram(), 0.5) is None
    assert percentile(Timeline(0.0, clock=lambda: 0.0).latency_overall(), 0.99) is None


def test_json_round_trip_keeps_everything(tmp_path: Path) -> None:
    t = synthetic_timeline(300, seed=3)
    t.attempts = [0, 120]
    t.run_id = "run-9"
    path = tmp_path / "timeline.json"
    t.write(path)
    back = Timeline.read(path)
    assert back.to_json() == t.to_json()
    assert back.sends() == t.sends()
    assert back.outcomes() == t.outcomes()
    assert back.hook_calls() == t.hook_calls()
    assert back.throttles() == t.throttles()
    assert [None if h is None else list(h) for h in back.latency_histograms()] == [
        None if h is None else list(h) for h in t.latency_histograms()
    ]
    assert (back.ceiling, back.started_at, back.attempts, back.run_id, back.seconds) == (
        t.ceiling, t.started_at, [0, 120], "run-9", t.seconds)  # fmt: skip


def test_json_keeps_only_non_empty_seconds() -> None:
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock)
    for second in (3, 4, 5, 900):
        at(clock, second + 0.1)
        t.sent(2, "SMS")
        t.hook(0.02, ok=True)
    at(clock, 3600)
    t.finish()
    data = t.to_json()
    assert data["Sent"] == {"SMS": [[3, [2, 2, 2]], [900, [2]]]}
    assert [s[0] for s in data["HookLatency"]["Seconds"]] == [3, 4, 5, 900]
    assert all(len(s[2]) == 1 for s in data["HookLatency"]["Seconds"])  # one bucket used
    assert len(orjson.dumps(data)) < 1000
    assert Timeline.from_json(orjson.loads(orjson.dumps(data))).seconds == 3600


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(Version=99),
        lambda d: d.pop("Sent"),
        lambda d: d.update(Sent={"SMS": [[5, [1]], [2, [1]]]}),
        lambda d: d["HookLatency"].update(PerOctave=4),
        lambda d: d["HookLatency"].update(Seconds=[[1, 250, [1, 2, 3, 4, 5, 6, 7]]]),
        lambda d: d.update(Duration="long"),
    ],
)
def test_a_damaged_file_is_refused(damage: object) -> None:
    data = synthetic_timeline(5).to_json()
    damage(data)  # type: ignore[operator]
    with pytest.raises(ConfigError, match="not a timeline"):
        Timeline.from_json(data)


def test_reading_a_file_that_is_not_a_timeline_names_it(tmp_path: Path) -> None:
    path = tmp_path / "timeline.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match=r"timeline\.json: not JSON"):
        Timeline.read(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a timeline"):
        Timeline.read(path)


def test_a_resumed_run_continues_after_the_first_attempt() -> None:
    first = synthetic_timeline(10, hook=True)
    clock = FakeClock()
    clock.now = 5000.0
    second = Timeline.resumed(first, clock.now, clock=clock, ceiling=500)
    at(clock, 4000.5)  # 0.5 s into the second attempt
    second.sent(9, "SMS")
    second.hook(0.01, ok=True)
    at(clock, 4002)
    second.finish()
    assert second.attempts == [0, 11]
    sms = second.sends()["SMS"]
    assert sms[:10] == first.sends()["SMS"]
    assert sms[10] == 0 and sms[11] == 9
    assert second.totals()["hook_calls"] == first.totals()["hook_calls"] + 1
    assert second.seconds == 13
    assert first.sends()["SMS"][0] != 0 and len(first.sends()["SMS"]) == 10  # untouched


def test_repr_shows_the_counters() -> None:
    assert repr(synthetic_timeline(2, hook=False)).startswith("Timeline(seconds=2, sent=")
