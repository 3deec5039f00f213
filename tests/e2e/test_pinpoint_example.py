"""config/pinpoint, run as docs/migrating-from-pinpoint.md walks through it: a DAILY
local-time campaign over a dimensional segment (get-segment.json) of an 80-endpoint
export. The outcomes are exactly the segment's endpoints, worked out here with plain
Python from the definition's simple dimensions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "pinpoint"
JSON_FLAGS = ("--campaign-json", "config/pinpoint/get-campaign.json",
              "--settings-json", "config/pinpoint/get-application-settings.json")  # fmt: skip


def dispatcher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def in_segment(e: dict[str, Any]) -> bool:
    """get-segment.json's two groups (Include ALL), spelled out by hand.

    Group 1 (ALL): Platform ios/android/web (case ignored) and Country not BR.
    Group 2 (ANY): Interests shoes or travel, visits >= 5, or FirstName not Quinn.
    """
    platform = str(e.get("Demographic", {}).get("Platform", "")).lower()
    country = str(e.get("Location", {}).get("Country", "")).upper()
    group1 = platform in {"ios", "android", "web"} and country != "BR"
    interests = e.get("Attributes", {}).get("Interests", [])
    visits = e.get("Metrics", {}).get("visits")
    names = e.get("User", {}).get("UserAttributes", {}).get("FirstName", [])
    group2 = (bool({"shoes", "travel"} & set(interests))
              or (isinstance(visits, float | int) and visits >= 5)
              or "Quinn" not in names)  # fmt: skip
    return group1 and group2


def test_the_walkthrough_runs_and_sends_exactly_the_segment(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "config" / "pinpoint")
    endpoints = [json.loads(line) for line in
                 (EXAMPLE / "endpoints.jsonl").read_text().splitlines() if line]  # fmt: skip
    expected = {e["Id"] for e in endpoints if in_segment(e)}
    assert 0 < len(expected) < len(endpoints), "the definition must select some, not all"

    schedule = dispatcher("schedule", "config/pinpoint/campaign.toml", *JSON_FLAGS[:2],
                          "--out", "out/pinpoint", cwd=tmp_path)  # fmt: skip
    assert schedule.returncode == 0, schedule.stderr
    preview = dispatcher("preview", "config/pinpoint/campaign.toml", *JSON_FLAGS, "-n", "3",
                         cwd=tmp_path)  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    previewed = [json.loads(line) for line in preview.stdout.splitlines()]
    assert previewed and {m["EndpointId"] for m in previewed} <= expected

    run = dispatcher("run", "config/pinpoint/campaign.toml", *JSON_FLAGS, "--now",
                     "--out", "out/pinpoint", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    out = tmp_path / "out" / "pinpoint"
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    ids = [o["EndpointId"] for o in outcomes]
    # QUIET_TIME and NO_TIMEZONE vary with the hour; who has an outcome does not.
    assert set(ids) == expected and len(ids) == len(expected)
    by_id = {e["Id"]: line for line, e in enumerate(endpoints, 1)}
    assert all(o["Line"] == by_id[o["EndpointId"]] for o in outcomes), "physical lines"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["Scanned"] == len(endpoints) == 80
    assert summary["Total"] == len(expected) == sum(summary["ByStatus"].values())
    assert {"SUCCESS", "FILTERED", "NO_TIMEZONE"} <= set(summary["ByStatus"])
    sent = [json.loads(line) for line in (out / "outbox.jsonl").read_text().splitlines()]
    assert {m["EndpointId"] for m in sent} <= expected
    assert len(sent) == summary["ByStatus"]["SUCCESS"]
    report = (out / "report.html").read_text()
    assert f"80 ({len(expected)} in the segment)" in report
    assert f"{len(expected)} records of 80 scanned" in run.stderr

    again = dispatcher("run", "config/pinpoint/campaign.toml", *JSON_FLAGS, "--now",
                       "--out", "out/pinpoint", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["AlreadySent"] is True
