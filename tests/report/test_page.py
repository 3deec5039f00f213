"""The report page: counts and percentages, per-treatment tables, failure reasons with
samples, escaping of hostile data, offline-ness, and the odd runs (tiny, no hook, no
failures, nothing sent, two hours long)."""

from __future__ import annotations

import re

import pytest

from dispatcher.report import Reason, ReportData, RunConfig, render_report
from dispatcher.timeline import Timeline
from tests.report.htmlparse import Page
from tests.report.synth import FakeClock, synthetic_timeline

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


def data(**overrides: object) -> ReportData:
    base: dict[str, object] = dict(
        run_id="run-1",
        by_status={"SUCCESS": 900, "PERMANENT_FAILURE": 60, "FILTERED": 30, "HOLDOUT": 10},
        config=RunConfig(campaign_id="camp-1", campaign_name="Spring sale",
                         application_id="app-1", channels={"SMS": "outbox", "EMAIL": "ses"},
                         hook="credit-score (FILTER)", limits={"MessagesPerSecond": 500},
                         treatments={"0": "main", "1": "shorter text"}, holdout_percent=1),
        treatments={"0": {"SUCCESS": 600, "PERMANENT_FAILURE": 40, "FILTERED": 20},
                    "1": {"SUCCESS": 300, "PERMANENT_FAILURE": 20, "FILTERED": 10},
                    "": {"HOLDOUT": 10}},
        reasons=[Reason("PERMANENT_FAILURE", "address refused", 45,
                        ("ep-1", "ep-2", "ep-3", "ep-4", "ep-5")),
                 Reason("PERMANENT_FAILURE", "mailbox full", 15, ("ep-9",)),
                 Reason("FILTERED", "left out by the hook", 30, ("ep-7", "ep-8")),
                 Reason("HOLDOUT", "in the campaign's holdout group", 10, ("ep-6",))],
        started_at="2026-11-29T10:00:00.000Z",
        finished_at="2026-11-29T10:00:02.500Z",
        state="FINISHED",
        hook_invocations=21,
        timeline=synthetic_timeline(3, rate=300),
    )  # fmt: skip
    base.update(overrides)
    return ReportData(**base)  # type: ignore[arg-type]


def test_outcome_counts_and_percentages() -> None:
    page = Page(render_report(data()))
    assert page.row("outcomes", "SUCCESS")[2:4] == ["900", "90.0 %"]
    assert page.row("outcomes", "PERMANENT_FAILURE")[2:4] == ["60", "6.00 %"]
    assert page.row("outcomes", "FILTERED")[2:4] == ["30", "3.00 %"]
    assert page.row("outcomes", "HOLDOUT")[2:4] == ["10", "1.00 %"]
    assert page.row("outcomes", "Total")[1:3] == ["1,000", "100 %"]
    # Biggest first.
    statuses = [r[0] for r in page.tables["outcomes"][1:-1]]
    assert statuses == ["SUCCESS", "PERMANENT_FAILURE", "FILTERED", "HOLDOUT"]
    assert "Records 1,000" in page.text and "Failed 60 6.00 %" in page.text


def test_per_treatment_table() -> None:
    page = Page(render_report(data()))
    head = page.tables["treatments"][0]
    assert head[:2] == ["TreatmentId", "Records"]
    assert head[2] == "SUCCESS"  # sent first, then failures, then the rest
    assert head[3] == "PERMANENT_FAILURE"
    main = page.row("treatments", "0 main")
    assert main[1] == "660"
    cells = dict(zip(head, main, strict=True))
    assert cells["SUCCESS"] == "600 90.9 %"
    assert cells["PERMANENT_FAILURE"] == "40 6.06 %"
    assert cells["HOLDOUT"] == "0 0.00 %"
    other = dict(zip(head, page.row("treatments", "1 shorter text"), strict=True))
    assert other["Records"] == "330" and other["SUCCESS"] == "300 90.9 %"
    none = dict(zip(head, page.row("treatments", "- none (not assigned)"), strict=True))
    assert none["HOLDOUT"] == "10 100.0 %"


def test_one_treatment_has_no_treatment_table() -> None:
    page = Page(render_report(data(treatments={"0": {"SUCCESS": 1000}},
                                   config=RunConfig(campaign_id="c"))))  # fmt: skip
    assert "treatments" not in page.tables


def test_failure_reasons_with_counts_and_samples() -> None:
    page = Page(render_report(data()))
    failed = page.tables["reasons"][1:3]
    assert failed[0][:4] == ["PERMANENT_FAILURE", "address refused", "45", "75.0 %"]
    assert failed[0][4] == "ep-1 ep-2 ep-3 ep-4 ep-5"
    assert failed[1][:5] == ["PERMANENT_FAILURE", "mailbox full", "15", "25.0 %", "ep-9"]
    skipped = page.tables["reasons"][4:]
    assert skipped[0][:5] == ["FILTERED", "left out by the hook", "30", "75.0 %", "ep-7 ep-8"]
    assert skipped[1][:3] == ["HOLDOUT", "in the campaign's holdout group", "10"]


def test_more_than_ten_reasons_are_summed_up() -> None:
    reasons = [Reason("PERMANENT_FAILURE", f"reason {i}", 20 - i, (f"ep-{i}",)) for i in range(14)]
    page = Page(render_report(data(reasons=reasons,
                                   by_status={"PERMANENT_FAILURE": 189})))  # fmt: skip
    rows = page.tables["reasons"]
    assert len(rows) == 1 + 10 + 1
    assert rows[-1][:3] == ["4 other reasons", "34", "18.0 %"]  # 10 + 9 + 8 + 7 of 189


def test_hostile_strings_are_escaped() -> None:
    hostile = data(
        run_id=HOSTILE,
        by_status={"SUCCESS": 1, "PERMANENT_FAILURE": 1},
        config=RunConfig(campaign_id=HOSTILE, campaign_name=HOSTILE, application_id=HOSTILE,
                         segment=HOSTILE, config_file=HOSTILE, channels={HOSTILE: HOSTILE},
                         hook=HOSTILE, treatments={"0": HOSTILE, "1": HOSTILE},
                         dispatch={HOSTILE: HOSTILE}),
        treatments={"0": {"SUCCESS": 1}, HOSTILE: {HOSTILE: 1}},
        reasons=[Reason("PERMANENT_FAILURE", HOSTILE, 1, (HOSTILE, '"><svg onload=alert(2)>'))],
        started_at=HOSTILE,
        notes=[HOSTILE],
        timeline=hostile_timeline(),
    )  # fmt: skip
    html = render_report(hostile)
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "<svg onload" not in html
    page = Page(html)
    assert page.tags.get("script", 0) == 0 and page.tags.get("img", 0) == 0
    # The text still reads as the data said, once the escapes are undone.
    assert page.text.count(HOSTILE) >= 10
    assert all(not k.startswith("on") for _, attrs in page.attrs for k in attrs)


def hostile_timeline() -> Timeline:
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock, ceiling=10)
    t.sent(5, HOSTILE)  # a channel name is drawn in the legend
    t.outcome(HOSTILE, 5)
    t.hook(0.1, ok=True)
    clock.now += 1
    t.finish()
    return t


def test_the_page_is_self_contained() -> None:
    html = render_report(data(timeline=synthetic_timeline(120)))
    assert re.findall(r"https?://[^\s\"'<>)]*", html) == ["http://www.w3.org/2000/svg"] * 4
    for reference in ("src=", "href=", "@import", "url(", "<link", "<script", "<iframe"):
        assert reference not in html
    page = Page(html)
    assert page.tags["svg"] >= 4 and page.tags["style"] >= 1


def test_charts_are_drawn_with_the_ceiling() -> None:
    page_html = render_report(data(timeline=synthetic_timeline(120, ceiling=450)))
    page = Page(page_html)
    charts = [a.get("data-chart") for tag, a in page.attrs if tag == "figure"]
    assert charts == ["sends", "settled", "hook", "latency"]
    assert "MessagesPerSecond ceiling (450)" in page.text
    assert "p50" in page.text and "p95" in page.text and "p99" in page.text
    assert page_html.count('class="pygal-chart"') == 4


def test_a_tiny_run() -> None:
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock)
    clock.now += 0.2
    t.sent(3, "SMS")
    t.outcome("SUCCESS", 3)
    clock.now += 0.1
    t.finish()
    html = render_report(data(by_status={"SUCCESS": 3}, treatments={"0": {"SUCCESS": 3}},
                              reasons=[], timeline=t, hook_invocations=None,
                              started_at="2026-11-29T10:00:00.000Z",
                              finished_at="2026-11-29T10:00:00.300Z"))  # fmt: skip
    page = Page(html)
    assert page.row("outcomes", "SUCCESS")[2:4] == ["3", "100.0 %"]
    assert "No record failed." in page.text
    assert "Every record was sent or failed." in page.text
    assert "Duration 0.3 s 10 records/s" in page.text
    assert html.count('class="pygal-chart"') == 2  # sends and settled: no hook
    assert page.text.count("The hook was not called.") == 2


def test_a_run_that_sent_nothing() -> None:
    clock = FakeClock()
    t = Timeline(clock.now, clock=clock)
    t.outcome("FILTERED", 5)
    t.hook(0.2, ok=False)
    clock.now += 2
    t.finish()
    reasons = [Reason("FILTERED", "left out", 5, ())]
    html = render_report(data(by_status={"FILTERED": 5}, treatments={}, reasons=reasons,
                              timeline=t))  # fmt: skip
    page = Page(html)
    assert "No message was sent." in page.text
    assert "Sent 0 0.00 %" in page.text
    assert 'data-chart="hook"' in html and "failed" in page.text


def test_no_records_and_no_timeline() -> None:
    page = Page(render_report(ReportData(run_id="r", by_status={})))
    assert "No record was settled." in page.text
    assert "No timeline was recorded" in page.text
    assert "not finished" in page.text


def test_a_dry_run_says_so() -> None:
    assert "dry run: nothing was sent" in Page(render_report(data(dry_run=True))).text


@pytest.mark.parametrize("hours", [2])
def test_a_two_hour_run_stays_small(hours: int) -> None:
    timeline = synthetic_timeline(hours * 3600, rate=2000, ceiling=2000)
    html = render_report(data(timeline=timeline))
    assert len(html.encode()) < 1_000_000
    assert "mean per second over 12 seconds" in html
    assert "busiest second" in html
    page = Page(html)
    assert "2:00:00" in page.text  # the axis reaches the end of the run
