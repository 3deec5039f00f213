"""Crash safety: SIGKILL at random moments, then --resume; retry of failures; status."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import endpoint, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]

HOOK = """
import random, time

def handler(event, context):
    time.sleep(random.uniform(0.01, 0.05))
    return event["Endpoints"]
"""

CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "durable"
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
hook_concurrency = 4
"""


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def run_id_of(proc: subprocess.Popen[str]) -> str:
    """The RunId a run announces first on stderr (stdout holds only the summary JSON)."""
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("RunId "), first + proc.stderr.read()
    return first.split()[1]


def outbox_messages(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The messages in the outbox, and how many of its lines a SIGKILL tore.

    A batch is one write(2), but a kill during a write of several pages cuts it at a page
    boundary: the batch was never reported sent, the next run closes the torn line, and
    the outbox's own reader (``sent_ids``) skips it. So does this one, and counts it."""
    messages, torn = [], 0
    for line in path.read_text().splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
    return messages, torn


def check_invariants(out: Path, n_records: int, kills: int = 0) -> dict[str, int]:
    outcomes = read_jsonl(out / "outcomes.jsonl")
    lines = Counter(o["Line"] for o in outcomes)
    assert sorted(lines) == list(range(1, n_records + 1)), "a record is missing"
    assert max(lines.values()) == 1, "a record has two outcomes"
    messages, torn = outbox_messages(out / "outbox.jsonl")
    assert torn <= kills, f"{torn} torn outbox lines after {kills} kills"
    sent = [m["EndpointId"] for m in messages]
    dupes = [eid for eid, n in Counter(sent).items() if n > 1]
    assert not dupes, f"sent twice: {dupes[:5]}"
    success = {o["EndpointId"] for o in outcomes if o["Status"] == "SUCCESS"}
    assert set(sent) == success
    summary = json.loads((out / "summary.json").read_text())
    assert summary["Total"] == n_records == sum(summary["ByStatus"].values())
    return dict(Counter(o["Status"] for o in outcomes))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    n = 6000
    records = [endpoint(i, "SMS" if i % 3 else "EMAIL") for i in range(1, n + 1)]
    for i in rng.sample(range(n), 40):  # some ineligible records too
        records[i] = {**records[i], "OptOut": "ALL"}
    write_jsonl(tmp_path / "seg.jsonl", records)
    (tmp_path / "hook.py").write_text(HOOK)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"

    proc = start("run", str(cfg), "--out", str(out))
    run_id = run_id_of(proc)
    kills = 0
    for _ in range(3):  # kill the run, then kill resumes, at random moments
        time.sleep(rng.uniform(0.05, 0.7))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = start("run", str(cfg), "--out", str(out), "--resume", run_id)
        assert run_id_of(proc) == run_id
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert kills >= 1, "the run finished before it could be killed; slow the hook down"
    counts = check_invariants(out, n, kills)
    assert counts == {"SUCCESS": n - 40, "OPT_OUT": 40}


def test_status_and_retry_of_failures(tmp_path: Path) -> None:
    n = 120
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, n + 1)])
    flag = tmp_path / "healthy"
    (tmp_path / "hook.py").write_text(
        "import pathlib\n"
        "def handler(event, context):\n"
        f"    if not pathlib.Path({str(flag)!r}).exists() and 'ep-1' in event['Endpoints']:\n"
        "        raise RuntimeError('downstream API down')\n"
        "    return event['Endpoints']\n"
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    first = subprocess.run(
        [sys.executable, "-m", "dispatcher", "run", str(cfg), "--out", str(out), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 3, first.stderr  # the run completed, with failures
    run_id = json.loads(first.stdout)["RunId"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ByStatus"] == {"HOOK_FAILURE": 50, "SUCCESS": 70}

    status = subprocess.run(
        [sys.executable, "-m", "dispatcher", "status", run_id, "--out", str(out), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["Settled"] == n and report["ByStatus"]["HOOK_FAILURE"] == 50
    assert report["State"] == "FINISHED"

    flag.write_text("ok")
    retry = subprocess.run(
        [sys.executable, "-m", "dispatcher", "retry", run_id, "--out", str(out), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert retry.returncode == 0, retry.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ByStatus"] == {"SUCCESS": n}
    assert summary["RunId"] == run_id
    assert check_invariants(out, n) == {"SUCCESS": n}
    # The hook ran again only for the failed chunk: 1 + 2 attempts... plus 1 retry call.
    assert summary["HookInvocations"] == 3 + 2 + 1


def test_status_of_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "status", "nope", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "no ledger" in result.stderr


SMS_CONFIG = """
[project]
ApplicationId = "app"
Region = "us-east-1"
[campaign]
Id = "durable-sms"
[campaign.MessageConfiguration.SMSMessage]
Body = "Hi {{User.UserAttributes.FirstName}}"
OriginationNumber = "+12065550000"
[segment]
source = "seg.jsonl"
[channels.SMS]
sender = "sms"
endpoint_url = "URL"
[dispatch]
send_concurrency = 4
"""


@pytest.mark.parametrize("seed", [11, 12])
def test_sigkill_during_provider_sends_never_sends_twice(tmp_path: Path, seed: int) -> None:
    """Counted at the provider: after kills and resumes, no number got two messages."""
    from dispatcher.testing import ServerProcess

    rng = random.Random(seed)
    n = 1500
    write_jsonl(tmp_path / "seg.jsonl", [endpoint(i, "SMS") for i in range(1, n + 1)])
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with ServerProcess("sms") as server:
        server.set_faults(delay=0.02)  # every call takes 20 ms: kills land mid-request
        cfg = tmp_path / "c.toml"
        cfg.write_text(SMS_CONFIG.replace("URL", server.url))
        out = tmp_path / "out"

        def launch(*extra: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "run", str(cfg), "--out", str(out),
                 *extra],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip

        proc = launch()
        run_id = run_id_of(proc)
        kills = 0
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.5))
            if proc.poll() is not None:
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = launch("--resume", run_id)
            assert run_id_of(proc) == run_id
        _, err = proc.communicate(timeout=180)
        assert kills >= 1
        delivered = Counter(m["DestinationPhoneNumber"] for m in server.messages())

    assert max(delivered.values()) == 1, "a number received two messages"
    outcomes = read_jsonl(out / "outcomes.jsonl")
    assert sorted(o["Line"] for o in outcomes) == list(range(1, n + 1))
    address = {f"ep-{i}": endpoint(i, "SMS")["Address"] for i in range(1, n + 1)}
    success = {address[o["EndpointId"]] for o in outcomes if o["Status"] == "SUCCESS"}
    doubt = {address[o["EndpointId"]] for o in outcomes if o["Status"] == "TEMPORARY_FAILURE"}
    assert {o["Status"] for o in outcomes} <= {"SUCCESS", "TEMPORARY_FAILURE"}
    assert all("in doubt" in o["Reason"] for o in outcomes if o["Status"] != "SUCCESS")
    assert success <= set(delivered) <= success | doubt
    assert len(doubt) <= 4 * 10 * kills  # at most the batches in flight at each kill
    # Sends in doubt are failures of the run: it completed, and says so with exit 3.
    assert proc.returncode == (3 if doubt else 0), err


@pytest.mark.anyio
async def test_resume_keeps_the_first_of_two_duplicates(tmp_path: Path) -> None:
    """Eligibility of settled lines is replayed in order: the earlier twin still wins."""
    import sqlite3

    from dispatcher import dispatch
    from tests.conftest import make_settings

    twin = {**endpoint(9), "Address": endpoint(1)["Address"]}
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(1), endpoint(2), twin])
    settings = make_settings(tmp_path)
    out = tmp_path / "o"
    summary = await dispatch(settings, segment=str(segment), out_dir=out, progress=False)
    # As after a crash: line 1 was still in flight, line 3 already settled as its twin.
    db = sqlite3.connect(out / "ledger.sqlite")
    db.execute("DELETE FROM outcomes WHERE line = 1")
    db.execute("DELETE FROM claims WHERE line = 1")
    db.commit()
    db.close()
    (out / "outbox.jsonl").write_text("")
    resumed = await dispatch(settings, segment=str(segment), out_dir=out, run_id=summary.run_id,
                             resume=True, progress=False)
    assert resumed.by_status == {"SUCCESS": 2, "DUPLICATE_ADDRESS": 1}
    status = {o["Line"]: o["Status"] for o in read_jsonl(out / "outcomes.jsonl")}
    assert status == {1: "SUCCESS", 2: "SUCCESS", 3: "DUPLICATE_ADDRESS"}
