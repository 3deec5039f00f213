"""The benchmark harness at a small size, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_harness_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--endpoints", "2000", "--memory-endpoints",
         "3000", "--repeat", "1", "--json", str(out), "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["scenarios"]) == {"json_floor", "ceiling", "inprocess",
                                        "inprocess_no_ledger", "processes_2", "lambda_lean",
                                        "naive_boto3_threads", "lambda_100ms_default",
                                        "naive_100ms"}
    for name, row in report["scenarios"].items():
        assert row["endpoints"] == 2000, name  # every scenario saw the whole segment
        assert row["endpoints_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert report["scenarios"]["lambda_lean"]["invocations_per_s"] > 0
    assert set(report["transport"]) == {"lean", "stock", "floor"}
    assert {int(k) for k in report["memory"]} == {2000, 3000}
    assert all(row["endpoints"] == int(size) for size, row in report["memory"].items())
    assert "ratios (same run):" in result.stdout
    # Every issue 14 target has its row, printed beside its measured figure.
    rows = {row["target"].split()[0] for row in report["targets"]}
    assert rows == {"1", "2", "3", "4", "5", "6", "7"}
    for row in report["targets"]:
        assert row["target"] in result.stdout and row["measured"]
    assert report["throttling"]["endpoints"] == 2000
    assert set(report["channels"]) == {"ses", "sms", "push", "wire"}
