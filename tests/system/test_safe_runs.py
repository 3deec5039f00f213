"""Safe to run a real campaign (issue 10), as an operator runs it: real processes,
signals, locks and exit codes. Sent once per ledger, one process at a time, loud when
it fails, previewable."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import endpoint, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "safe"
[campaign.Hook]
LambdaFunctionName = "h"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{User.UserAttributes.FirstName}}"
[campaign.MessageConfiguration.EmailMessage]
Title = "Hello"
Body = "Hi {{User.UserAttributes.FirstName}}"
[segment]
source = "seg.jsonl"
[functions.h]
python = "hook.py:handler"
[dispatch]
hook_concurrency = 2
"""

HOOK = """
import os, time
DELAY = float(os.environ.get("HOOK_DELAY", "0"))

def handler(event, context):
    if os.environ.get("HOOK_RAISES"):
        raise ValueError("downstream API down")
    time.sleep(DELAY)
    return event["Endpoints"]
"""


def campaign(tmp_path: Path, n: int = 200, config: str = CONFIG) -> Path:
    write_jsonl(tmp_path / "seg.jsonl",
                [endpoint(i, "SMS" if i % 3 else "EMAIL") for i in range(1, n + 1)])  # fmt: skip
    (tmp_path / "hook.py").write_text(HOOK)
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    return cfg


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def dispatcher(*args: str, environ: dict[str, str] | None = None,
               timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=ROOT, text=True,
                          capture_output=True, env=environ, timeout=timeout, **kw)  # fmt: skip


def start(*args: str, environ: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher", *args], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ,
    )  # fmt: skip


def run_id_of(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("RunId "), first + proc.stderr.read()
    return first.split()[1]


def assert_settled_once(out: Path, n: int) -> Counter[str]:
    """Every record exactly one outcome line, nothing torn, nobody messaged twice."""
    raw = (out / "outcomes.jsonl").read_text().splitlines()
    outcomes = [json.loads(line) for line in raw]  # a torn line would not parse
    lines = Counter(o["Line"] for o in outcomes)
    assert sorted(lines) == list(range(1, n + 1)) and max(lines.values()) == 1
    sent = Counter(m["EndpointId"] for m in read_jsonl(out / "outbox.jsonl"))
    assert not [e for e, k in sent.items() if k > 1], "an endpoint was messaged twice"
    assert set(sent) == {o["EndpointId"] for o in outcomes if o["Status"] == "SUCCESS"}
    return Counter(o["Status"] for o in outcomes)


# -- sent once per ledger --------------------------------------------------------------


def test_second_run_of_a_sent_campaign_is_refused_and_send_again_is_deliberate(
    tmp_path: Path,
) -> None:
    cfg, out = campaign(tmp_path, n=30), tmp_path / "out"
    first = dispatcher("run", str(cfg), "--out", str(out))
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["RunId"]

    again = dispatcher("run", str(cfg), "--out", str(out))
    assert again.returncode == 2
    assert again.stdout == ""
    [line] = again.stderr.splitlines()
    assert run_id in line and "FINISHED" in line
    assert f"--resume {run_id}" in line and f"dispatcher retry {run_id}" in line
    assert "--send-again" in line and "Traceback" not in line
    assert len(read_jsonl(out / "outbox.jsonl")) == 30  # nothing sent by the refused run

    deliberate = dispatcher("run", str(cfg), "--out", str(out), "--send-again")
    assert deliberate.returncode == 0, deliberate.stderr
    assert json.loads(deliberate.stdout)["RunId"] != run_id
    assert len(read_jsonl(out / "outbox.jsonl")) == 60


def test_a_finished_run_that_sent_nothing_does_not_block_a_new_run(tmp_path: Path) -> None:
    cfg, out = campaign(tmp_path, n=10), tmp_path / "out"
    failed = dispatcher("run", str(cfg), "--out", str(out), environ=env(HOOK_RAISES="1"))
    assert failed.returncode == 3
    fixed = dispatcher("run", str(cfg), "--out", str(out))
    assert fixed.returncode == 0, fixed.stderr
    assert len(read_jsonl(out / "outbox.jsonl")) == 10


# -- one process per ledger ------------------------------------------------------------


def test_two_concurrent_runs_on_one_out_dir(tmp_path: Path) -> None:
    cfg, out = campaign(tmp_path, n=300), tmp_path / "out"
    slow = env(HOOK_DELAY="1.5")  # 6 chunks, 2 at a time: the first run takes ~4.5 s
    first = start("run", str(cfg), "--out", str(out), environ=slow)
    run_id = run_id_of(first)
    second = dispatcher("run", str(cfg), "--out", str(out), "--send-again", environ=slow)
    assert second.returncode == 2
    [line] = second.stderr.splitlines()
    assert f"is in use by process {first.pid} (run {run_id})" in line
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert assert_settled_once(out, 300) == {"SUCCESS": 300}
    assert len(read_jsonl(out / "outbox.jsonl")) == 300


def test_two_concurrent_resumes_and_a_lock_left_by_sigkill(tmp_path: Path) -> None:
    cfg, out = campaign(tmp_path, n=300), tmp_path / "out"
    slow = env(HOOK_DELAY="1.0")  # 6 chunks, 2 at a time: ~3 s per attempt
    first = start("run", str(cfg), "--out", str(out), environ=slow)
    run_id = run_id_of(first)
    time.sleep(1.0)
    os.kill(first.pid, signal.SIGKILL)  # leaves its lock file behind, and the run RUNNING
    first.wait()

    status = dispatcher("status", run_id, "--out", str(out), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["State"] == "INTERRUPTED"

    a = start("run", str(cfg), "--out", str(out), "--resume", run_id, environ=slow)
    assert run_id_of(a) == run_id  # the dead process's lock did not block it
    running = dispatcher("status", run_id, "--out", str(out), "--json")
    report = json.loads(running.stdout)
    assert (report["State"], report["Pid"]) == ("RUNNING", a.pid)
    b = dispatcher("run", str(cfg), "--out", str(out), "--resume", run_id, environ=slow)
    assert b.returncode == 2 and f"in use by process {a.pid} (run {run_id})" in b.stderr
    _, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    assert assert_settled_once(out, 300) == {"SUCCESS": 300}
    done = json.loads(dispatcher("status", run_id, "--out", str(out), "--json").stdout)
    assert done["State"] == "FINISHED"


# -- resume and retry check their inputs -----------------------------------------------


def test_resume_refuses_a_changed_segment_or_message(tmp_path: Path) -> None:
    cfg, out = campaign(tmp_path, n=200), tmp_path / "out"
    proc = start("run", str(cfg), "--out", str(out), environ=env(HOOK_DELAY="0.2"))
    run_id = run_id_of(proc)
    time.sleep(0.8)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resume = ("run", str(cfg), "--out", str(out), "--resume", run_id)

    other = write_jsonl(tmp_path / "other.jsonl", [endpoint(i) for i in range(500, 700)])
    changed = dispatcher(*resume, "--segment", str(other))
    assert changed.returncode == 2 and "segment" in changed.stderr
    assert "--force-changed-input" in changed.stderr and "Traceback" not in changed.stderr

    cfg.write_text(CONFIG.replace('Body = "Hi {{User', 'Body = "Hello {{User', 1))
    body = dispatcher(*resume)
    assert body.returncode == 2
    assert "campaign.MessageConfiguration.SMSMessage.Body" in body.stderr

    forced = dispatcher(*resume, "--force-changed-input")
    assert forced.returncode == 0, forced.stderr
    assert_settled_once(out, 200)


# -- exit codes ------------------------------------------------------------------------


def test_exit_3_when_the_hook_fails_everything_unless_tolerated(tmp_path: Path) -> None:
    cfg = campaign(tmp_path, n=20)
    failing = env(HOOK_RAISES="1")
    result = dispatcher("run", str(cfg), "--out", str(tmp_path / "a"), environ=failing)
    assert result.returncode == 3
    summary = json.loads(result.stdout)
    assert summary["ByStatus"] == {"HOOK_FAILURE": 20} and summary["Failures"] == 20
    tally = result.stderr.splitlines()[-1]
    assert "HOOK_FAILURE 20" in tally and "downstream API down" in tally
    tolerant = dispatcher("run", str(cfg), "--out", str(tmp_path / "b"), "--max-failures",
                          "100%", environ=failing)  # fmt: skip
    assert tolerant.returncode == 0
    counted = dispatcher("run", str(cfg), "--out", str(tmp_path / "c"), "--max-failures", "19",
                         environ=failing)  # fmt: skip
    assert counted.returncode == 3
    bad = dispatcher("run", str(cfg), "--out", str(tmp_path / "d"), "--max-failures", "lots")
    assert bad.returncode == 2 and "--max-failures" in bad.stderr


def test_stdout_is_the_summary_json_only(tmp_path: Path) -> None:
    cfg = campaign(tmp_path, n=12)
    pipeline = subprocess.run(
        f"{sys.executable} -m dispatcher run {cfg} --out {tmp_path / 'o'} | {sys.executable} "
        "-c 'import json,sys; print(json.load(sys.stdin)[\"Total\"])'",
        shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pipeline.returncode == 0, pipeline.stderr
    assert pipeline.stdout.strip() == "12"
    quiet = dispatcher("run", str(cfg), "--out", str(tmp_path / "q"), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    version = dispatcher("--version")
    assert version.returncode == 0 and version.stdout.startswith("dispatcher ")


def test_sigterm_and_ctrl_c_end_with_a_resume_hint(tmp_path: Path) -> None:
    cfg, out = campaign(tmp_path, n=400), tmp_path / "out"
    proc = start("run", str(cfg), "--out", str(out), environ=env(HOOK_DELAY="0.3"))
    run_id = run_id_of(proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert f"resume with: dispatcher run {cfg} --resume {run_id} --out {out}" in err
    assert "Traceback" not in err

    # A slow sync hook, Ctrl-C twice: stops at once, still no traceback, still resumable.
    resumed = start("run", str(cfg), "--out", str(out), "--resume", run_id,
                    environ=env(HOOK_DELAY="30"))  # fmt: skip
    run_id_of(resumed)
    time.sleep(1.0)
    resumed.send_signal(signal.SIGINT)
    time.sleep(0.5)
    resumed.send_signal(signal.SIGINT)
    _, err = resumed.communicate(timeout=30)
    assert resumed.returncode == 130 and "Traceback" not in err
    assert f"--resume {run_id}" in err.splitlines()[-1]

    final = dispatcher("run", str(cfg), "--out", str(out), "--resume", run_id)
    assert final.returncode == 0, final.stderr
    assert assert_settled_once(out, 400) == {"SUCCESS": 400}


# -- a full disk -----------------------------------------------------------------------


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_is_one_line_exit_1_then_resume_settles_everything_once(
    tmp_path: Path,
) -> None:
    n = 3000
    cfg, out = campaign(tmp_path, n=n), tmp_path / "out"
    # Any file of the run may hit the limit first (outbox, outcomes, the ledger's WAL).
    full = dispatcher("run", str(cfg), "--out", str(out), preexec_fn=_limit_file_size(150_000))
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    run_id = full.stderr.split()[1]
    [error] = [line for line in full.stderr.splitlines() if line.startswith("dispatcher:")]
    assert "cannot write" in error or "ledger" in error  # names the file and the cause
    assert f"then resume with: dispatcher run {cfg} --resume {run_id}" in error

    resumed = dispatcher("run", str(cfg), "--out", str(out), "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    counts = assert_settled_once(out, n)
    assert counts == {"SUCCESS": n}


# -- dry run and preview ----------------------------------------------------------------


SMS_CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "dry"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{User.UserAttributes.FirstNam}}, code {{Attributes.Tier}}"
[segment]
source = "seg.jsonl"
[channels.SMS]
sender = "sms"
endpoint_url = "URL"
[channels.EMAIL]
sender = "outbox"
[campaign.MessageConfiguration.EmailMessage]
Title = "Hello"
Body = "Hi"
"""


def test_dry_run_sends_nothing_and_reports_empty_variables(tmp_path: Path) -> None:
    from dispatcher.testing import ServerProcess

    n = 60
    write_jsonl(tmp_path / "seg.jsonl",
                [endpoint(i, "SMS" if i % 3 else "EMAIL") for i in range(1, n + 1)])  # fmt: skip
    out = tmp_path / "out"
    aws = env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with ServerProcess("sms") as server:
        cfg = tmp_path / "c.toml"
        cfg.write_text(SMS_CONFIG.replace("URL", server.url))
        result = dispatcher("run", str(cfg), "--out", str(out), "--dry-run", environ=aws)
        assert result.returncode == 0, result.stderr
        assert server.messages() == []  # nothing reached the provider
    assert not (out / "outbox.jsonl").exists() or not read_jsonl(out / "outbox.jsonl")
    assert not (out / "ledger.sqlite").exists()  # nothing recorded, nothing claimed
    preview = read_jsonl(out / "preview.jsonl")
    sms = [p for p in preview if p["ChannelType"] == "SMS"]
    assert len(preview) == n and len(sms) == 40
    assert set(preview[0]) >= {"EndpointId", "ChannelType", "Address", "Title", "Body",
                               "HtmlBody"}  # fmt: skip
    assert sms[0]["Body"].startswith("Hi , code gold")
    assert Counter(o["Status"] for o in read_jsonl(out / "outcomes.jsonl")) == {"SUCCESS": n}
    assert "User.UserAttributes.FirstNam: empty in 40 of 40 messages" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["DryRun"] is True


def test_dry_run_no_hook_skips_the_hook_and_preview_prints_n(tmp_path: Path) -> None:
    cfg = campaign(tmp_path, n=30)
    marker = tmp_path / "called"
    (tmp_path / "hook.py").write_text(
        f"import pathlib\ndef handler(event, context):\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n    return event['Endpoints']\n"
    )
    result = dispatcher("run", str(cfg), "--out", str(tmp_path / "o"), "--dry-run=no-hook")
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert len(read_jsonl(tmp_path / "o" / "preview.jsonl")) == 30

    pycache = tmp_path / "__pycache__"
    before = sorted(p.name for p in tmp_path.iterdir() if p != pycache)
    preview = dispatcher("preview", str(cfg), "-n", "3")
    assert preview.returncode == 0, preview.stderr
    lines = [json.loads(x) for x in preview.stdout.splitlines()]
    assert len(lines) == 3 and all(x["Body"] for x in lines)
    assert marker.exists()  # the preview ran the hook
    # ... and wrote nothing (Python's bytecode cache of the imported hook is Python's).
    after = sorted(p.name for p in tmp_path.iterdir() if p not in (marker, pycache))
    assert after == before


def test_a_damaged_ledger_is_one_line_and_exit_1(tmp_path: Path) -> None:
    cfg, out = campaign(tmp_path, n=50), tmp_path / "out"
    first = dispatcher("run", str(cfg), "--out", str(out))
    run_id = json.loads(first.stdout)["RunId"]
    with (out / "ledger.sqlite").open("r+b") as f:  # a damaged page in the middle
        f.seek(4096)
        f.write(b"\xde\xad" * 4096)
    for args in (("run", str(cfg), "--out", str(out), "--resume", run_id),
                 ("status", run_id, "--out", str(out))):  # fmt: skip
        result = dispatcher(*args)
        assert result.returncode == 1
        [line] = result.stderr.splitlines()
        assert "ledger.sqlite is damaged" in line and "Traceback" not in result.stderr
