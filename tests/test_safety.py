"""The send-once, one-process and changed-input rules as the library raises them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher import dispatch
from dispatcher.errors import CampaignAlreadyRun, InputChanged, LedgerBusy, RunRefused
from dispatcher.model import Summary
from dispatcher.runlock import RunLock
from tests.conftest import endpoint, make_settings, read_jsonl, write_jsonl

pytestmark = pytest.mark.anyio


async def test_a_second_run_raises_campaign_already_run(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, 6)])
    settings = make_settings(tmp_path)
    first = await dispatch(settings, segment=str(segment), out_dir=tmp_path, progress=False)
    with pytest.raises(CampaignAlreadyRun) as refused:
        await dispatch(settings, segment=str(segment), out_dir=tmp_path, progress=False)
    assert (refused.value.run_id, refused.value.state, refused.value.sent) == (
        first.run_id, "FINISHED", 5)
    assert isinstance(refused.value, RunRefused)
    again = await dispatch(settings, segment=str(segment), out_dir=tmp_path, progress=False,
                           send_again=True)  # fmt: skip
    assert again.by_status == {"SUCCESS": 5}
    # Another campaign in the same ledger is not blocked.
    other = make_settings(tmp_path, campaign={"Id": "camp-2"})
    assert (await dispatch(other, segment=str(segment), out_dir=tmp_path,
                           progress=False)).by_status == {"SUCCESS": 5}  # fmt: skip


async def test_a_held_lock_raises_ledger_busy_and_writes_nothing(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(1)])
    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out / "ledger.sqlite") as lock:
        lock.acquire("someone-else")
        with pytest.raises(LedgerBusy) as busy:
            await dispatch(make_settings(tmp_path), segment=str(segment), out_dir=out,
                           progress=False)  # fmt: skip
    assert busy.value.run_id == "someone-else" and busy.value.pid is not None
    assert not (out / "outcomes.jsonl").exists() and not (out / "run.json").exists()


async def test_resume_with_another_message_raises_input_changed(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(i) for i in range(1, 4)])
    first = await dispatch(make_settings(tmp_path), segment=str(segment), out_dir=tmp_path,
                           progress=False)  # fmt: skip
    changed = make_settings(tmp_path, campaign={"MessageConfiguration": {
        "SMSMessage": {"Body": "Another text"}}})  # fmt: skip
    with pytest.raises(InputChanged) as refused:
        await dispatch(changed, segment=str(segment), out_dir=tmp_path, run_id=first.run_id,
                       resume=True, progress=False)  # fmt: skip
    assert "campaign (campaign.MessageConfiguration.SMSMessage.Body)" in refused.value.changed
    # Tuning knobs and the send rate are not the campaign: they may change on resume.
    tuned = make_settings(tmp_path, dispatch={"hook_concurrency": 3},
                          campaign={"Limits": {"MessagesPerSecond": 50}})  # fmt: skip
    resumed = await dispatch(tuned, segment=str(segment), out_dir=tmp_path, run_id=first.run_id,
                             resume=True, progress=False)  # fmt: skip
    assert resumed.by_status == {"SUCCESS": 3}


async def test_dry_run_records_nothing_and_counts_would_be_sends(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl",
                          [endpoint(1), endpoint(2, OptOut="ALL"), endpoint(3)])  # fmt: skip
    summary = await dispatch(make_settings(tmp_path), segment=str(segment), out_dir=tmp_path,
                             progress=False, dry_run=True)  # fmt: skip
    assert summary.dry_run and summary.by_status == {"SUCCESS": 2, "OPT_OUT": 1}
    assert summary.empty_variables == ["Attributes.Score: empty in 2 of 2 messages"]
    assert not (tmp_path / "ledger.sqlite").exists() and not (tmp_path / "summary.json").exists()
    assert [p["EndpointId"] for p in read_jsonl(tmp_path / "preview.jsonl")] == ["ep-1", "ep-3"]
    # A dry run is not a run: the real one is not refused afterwards.
    real = await dispatch(make_settings(tmp_path), segment=str(segment), out_dir=tmp_path,
                          progress=False)  # fmt: skip
    assert real.by_status == {"SUCCESS": 2, "OPT_OUT": 1}


def test_summary_failure_counts_and_threshold() -> None:
    summary = Summary("r", total=200, by_status={"SUCCESS": 190, "THROTTLED": 4,
                                                  "HOOK_FAILURE": 6, "FILTERED": 0})  # fmt: skip
    assert summary.failures == 10
    assert summary.failed_beyond() and summary.failed_beyond(9)
    assert not summary.failed_beyond(10)
    assert summary.failed_beyond(percent=4.9) and not summary.failed_beyond(percent=5)
    assert summary.to_json()["Failures"] == 10
