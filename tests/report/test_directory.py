"""Building the report from a real run's output directory (the demo, run as a user runs
it), from its ledger, and through ``dispatcher report``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from dispatcher.cli.common import Parser
from dispatcher.cli.report import register
from dispatcher.errors import ConfigError
from dispatcher.report import render_report, report_data
from dispatcher.report.data import held_run
from tests.report.htmlparse import Page
from tests.report.synth import outcome, synthetic_timeline, write_run_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo: ``dispatcher run config/example.toml --out DIR``."""
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "run", "config/example.toml", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def outcomes_of(out: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (out / "outcomes.jsonl").read_bytes().splitlines()]


def command(argv: list[str]) -> int:
    parser = Parser(prog="dispatcher")
    register(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    args: argparse.Namespace = parser.parse_args(argv)
    return int(args.func(args))


def test_the_demo_directory_makes_a_report(demo: Path) -> None:
    summary = orjson.loads((demo / "summary.json").read_bytes())
    data = report_data(demo)
    assert data.run_id == summary["RunId"] == held_run(demo)
    assert dict(data.by_status) == summary["ByStatus"]
    assert data.total == summary["Total"] == len(outcomes_of(demo))
    assert data.state == "FINISHED"
    assert data.hook_invocations == summary["HookInvocations"]
    assert (data.started_at, data.finished_at) == (summary["StartedAt"], summary["FinishedAt"])
    # The config summary, read again from the config file run.json names.
    assert data.config.campaign_name == "Spring sale"
    assert data.config.hook is not None and data.config.hook.startswith("credit-score (FILTER)")
    assert set(data.config.channels) == {"SMS", "EMAIL", "GCM"}
    # Treatments and reasons agree with the outcome log, line for line.
    lines = outcomes_of(demo)
    by_treatment = Counter((str(o["TreatmentId"] or ""), o["Status"]) for o in lines)
    assert {(t, s): n for t, c in data.treatments.items() for s, n in c.items()} == by_treatment
    assert sum(r.count for r in data.reasons) == data.total - data.by_status["SUCCESS"]
    for reason in data.reasons:
        assert 1 <= len(reason.samples) <= 5
        for sample in reason.samples:
            assert any((o["EndpointId"] or f"line {o['Line']}") == sample
                       and o["Status"] == reason.status and (o["Reason"] or "") == reason.reason
                       for o in lines)  # fmt: skip
    page = Page(render_report(data))
    assert page.row("outcomes", "SUCCESS")[2] == f"{summary['ByStatus']['SUCCESS']:,}"
    # The run recorded its timeline: the report draws it.
    assert data.timeline is not None and data.timeline.run_id == summary["RunId"]
    totals = data.timeline.totals()
    assert totals["sent"] == summary["ByStatus"]["SUCCESS"]  # every send was counted
    assert totals["hook_calls"] == summary["HookInvocations"]  # the demo hook never retries
    assert 'class="pygal-chart"' in render_report(data)
    assert (demo / "report.html").exists()  # `dispatcher run` wrote one at the end


def test_dispatcher_report_writes_report_html(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = held_run(demo)
    assert run_id is not None
    assert command(["report", run_id, "--out", str(demo)]) == 0
    assert f"dispatcher: report {demo / 'report.html'}" in capsys.readouterr().err
    page = Page((demo / "report.html").read_text())
    assert "finished" in page.text and run_id in page.text


def test_another_run_id_is_refused(demo: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds run .*, not nope"):
        command(["report", "nope", "--out", str(demo)])


def test_a_directory_without_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no run in .* and no ledger"):
        command(["report", "r", "--out", str(tmp_path)])


def test_the_report_from_the_ledger(demo: Path, tmp_path: Path) -> None:
    run_id = held_run(demo)
    assert run_id is not None
    elsewhere = tmp_path / "report"
    assert command(["report", run_id, "--ledger", str(demo / "ledger.sqlite"),
                    "--out", str(elsewhere)]) == 0  # fmt: skip
    page = Page((elsewhere / "report.html").read_text())
    summary = orjson.loads((demo / "summary.json").read_bytes())
    for status, n in summary["ByStatus"].items():
        assert page.row("outcomes", status)[2] == f"{n:,}"
    assert "read from the ledger" in page.text
    with pytest.raises(ConfigError, match="not in the ledger"):
        command(["report", "nope", "--ledger", str(demo / "ledger.sqlite"),
                 "--out", str(tmp_path / "x")])  # fmt: skip


def test_the_command_is_registered(demo: Path) -> None:
    from dispatcher.cli import build_parser

    choices = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in choices.choices:
        pytest.skip("dispatcher/cli/__init__.py does not register `report` yet (the lead's step)")
    run_id = held_run(demo)
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "report", str(run_id), "--out", str(demo)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "report.html" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "dispatcher", "report", "nope", "--out", str(demo)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1


def test_an_unfinished_run_and_a_dry_run(tmp_path: Path) -> None:
    out = write_run_dir(tmp_path / "out", [outcome(1, "SUCCESS"), outcome(2, "THROTTLED", "x")],
                        summary=False, timeline=synthetic_timeline(4))  # fmt: skip
    data = report_data(out)
    assert data.state is None and data.by_status == {"SUCCESS": 1, "THROTTLED": 1}
    assert any("has not finished" in n for n in data.notes)
    assert data.timeline is not None
    dry = write_run_dir(tmp_path / "dry", [outcome(1, "SUCCESS")], summary=False, run=False)
    data = report_data(dry, run_id="dry-1", dry_run=True)
    assert data.run_id == "dry-1" and data.dry_run


def test_a_timeline_of_another_run_is_not_drawn(tmp_path: Path) -> None:
    timeline = synthetic_timeline(3)
    timeline.run_id = "older-run"
    out = write_run_dir(tmp_path / "out", [outcome(1, "SUCCESS")], timeline=timeline)
    data = report_data(out)
    assert data.timeline is None
    assert any("timeline.json is of run older-run" in n for n in data.notes)


def test_a_config_file_that_is_gone_leaves_a_partial_summary(tmp_path: Path) -> None:
    out = write_run_dir(tmp_path / "out", [outcome(1, "SUCCESS")],
                        config=str(tmp_path / "gone.toml"))  # fmt: skip
    data = report_data(out)
    assert data.config.campaign_id == "camp-1" and data.config.campaign_name is None
    assert any("could not be read again" in n for n in data.notes)
