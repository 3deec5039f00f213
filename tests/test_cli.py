"""The ``dispatcher`` command as users run it: exit codes, files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dispatcher(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_example_campaign_runs_and_accounts_for_every_record(tmp_path: Path) -> None:
    result = dispatcher("run", "config/example.toml", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    segment = (ROOT / "config" / "sample-segment.jsonl").read_text().splitlines()
    outcomes = [json.loads(x) for x in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert summary["Total"] == len(segment) == len(outcomes)
    assert sum(summary["ByStatus"].values()) == summary["Total"]
    assert sorted(o["Line"] for o in outcomes) == list(range(1, len(segment) + 1))
    assert set(summary) >= {
        "RunId",
        "Total",
        "ByStatus",
        "HookInvocations",
        "StartedAt",
        "FinishedAt",
    }
    assert summary["HookInvocations"] >= 1
    assert json.loads(result.stdout) == summary  # stdout holds the summary JSON, only
    assert f"RunId {summary['RunId']}" in result.stderr
    sent = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert len(sent) == summary["ByStatus"]["SUCCESS"]
    sms = next(m for m in sent if m["ChannelType"] == "SMS")
    assert set(sms) >= {"EndpointId", "ChannelType", "Address", "Title", "Body"}
    assert (
        "your score is 6" in sms["Body"]
        or "your score is 7" in sms["Body"]
        or ("your score is 8" in sms["Body"])
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CONFIG = """
[project]
ApplicationId = "a"
Region = "us-east-1"
[campaign]
Id = "c"
[campaign.MessageConfiguration.SMSMessage]
Body = "hi"
[segment]
source = "seg.jsonl"
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[campaign.Hook]\nMode = 'SEND'\n", "campaign.Hook.Mode: must be FILTER or DELIVERY"),
        (
            "[dispatch]\nhook_concurency = 3\n",
            "dispatch.hook_concurency: unknown key (did you mean 'hook_concurrency'?)",
        ),
        ("[dispatch]\nhook_concurrency = 0\n", "dispatch.hook_concurrency: must be > 0"),
        (
            "[campaign.Limits]\nMessagesPerSecond = 50000\n",
            "campaign.Limits.MessagesPerSecond: must be between 1 and 20000",
        ),
        (
            "[campaign.Hook]\nLambdaFunctionName = 'h'\n"
            "[functions.h]\npython = 'nope_missing_module:handler'\n",
            "functions.h.python: hook module 'nope_missing_module' not found",
        ),
        (
            "[campaign.Hook]\nLambdaFunctionName = 'h'\n"
            "[functions.h]\npython = 'missing.py:handler'\n",
            "functions.h.python: hook file",
        ),
        ("[channels.EMAIL]\nsender = 'pigeon'\n", "channels.EMAIL.sender: unknown sender 'pigeon'"),
        (
            "[campaign.MessageConfiguration.EmailMessage]\nTitle = '{{#x}}'\n",
            "campaign.MessageConfiguration.EMAIL.Title: invalid template",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line_naming_file_and_key(
    tmp_path: Path, extra: str, message: str
) -> None:
    write(tmp_path / "seg.jsonl", '{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n')
    cfg = write(tmp_path / "c.toml", CONFIG + extra)
    result = dispatcher("run", str(cfg), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(cfg) in lines[0] and message in lines[0], lines[0]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert dispatcher("run").returncode == 2
    assert dispatcher("launch").returncode == 2
    missing = dispatcher("run", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr
    bad_toml = write(tmp_path / "bad.toml", "[project\n")
    result = dispatcher("run", str(bad_toml))
    assert result.returncode == 2 and "invalid TOML" in result.stderr
    cfg = write(tmp_path / "c.toml", CONFIG)
    result = dispatcher("run", str(cfg), "--segment", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert "--segment: segment source" in result.stderr and "Traceback" not in result.stderr


def test_hook_module_that_raises_at_import_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path / "seg.jsonl", '{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n')
    write(tmp_path / "h.py", "raise RuntimeError('no DB configured')\n")
    cfg = write(
        tmp_path / "c.toml",
        CONFIG + "[campaign.Hook]\nLambdaFunctionName = 'h'\n"
        "[functions.h]\npython = 'h.py:handler'\n",
    )
    result = dispatcher("run", str(cfg), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "RuntimeError: no DB configured" in result.stderr and "Traceback" not in result.stderr


def test_csv_segment_via_flag(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", CONFIG)
    seg = write(tmp_path / "people.txt", "Id,ChannelType,Address\na,SMS,+1\nb,SMS\n")
    result = dispatcher(
        "run",
        str(cfg),
        "--segment",
        str(seg),
        "--segment-format",
        "csv",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["ByStatus"] == {"SUCCESS": 1, "INVALID": 1}
