"""The pipeline end to end, in process: real segment files, real hooks, the outbox."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from dispatcher import Status, dispatch
from dispatcher.channels.base import Message, SendResult
from tests.conftest import endpoint, make_settings, read_jsonl, with_hook, write_jsonl

pytestmark = pytest.mark.anyio


def outcomes_by_id(out: Path) -> dict[str, dict[str, Any]]:
    return {o["EndpointId"]: o for o in read_jsonl(out / "outcomes.jsonl")}


def assert_one_outcome_per_record(out: Path, segment: Path) -> list[dict[str, Any]]:
    lines = [i for i, raw in enumerate(segment.read_text().splitlines(), 1) if raw.strip()]
    outcomes = read_jsonl(out / "outcomes.jsonl")
    assert sorted(o["Line"] for o in outcomes) == lines
    return outcomes


async def test_spy_hook_parallelism_and_event_size(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 1238)))
    state = {"now": 0, "max": 0, "sizes": []}

    async def spy(event: dict[str, Any], context: Any) -> dict[str, Any]:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        state["sizes"].append(len(event["Endpoints"]))
        await anyio.sleep(0.005)
        state["now"] -= 1
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign=with_hook("spy"), dispatch={"hook_concurrency": 4})
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "out",
        handlers={"spy": spy},
        progress=False,
    )
    assert state["max"] == 4  # reached and never exceeded
    assert max(state["sizes"]) == 50
    assert sum(state["sizes"]) == 1237
    assert summary.by_status == {"SUCCESS": 1237}
    assert summary.hook_invocations == len(state["sizes"]) == 25
    assert len(read_jsonl(tmp_path / "out" / "outbox.jsonl")) == 1237


async def test_sync_hook_runs_off_the_event_loop(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 101)))
    loop_threads: set[int] = set()

    def blocking(event: dict[str, Any], context: Any) -> dict[str, Any]:
        loop_threads.add(threading.get_ident())
        time.sleep(0.05)  # would stall the loop if run on it
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign=with_hook("b"), dispatch={"hook_concurrency": 2})
    main = threading.get_ident()
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"b": blocking},
        progress=False,
    )
    assert main not in loop_threads
    assert summary.by_status == {"SUCCESS": 100}


async def test_hook_sleeping_past_the_deadline_fails_its_chunk(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 61)))
    calls = Counter[str]()

    async def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        first = next(iter(event["Endpoints"]))
        calls[first] += 1
        if first == "ep-1":
            await anyio.sleep(30)
        return event["Endpoints"]

    # The attempt may use the whole deadline, so the deadline is what ends it.
    settings = make_settings(
        tmp_path,
        campaign=with_hook("slow"),
        dispatch={"hook_deadline": 0.5, "hook_attempt_timeout": 10},
    )
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"slow": slow},
        progress=False,
    )
    outcomes = outcomes_by_id(tmp_path / "o")
    assert summary.by_status == {"HOOK_FAILURE": 50, "SUCCESS": 10}
    assert "timed out" in outcomes["ep-1"]["Reason"]
    assert calls["ep-1"] == 1  # no time left for a second attempt
    assert summary.hook_invocations == 2


async def test_a_timed_out_attempt_is_retried(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 4)))
    calls = []

    async def hangs_once(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            await anyio.sleep(30)
        return event["Endpoints"]

    settings = make_settings(
        tmp_path,
        campaign=with_hook("h"),
        dispatch={"hook_deadline": 15, "hook_attempt_timeout": 0.2},
    )
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"h": hangs_once},
        progress=False,
    )
    assert len(calls) == 2
    assert summary.by_status == {"SUCCESS": 3}


async def test_hook_failing_twice_then_succeeding_uses_three_attempts(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 11)))
    attempts = []

    def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError(f"boom {len(attempts)}")
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign=with_hook("f"))
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"f": flaky},
        progress=False,
    )
    assert len(attempts) == 3
    assert summary.hook_invocations == 3
    assert summary.by_status == {"SUCCESS": 10}


async def test_hook_failing_three_times_fails_the_chunk_and_the_run_goes_on(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 76)))
    attempts = Counter[str]()

    def broken_first_chunk(event: dict[str, Any], context: Any) -> dict[str, Any]:
        first = next(iter(event["Endpoints"]))
        attempts[first] += 1
        if first == "ep-1":
            raise ValueError("database unavailable")
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign=with_hook("h"))
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"h": broken_first_chunk},
        progress=False,
    )
    assert attempts["ep-1"] == 3 and attempts["ep-51"] == 1
    assert summary.by_status == {"HOOK_FAILURE": 50, "SUCCESS": 25}
    assert summary.hook_invocations == 4
    reason = outcomes_by_id(tmp_path / "o")["ep-7"]["Reason"]
    assert "ValueError: database unavailable" in reason and "3 attempts" in reason


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ([], "hook returned an array"),
        ("ok", "hook returned a string"),
        (None, "hook returned null"),
        ("EVENT", "whole event"),
        ({"ep-1": ["not", "an", "object"]}, "is an array, expected an object"),
    ],
)
async def test_garbage_return_fails_the_chunk_without_retry(
    tmp_path: Path, returned: Any, message: str
) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 4)))
    calls = []

    def garbage(event: dict[str, Any], context: Any) -> Any:
        calls.append(1)
        return event if returned == "EVENT" else returned

    settings = make_settings(tmp_path, campaign=with_hook("g"))
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"g": garbage},
        progress=False,
    )
    assert len(calls) == 1
    assert summary.by_status == {"HOOK_FAILURE": 3}
    assert message in outcomes_by_id(tmp_path / "o")["ep-2"]["Reason"]


async def test_filter_enrich_and_ignore_added_ids(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 11)))

    def hook(event: dict[str, Any], context: Any) -> dict[str, Any]:
        kept = {}
        for eid, ep in event["Endpoints"].items():
            if int(eid.split("-")[1]) % 2 == 0:
                ep["Attributes"]["Score"] = [700 + int(eid.split("-")[1])]  # a number
                ep["Address"] = "+19999999999"  # a hook cannot redirect a message
                kept[eid] = ep
        kept["intruder"] = {"ChannelType": "SMS", "Address": "+15550000000"}
        return kept

    settings = make_settings(tmp_path, campaign=with_hook("h"))
    summary = await dispatch(
        settings, segment=str(segment), out_dir=tmp_path / "o", handlers={"h": hook}, progress=False
    )
    assert summary.by_status == {"FILTERED": 5, "SUCCESS": 5}
    assert summary.ignored_hook_ids == 1
    sent = {m["EndpointId"]: m for m in read_jsonl(tmp_path / "o" / "outbox.jsonl")}
    assert set(sent) == {"ep-2", "ep-4", "ep-6", "ep-8", "ep-10"}
    assert sent["ep-4"]["Body"] == "Hi Name4 704"
    assert sent["ep-4"]["Address"] == endpoint(4)["Address"]
    assert outcomes_by_id(tmp_path / "o")["ep-3"]["Status"] == "FILTERED"


async def test_empty_map_filters_everything(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 8)))
    settings = make_settings(tmp_path, campaign=with_hook("h"))
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"h": lambda e, c: {}},
        progress=False,
    )
    assert summary.by_status == {"FILTERED": 7}
    assert not (tmp_path / "o" / "outbox.jsonl").read_text()


async def test_overrides_honoured_for_sms_and_push_never_email(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", [
        endpoint(1, "SMS"), endpoint(2, "EMAIL"), endpoint(3, "GCM"), endpoint(4, "SMS"),
    ])  # fmt: skip

    def hook(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for eid, ep in event["Endpoints"].items():
            if eid == "ep-4":  # the other accepted position: inside Attributes
                ep["Attributes"]["BodyOverride"] = ["attr body"]
            else:
                ep["TitleOverride"] = "new title"
                ep["BodyOverride"] = "new body"
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign=with_hook("h"))
    await dispatch(
        settings, segment=str(segment), out_dir=tmp_path / "o", handlers={"h": hook}, progress=False
    )
    sent = {m["EndpointId"]: m for m in read_jsonl(tmp_path / "o" / "outbox.jsonl")}
    assert sent["ep-1"]["Body"] == "new body"
    assert sent["ep-3"]["Title"] == "new title" and sent["ep-3"]["Body"] == "new body"
    assert sent["ep-4"]["Body"] == "attr body"
    assert sent["ep-2"]["Title"] == "Hello Name2"
    assert sent["ep-2"]["Body"] == "Text "


async def test_eligibility_statuses_and_one_outcome_per_record(tmp_path: Path) -> None:
    records: list[Any] = [
        endpoint(1),
        endpoint(2, OptOut="ALL"),
        endpoint(3, EndpointStatus="INACTIVE"),
        endpoint(4, "VOICE"),
        {**endpoint(5), "Address": endpoint(1)["Address"]},
        "{not json",
        "[1, 2]",
        {"Id": "no-address", "ChannelType": "SMS"},
        {"Id": "fax", "ChannelType": "FAX", "Address": "x"},
        {"Id": 42, "ChannelType": "SMS", "Address": "+1"},
        {**endpoint(6), "Attributes": {"Tier": "gold"}},
        {"ChannelType": "EMAIL", "Address": "noid@example.com"},
    ]
    segment = write_jsonl(tmp_path / "seg.jsonl", records)
    settings = make_settings(tmp_path)
    summary = await dispatch(settings, segment=str(segment), out_dir=tmp_path / "o", progress=False)
    outcomes = read_jsonl(tmp_path / "o" / "outcomes.jsonl")
    by_line = {o["Line"]: o for o in outcomes}
    assert len(outcomes) == len(records) == summary.total
    assert [by_line[i]["Status"] for i in range(1, 13)] == [
        "SUCCESS", "OPT_OUT", "INACTIVE", "UNSUPPORTED_CHANNEL", "DUPLICATE_ADDRESS",
        "INVALID", "INVALID", "INVALID", "INVALID", "INVALID", "INVALID", "SUCCESS",
    ]  # fmt: skip
    assert by_line[6]["EndpointId"] is None
    assert by_line[12]["EndpointId"]  # a generated stable id
    assert all(o["Reason"] for o in outcomes if o["Status"] != "SUCCESS")
    assert sum(summary.by_status.values()) == summary.total


async def test_no_hook_sends_to_every_eligible_endpoint(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i, "EMAIL") for i in range(1, 121)))
    summary = await dispatch(
        make_settings(tmp_path), segment=str(segment), out_dir=tmp_path / "o", progress=False
    )
    assert summary.by_status == {"SUCCESS": 120}
    assert summary.hook_invocations == 0


async def test_delivery_mode_counts_a_successful_invocation_as_sent(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 6)))
    seen: list[dict[str, Any]] = []

    def deliver(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": "ok"}

    settings = make_settings(tmp_path, campaign=with_hook("d", mode="DELIVERY"))
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"d": deliver},
        progress=False,
    )
    assert summary.by_status == {"SUCCESS": 5}
    assert seen[0]["Message"] == seen[0]["MessageConfiguration"]
    assert not (tmp_path / "o" / "outbox.jsonl").read_text()


async def test_event_payload_has_the_seed_shape(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(1, "EMAIL")])
    events: list[dict[str, Any]] = []

    def capture(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        assert context.get_remaining_time_in_millis() > 0
        return event["Endpoints"]

    settings = make_settings(tmp_path, campaign=with_hook("c"))
    summary = await dispatch(
        settings,
        segment=str(segment),
        out_dir=tmp_path / "o",
        handlers={"c": capture},
        progress=False,
    )
    (event,) = events
    assert set(event) == {
        "MessageConfiguration",
        "ApplicationId",
        "CampaignId",
        "TreatmentId",
        "ActivityId",
        "ScheduledTime",
        "Endpoints",
    }
    assert event["ApplicationId"] == "app-1" and event["CampaignId"] == "camp-1"
    assert event["TreatmentId"] == "0" and event["ActivityId"] == summary.run_id
    assert event["ScheduledTime"].endswith("Z")
    assert "Id" not in event["Endpoints"]["ep-1"]
    email = event["MessageConfiguration"]["EmailMessage"]
    assert email["SimpleEmail"]["Subject"]["Data"] == "Hello {{User.UserAttributes.FirstName}}"


class FlakySender:
    """A real sender implementation with scripted provider answers per attempt."""

    max_batch = 10

    def __init__(self, script: dict[str, list[SendResult]]) -> None:
        self.script = script
        self.calls: Counter[str] = Counter()

    async def send(self, messages: list[Message]) -> list[SendResult]:
        out = []
        for m in messages:
            answers = self.script.get(m.endpoint_id, [])
            n = self.calls[m.endpoint_id]
            self.calls[m.endpoint_id] += 1
            out.append(answers[n] if n < len(answers) else SendResult.ok())
        return out

    async def aclose(self) -> None:
        return None


async def test_send_retries_only_provably_unsent_messages(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", (endpoint(i) for i in range(1, 6)))
    throttle = SendResult(Status.THROTTLED, "ThrottlingException", retryable=True, retry_after=0)
    script = {
        "ep-1": [throttle, SendResult.ok()],
        "ep-2": [throttle, throttle, throttle],
        "ep-3": [SendResult(Status.TEMPORARY_FAILURE, "timed out after sending", retryable=False)],
        "ep-4": [SendResult(Status.PERMANENT_FAILURE, "ValidationException: bad number")],
    }
    sender = FlakySender(script)
    summary = await dispatch(
        make_settings(tmp_path),
        segment=str(segment),
        out_dir=tmp_path / "o",
        senders={"SMS": sender},
        progress=False,
    )
    outcomes = outcomes_by_id(tmp_path / "o")
    assert {k: v["Status"] for k, v in outcomes.items()} == {
        "ep-1": "SUCCESS", "ep-2": "THROTTLED", "ep-3": "TEMPORARY_FAILURE",
        "ep-4": "PERMANENT_FAILURE", "ep-5": "SUCCESS",
    }  # fmt: skip
    assert sender.calls == {"ep-1": 2, "ep-2": 3, "ep-3": 1, "ep-4": 1, "ep-5": 1}
    assert outcomes["ep-4"]["Reason"] == "ValidationException: bad number"
    assert summary.total == 5


async def test_a_sender_that_raises_fails_its_messages_not_the_run(tmp_path: Path) -> None:
    segment = write_jsonl(tmp_path / "seg.jsonl", [endpoint(1), endpoint(2, "EMAIL")])

    class Broken:
        max_batch = 5

        async def send(self, messages: list[Message]) -> list[SendResult]:
            raise OSError("disk full")

        async def aclose(self) -> None:
            return None

    summary = await dispatch(
        make_settings(tmp_path),
        segment=str(segment),
        out_dir=tmp_path / "o",
        senders={"SMS": Broken()},
        progress=False,
    )
    outcomes = outcomes_by_id(tmp_path / "o")
    assert outcomes["ep-1"]["Status"] == "TEMPORARY_FAILURE"
    assert "OSError: disk full" in outcomes["ep-1"]["Reason"]
    assert outcomes["ep-2"]["Status"] == "SUCCESS"
    assert summary.total == 2
