"""``--processes N``: one run across N processes gives what one process gives, and
survives losing any of them."""

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

import anyio
import pytest

from dispatcher import dispatch, load_settings
from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.processes import partition_of, processes_arg
from dispatcher.testing.moto import MotoServer
from tests.conftest import endpoint, make_settings, read_jsonl, write_jsonl
from tests.system.test_durability import CONFIG, check_invariants, run_id_of, start

HOOK = """
import time, zlib

def handler(event, context):
    time.sleep(0.02)
    # keep two of three endpoints, by a rule every process applies alike
    return {k: v for k, v in event["Endpoints"].items() if zlib.crc32(k.encode()) % 3}
"""


def mixed_segment(path: Path, n: int, seed: int = 7) -> list[dict[str, Any] | str]:
    """Valid endpoints on two channels, with twins of earlier addresses scattered
    through the file, opted-out and invalid records."""
    rng = random.Random(seed)
    records: list[dict[str, Any] | str] = []
    for i in range(1, n + 1):
        roll = rng.random()
        if roll < 0.1 and i > 10:
            twin = rng.randrange(1, i)  # an earlier address again, under a new Id
            records.append({**endpoint(twin, "SMS" if twin % 2 else "EMAIL"), "Id": f"ep-{i}"})
        elif roll < 0.13:
            records.append("{not json")
        elif roll < 0.16:
            records.append({**endpoint(i), "OptOut": "ALL"})
        else:
            records.append(endpoint(i, "SMS" if i % 2 else "EMAIL"))
    write_jsonl(path, records)
    return records


def setup(tmp_path: Path, n: int) -> Path:
    mixed_segment(tmp_path / "seg.jsonl", n)
    (tmp_path / "hook.py").write_text(HOOK)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    return cfg


def by_line(out: Path) -> dict[int, tuple[str | None, str]]:
    outcomes = read_jsonl(out / "outcomes.jsonl")
    lines = Counter(o["Line"] for o in outcomes)
    assert max(lines.values()) == 1, "a record has two outcomes"
    return {o["Line"]: (o["EndpointId"], o["Status"]) for o in outcomes}


def test_two_processes_give_what_one_gives(tmp_path: Path) -> None:
    n = 1500
    cfg = setup(tmp_path, n)
    settings = load_settings(cfg)
    one = anyio.run(lambda: dispatch(settings, out_dir=tmp_path / "one", progress=False))
    two = anyio.run(lambda: dispatch(settings, out_dir=tmp_path / "two", progress=False,
                                     processes=2))  # fmt: skip
    assert two.by_status == one.by_status
    assert {"SUCCESS", "FILTERED", "DUPLICATE_ADDRESS", "INVALID", "OPT_OUT"} <= set(two.by_status)
    # Every record, under its true line, with the same outcome: duplicates decided in
    # segment order although the twins' partitions were worked on concurrently.
    assert by_line(tmp_path / "two") == by_line(tmp_path / "one")
    assert sorted(by_line(tmp_path / "two")) == list(range(1, n + 1))
    sent = Counter(m["EndpointId"] for m in read_jsonl(tmp_path / "two" / "outbox.jsonl"))
    assert max(sent.values()) == 1 and sum(sent.values()) == two.by_status["SUCCESS"]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["Total"] == n and summary["HookInvocations"] >= n * 0.8 // 50
    # The report's timeline is the sum of the workers'.
    timeline = json.loads((tmp_path / "two" / "timeline.json").read_text())
    assert sum(sum(run[1]) for run in timeline["Outcomes"]["SUCCESS"]) == two.by_status["SUCCESS"]


def test_partitions_keep_twins_together() -> None:
    a = Record(1, "a", {"ChannelType": "SMS", "Address": "+1 "})
    b = Record(9, "b", {"ChannelType": "SMS", "Address": "+1"})
    for n in (2, 3, 8):
        assert partition_of(a, n) == partition_of(b, n)
    assert {partition_of(Record(i, None, None, "bad"), 4) for i in range(8)} == {0, 1, 2, 3}


def test_processes_argument() -> None:
    assert processes_arg("3") == 3 and processes_arg("auto") == (os.cpu_count() or 1)
    for bad in ("0", "-1", "two"):
        with pytest.raises(ConfigError) as info:
            processes_arg(bad)
        assert info.value.key == "--processes"


@pytest.mark.anyio
async def test_processes_need_the_ledger_and_config_hooks(tmp_path: Path) -> None:
    seg = write_jsonl(tmp_path / "s.jsonl", [endpoint(1)])
    with pytest.raises(ConfigError, match="needs the ledger"):
        await dispatch(make_settings(tmp_path), segment=str(seg), out_dir=tmp_path / "o",
                       ledger=False, processes=2, progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="cannot be shared"):
        await dispatch(make_settings(tmp_path), segment=str(seg), out_dir=tmp_path / "o",
                       processes=2, progress=False, handlers={"h": lambda e, c: e})  # fmt: skip


def workers_of(pid: int) -> list[int]:
    """The coordinator's worker processes (its children), once they are up."""
    for _ in range(200):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if len(children) >= 2:
            return [int(c) for c in children]
        time.sleep(0.05)
    raise AssertionError("the workers did not start")


def wait_for_sends(out: Path) -> None:
    """Until the workers are sending (so that a kill lands in the middle of the work)."""
    for _ in range(600):
        outbox = out / "outbox.jsonl"
        if outbox.exists() and outbox.stat().st_size > 0:
            return
        time.sleep(0.05)
    raise AssertionError("nothing was sent")


def resume_until_done(cfg: Path, out: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    """Resume; while the killed run's last workers finish what they hold, the ledger is
    still theirs (exit 2, in use): try again."""
    for _ in range(120):
        done = subprocess.run([sys.executable, "-m", "dispatcher", "run", str(cfg), "--out",
                               str(out), "--resume", run_id, "--processes", "2"],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 2 or "in use" not in done.stderr:
            return done
        time.sleep(0.25)
    raise AssertionError("the ledger stayed locked")


def test_sigkill_of_a_worker_then_resume(tmp_path: Path) -> None:
    n = 3000
    cfg = setup(tmp_path, n)
    out = tmp_path / "out"
    proc = start("run", str(cfg), "--out", str(out), "--processes", "2")
    run_id = run_id_of(proc)
    victim = workers_of(proc.pid)[0]
    wait_for_sends(out)
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "a worker process died" in err and "killed by SIGKILL" in err
    assert f"resume with: dispatcher run {cfg} --resume {run_id}" in err
    assert "Traceback" not in err
    done = resume_until_done(cfg, out, run_id)
    assert done.returncode == 0, done.stderr
    counts = check_invariants(out, n)
    one = anyio.run(lambda: dispatch(load_settings(cfg), out_dir=tmp_path / "one",
                                     progress=False))  # fmt: skip
    assert counts == one.by_status


def test_sigkill_of_the_coordinator_then_resume(tmp_path: Path) -> None:
    n = 3000
    cfg = setup(tmp_path, n)
    out = tmp_path / "out"
    proc = start("run", str(cfg), "--out", str(out), "--processes", "2")
    run_id = run_id_of(proc)
    workers_of(proc.pid)
    wait_for_sends(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = resume_until_done(cfg, out, run_id)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["RunId"] == run_id
    check_invariants(out, n)


def test_messages_per_second_is_one_ceiling_across_the_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatcher.testing import ServerProcess
    from tests.channels.wire import busiest

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    rate, n = 10, 60
    seg = write_jsonl(tmp_path / "s.jsonl", [endpoint(i) for i in range(1, n + 1)])
    with ServerProcess("sms") as sms:
        settings = make_settings(
            tmp_path, campaign={"Limits": {"MessagesPerSecond": rate}},
            channels={"SMS": {"sender": "sms", "endpoint_url": sms.url,
                              "origination_identity": "+12065550100"}},
        )  # fmt: skip
        summary = anyio.run(lambda: dispatch(settings, segment=str(seg), out_dir=tmp_path / "o",
                                             progress=False, processes=2))  # fmt: skip
        arrivals = sms.arrivals()
    assert summary.by_status == {"SUCCESS": n}
    assert sum(count for _, count in arrivals) == n
    assert busiest(arrivals) <= rate


def test_a_pipe_is_read_once_and_shared_out(tmp_path: Path) -> None:
    """``--segment -`` with ``--processes 2``: the coordinator is the one reader of
    stdin, and the outcomes are those of one process over the same file."""
    n = 1200
    cfg = setup(tmp_path, n)
    one = anyio.run(lambda: dispatch(load_settings(cfg), out_dir=tmp_path / "one",
                                     progress=False))  # fmt: skip
    with (tmp_path / "seg.jsonl").open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "dispatcher", "run", str(cfg), "--segment", "-",
             "--out", str(tmp_path / "two"), "--processes", "2"],
            stdin=stdin, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ByStatus"] == one.by_status
    assert by_line(tmp_path / "two") == by_line(tmp_path / "one")


@pytest.mark.anyio
async def test_an_s3_segment_across_two_processes(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 object as the segment of a ``--processes 2`` run gives what one process
    gives over the same records from a local file."""
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_server.url,
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    n = 1000
    cfg = setup(tmp_path, n)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server.url)
    s3.create_bucket(Bucket="processes-seg")
    s3.put_object(Bucket="processes-seg", Key="export/seg.jsonl",
                  Body=(tmp_path / "seg.jsonl").read_bytes())  # fmt: skip
    settings = load_settings(cfg)
    one = await dispatch(settings, out_dir=tmp_path / "one", progress=False)
    two = await dispatch(settings, segment="s3://processes-seg/export/seg.jsonl",
                         out_dir=tmp_path / "two", progress=False, processes=2)  # fmt: skip
    assert two.by_status == one.by_status
    assert by_line(tmp_path / "two") == by_line(tmp_path / "one")
