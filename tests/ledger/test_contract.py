"""The Ledger contract, held against SQLite and DynamoDB alike.

``ledgers.new()`` is another worker on the same storage (or the same worker after a
crash): what one ledger made durable, the next one must see and answer the same way.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import anyio
import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger import Claim, RunInfo, SendClaim
from dispatcher.model import Status
from tests.ledger.conftest import Ledgers
from tests.ledger.helpers import all_outcomes, members, out, run_info

pytestmark = pytest.mark.anyio

R = "run-1"
G, D, S, X = Claim.GRANTED, Claim.IN_DOUBT, Claim.SENT, Claim.OTHER_LINE


def sc(eid: str, line: int, sender: str = "outbox") -> SendClaim:
    return SendClaim(eid, line, sender)


async def test_run_lifecycle(ledgers: Ledgers) -> None:
    ledger = ledgers.new()
    assert await ledger.get_run(R) is None
    run = run_info(R)
    await ledger.start_run(run)
    assert run.attempt == 1
    assert await ledger.get_run(R) == run_info(R)

    resumed = run_info(R)
    await ledger.start_run(resumed)
    assert resumed.attempt == 2
    await ledger.finish_run(R, finished_at="2026-01-01T01:00:00Z",
                            summary={"HookInvocations": 3, "Total": 0})  # fmt: skip

    other = await ledgers.new().get_run(R)
    expected = run_info(R)
    expected.attempt, expected.state = 2, "FINISHED"
    expected.finished_at = "2026-01-01T01:00:00Z"
    expected.extra = {"hook_invocations": 3}
    assert other == expected
    with pytest.raises(LedgerError):
        await ledger.finish_run("no-such-run", finished_at="x", summary={})


async def test_run_fingerprints_round_trip(ledgers: Ledgers) -> None:
    ledger = ledgers.new()
    run = run_info(R)
    run.fingerprints = {"segment": {"Kind": "file", "Size": 3, "Digest": "ab"},
                        "campaign": {"campaign.Id": "camp-1", "Hook.Mode": None}}  # fmt: skip
    await ledger.start_run(run)
    stored = await ledgers.new().get_run(R)
    assert stored is not None and stored.fingerprints == run.fingerprints


async def test_claim_answers(ledgers: Ledgers) -> None:
    ledger = ledgers.new()
    await ledger.start_run(run_info(R))
    assert await ledger.claim(R, []) == []
    assert await ledger.claim(R, [sc("ep-1", 1), sc("ep-2", 2)]) == [G, G]
    assert await ledger.claim(R, [sc("ep-1", 1)]) == [D], "claimed before, no result"
    assert await ledger.claim(R, [sc("ep-1", 7)]) == [X], "another line holds it"

    # No flush in between: the ledger itself orders a record before a later claim.
    await ledger.record(R, [out(1, "SUCCESS")], sent=[("ep-1", "camp-1")])
    assert await ledger.claim(R, [sc("ep-1", 1), sc("ep-1", 7)]) == [S, X]

    await ledger.record(R, [out(2, "PERMANENT_FAILURE")], release=["ep-2"])
    assert await ledger.claim(R, [sc("ep-2", 2)]) == [G], "released: provably unsent"
    await ledger.record(R, [out(2, "THROTTLED")], release=["ep-2"])
    assert await ledger.claim(R, [sc("ep-2", 9)]) == [G], "released: any line may take it"
    assert await ledger.claim(R, [sc("ep-2", 2)]) == [X]

    # SENT means the claim's line has a SUCCESS outcome, whatever ``sent`` said.
    assert await ledger.claim(R, [sc("ep-4", 4), sc("ep-5", 5)]) == [G, G]
    await ledger.record(R, [out(4, "SUCCESS")])
    await ledger.record(R, [out(5, "TEMPORARY_FAILURE")], sent=[("ep-5", "camp-1")])
    assert await ledger.claim(R, [sc("ep-4", 4), sc("ep-5", 5)]) == [S, D]

    # Repeats in one batch meet the first one, as in a sequential transaction.
    answers = await ledger.claim(R, [sc("ep-3", 3), sc("ep-3", 3), sc("ep-3", 4)])
    assert answers == [G, D, X]
    answers = await ledger.claim(R, [sc("ep-1", 7), sc("ep-1", 1), sc("ep-1", 1)])
    assert answers == [X, S, S]
    assert await ledger.claim("run-2", [sc("ep-1", 1)]) == [G], "claims are per run"


async def test_claim_after_crash_is_in_doubt(ledgers: Ledgers) -> None:
    crashed = ledgers.new()
    await crashed.start_run(run_info(R))
    assert await crashed.claim(R, [sc("ep-1", 1), sc("ep-2", 2), sc("ep-3", 3)]) == [G, G, G]
    await crashed.record(R, [out(2, "SUCCESS")], sent=[("ep-2", "camp-1")])
    await crashed.flush()
    # ...killed before ep-1's result. A new process resumes the run:
    resumed = ledgers.new()
    await resumed.start_run(run_info(R))
    answers = await resumed.claim(R, [sc("ep-1", 1), sc("ep-2", 2), sc("ep-3", 30), sc("ep-4", 4)])
    assert answers == [D, S, X, G]


async def test_a_claim_makes_earlier_records_durable(ledgers: Ledgers) -> None:
    """A send's outcome is durable by the next claim, so a process killed later leaves
    it SENT, not in doubt (the sends in flight are the only ones in doubt)."""
    worker = ledgers.new()
    await worker.start_run(run_info(R))
    assert await worker.claim(R, [sc("ep-1", 1), sc("ep-2", 2)]) == [G, G]
    await worker.record(R, [out(1, "SUCCESS")], sent=[("ep-1", "camp-1")])
    await worker.record(R, [out(2, "PERMANENT_FAILURE")], release=["ep-2"])
    await worker.record(R, [out(5, "FILTERED")])
    assert await worker.claim(R, [sc("ep-3", 3)]) == [G]
    # ...killed here, without a flush. The process that resumes the run:
    resumed = ledgers.new()
    assert members(await resumed.lines_with_status(R), 10) == {1, 2, 5}
    assert await resumed.claim(R, [sc("ep-1", 1), sc("ep-2", 2), sc("ep-3", 3)]) == [S, G, D]
    assert await resumed.history(["ep-1"], campaign_id="camp-1", since=0) == {"ep-1": (1, 1)}


async def test_unusual_endpoint_ids(ledgers: Ledgers) -> None:
    ledger = ledgers.new()
    await ledger.start_run(run_info(R))
    ids = ["", "x" * 2000, "y" * 2000, "ü #|/\x1f:"]
    claims = [sc(eid, i + 1) for i, eid in enumerate(ids)]
    assert await ledger.claim(R, claims) == [G] * 4
    assert await ledgers.new().claim(R, claims) == [D] * 4
    await ledger.record(R, [out(i + 1, "SUCCESS", eid=eid) for i, eid in enumerate(ids)],
                        sent=[(eid, "camp-1") for eid in ids])  # fmt: skip
    assert await ledger.claim(R, claims) == [S] * 4
    history = await ledger.history(ids, campaign_id="camp-1", since=0)
    assert history == dict.fromkeys(ids, (1, 1))
    assert [o.endpoint_id for o in await all_outcomes(ledger, R)] == ids


async def test_outcomes_in_line_order_latest_attempt_wins(ledgers: Ledgers) -> None:
    ledger = ledgers.new(page_size=7)
    await ledger.start_run(run_info(R))
    lines = list(range(1, 121))
    random.Random(7).shuffle(lines)
    cycle = ["SUCCESS", "THROTTLED", "FILTERED", "TEMPORARY_FAILURE"]
    for start in range(0, len(lines), 23):
        part = lines[start : start + 23]
        await ledger.record(R, [out(n, cycle[n % 4], reason=f"r{n}") for n in part])
    first = await all_outcomes(ledger, R)
    assert first == [out(n, cycle[n % 4], reason=f"r{n}") for n in range(1, 121)]

    retry = ledgers.new()
    await retry.start_run(run_info(R))  # attempt 2
    retried = [n for n in range(1, 121) if cycle[n % 4] in ("THROTTLED", "TEMPORARY_FAILURE")]
    await retry.record(R, [out(n, "SUCCESS") for n in retried])
    await retry.flush()
    expected = {n: out(n, cycle[n % 4], reason=f"r{n}") for n in range(1, 121)}
    expected.update({n: out(n, "SUCCESS") for n in retried})
    assert await all_outcomes(ledgers.new(page_size=7), R) == [expected[n] for n in range(1, 121)]
    assert await retry.counts(R) == {"SUCCESS": 30 + len(retried), "FILTERED": 30}


async def test_lines_with_status(ledgers: Ledgers) -> None:
    ledger = ledgers.new(page_size=3)
    await ledger.start_run(run_info(R))
    statuses = {1: "SUCCESS", 2: "THROTTLED", 5: "TEMPORARY_FAILURE", 17: "THROTTLED",
                40: "FILTERED", 41: "SUCCESS"}  # fmt: skip
    await ledger.record(R, [out(n, s) for n, s in statuses.items()])
    assert members(await ledger.lines_with_status(R), 100) == set(statuses)
    chosen = await ledger.lines_with_status(R, ["THROTTLED", "TEMPORARY_FAILURE"])
    assert members(chosen, 100) == {2, 5, 17}
    assert members(await ledger.lines_with_status(R, ["SUCCESS"]), 100) == {1, 41}
    assert len(await ledger.lines_with_status(R, [])) == 0
    assert len(await ledger.lines_with_status("other-run")) == 0


async def test_a_shard_reads_its_line_range(ledgers: Ledgers) -> None:
    ledger = ledgers.new(page_size=4)
    await ledger.start_run(run_info(R))
    await ledger.record(R, [out(n, "SUCCESS" if n % 3 else "THROTTLED") for n in range(1, 91)])
    shard = (31, 60)
    assert [o.line for o in await all_outcomes(ledger, R, lines=shard)] == list(range(31, 61))
    assert members(await ledger.lines_with_status(R, lines=shard), 100) == set(range(31, 61))
    throttled = await ledger.lines_with_status(R, ["THROTTLED"], lines=shard)
    assert members(throttled, 100) == {n for n in range(31, 61) if n % 3 == 0}
    assert await all_outcomes(ledger, R, lines=(91, 200)) == []
    assert await all_outcomes(ledger, R, lines=(60, 31)) == []
    assert len(await ledger.lines_with_status(R, lines=(60, 31))) == 0
    assert [o.line for o in await all_outcomes(ledger, R, lines=(0, 2))] == [1, 2]
    assert [o.line for o in await all_outcomes(ledger, R, lines=(90, 90))] == [90]


async def test_counts_stay_exact_across_overwrites_and_duplicate_workers(
    ledgers: Ledgers,
) -> None:
    first = ledgers.new()
    await first.start_run(run_info(R))
    cycle = ["SUCCESS", "THROTTLED", "TEMPORARY_FAILURE", "FILTERED", "HOOK_FAILURE"]
    await first.record(R, [out(n, cycle[n % 5]) for n in range(1, 121)])
    await first.flush()
    assert await first.counts(R) == {s: 24 for s in cycle}

    # A retry of THROTTLED and HOOK_FAILURE, run by two workers that both got the same
    # shards (SQS delivered them twice): each records the same outcomes, concurrently.
    retried = [n for n in range(1, 121) if cycle[n % 5] in ("THROTTLED", "HOOK_FAILURE")]
    coordinator = ledgers.new()
    await coordinator.start_run(run_info(R))
    workers = [ledgers.new(), ledgers.new()]
    final = {n: cycle[n % 5] for n in range(1, 121)}
    final.update({n: "SUCCESS" if n % 2 else "PERMANENT_FAILURE" for n in retried})

    async def work(worker: Any) -> None:
        await worker.get_run(R)
        for start in range(0, len(retried), 10):
            part = retried[start : start + 10]
            await worker.record(R, [out(n, final[n]) for n in part])
            await worker.flush()

    async with anyio.create_task_group() as tg:
        for worker in workers:
            tg.start_soon(work, worker)
    stored = await all_outcomes(ledgers.new(), R)
    assert {o.line: o.status.value for o in stored} == final
    counts = await ledgers.new().counts(R)
    assert counts == dict(Counter(final.values()))
    assert sum(counts.values()) == 120


async def test_two_workers_record_conflicting_outcomes_counts_match(ledgers: Ledgers) -> None:
    """Whatever wins per line, counts equal the stored outcomes, one per line."""
    await ledgers.new().start_run(run_info(R))
    a, b = ledgers.new(), ledgers.new()
    lines = list(range(1, 121))

    async def work(worker: Any, status: str, order: list[int]) -> None:
        for start in range(0, len(order), 20):
            batch = [out(n, status) for n in order[start : start + 20]]
            await worker.record(R, batch)
            await worker.flush()

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, a, "TEMPORARY_FAILURE", lines)
        tg.start_soon(work, b, "HOOK_FAILURE", lines[::-1])
    stored = await all_outcomes(ledgers.new(), R)
    assert [o.line for o in stored] == lines
    counts = await ledgers.new().counts(R)
    assert counts == dict(Counter(o.status.value for o in stored))
    assert sum(counts.values()) == 120


async def test_history_counts_sends(ledgers: Ledgers) -> None:
    ledger = ledgers.new()
    await ledger.start_run(run_info("r1"))
    many = [f"ep-{i}" for i in range(120)]
    await ledger.record("r1", [], sent=[(eid, "camp-1") for eid in many])
    await ledger.start_run(run_info("r2", "camp-2"))
    await ledger.record("r2", [], sent=[("ep-1", "camp-2"), ("ep-2", "camp-2")])
    await ledger.flush()
    before = time.time()
    other = ledgers.new()
    history = await other.history(["ep-1", "ep-2", "ep-3", "ep-none"], campaign_id="camp-1",
                                  since=0)  # fmt: skip
    assert history == {"ep-1": (2, 1), "ep-2": (2, 1), "ep-3": (1, 1)}
    assert await other.history(many, campaign_id="camp-2", since=0) == {
        eid: (2, 1) if eid in ("ep-1", "ep-2") else (1, 0) for eid in many
    }
    later = await other.history(["ep-1", "ep-3"], campaign_id="camp-2", since=before + 3600)
    assert later == {"ep-1": (0, 1), "ep-3": (0, 0)}
    assert await other.history([], campaign_id="camp-1", since=0) == {}


async def test_in_doubt_and_reconcile(ledgers: Ledgers) -> None:
    ledger = ledgers.new(page_size=2)
    await ledger.start_run(run_info(R))
    assert await ledger.claim(R, [sc(f"ep-{n}", n) for n in range(1, 5)]) == [G] * 4
    assert await ledger.claim(R, [sc("ep-5", 5, "ses")]) == [G]
    await ledger.record(R, [out(1, "SUCCESS")], sent=[("ep-1", "camp-1")])
    await ledger.record(R, [out(2, "PERMANENT_FAILURE")], release=["ep-2"])
    await ledger.record(R, [out(3, "TEMPORARY_FAILURE", reason="time-out after the request")])
    await ledger.flush()
    # ep-4: claimed, then the process died before its result.
    resumed = ledgers.new(page_size=2)
    assert sorted(await resumed.in_doubt(R, "outbox")) == [("ep-3", 3), ("ep-4", 4)]
    assert await resumed.in_doubt(R, "ses") == [("ep-5", 5)]
    assert await resumed.in_doubt("other-run", "outbox") == []

    # The outbox file says ep-4 went out and ep-3 did not.
    await resumed.start_run(run_info(R))
    await resumed.record(R, [out(4, "SUCCESS")], release=["ep-3"], sent=[("ep-4", "camp-1")])
    await resumed.flush()
    assert await resumed.in_doubt(R, "outbox") == []
    assert await resumed.claim(R, [sc("ep-4", 4), sc("ep-3", 3)]) == [S, G]
    assert await resumed.history(["ep-4"], campaign_id="camp-1", since=0) == {"ep-4": (1, 1)}


async def test_two_workers_race_for_the_same_endpoints(ledgers: Ledgers) -> None:
    """A shard delivered twice (same lines) and a segment repeating ids (other lines):
    whatever the interleaving, each endpoint is granted exactly once."""
    await ledgers.new().start_run(run_info(R))
    a, b = ledgers.new(), ledgers.new()
    plan = {
        "a": [sc(f"ep-{i}", i) for i in range(0, 90)],
        "b": [sc(f"ep-{i}", i) for i in range(30, 120)]
        + [sc(f"ep-{i}", 1000 + i) for i in range(20)],
    }
    for claims in plan.values():
        random.Random(len(claims)).shuffle(claims)
    answers: list[tuple[SendClaim, Claim]] = []

    async def work(worker: Any, claims: list[SendClaim]) -> None:
        for start in range(0, len(claims), 20):
            part = claims[start : start + 20]
            got = await worker.claim(R, part)
            answers.extend(zip(part, got, strict=True))

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, a, plan["a"])
        tg.start_soon(work, b, plan["b"])
    by_endpoint: dict[str, list[tuple[SendClaim, Claim]]] = {}
    for claim, answer in answers:
        by_endpoint.setdefault(claim.endpoint_id, []).append((claim, answer))
    assert len(by_endpoint) == 120
    for eid, seen in by_endpoint.items():
        granted = [c for c, answer in seen if answer is G]
        assert len(granted) == 1, f"{eid}: granted {len(granted)} times"
        for claim, answer in seen:
            if answer is not G:
                assert answer is (D if claim.line == granted[0].line else X), (eid, seen)


async def test_close_makes_records_durable(ledgers: Ledgers) -> None:
    ledger = ledgers.new()
    await ledger.start_run(run_info(R))
    await ledger.record(R, [out(n, "SUCCESS") for n in range(1, 11)],
                        sent=[(f"ep-{n}", "camp-1") for n in range(1, 11)])  # fmt: skip
    await ledger.aclose()
    reopened = ledgers.new()
    assert await reopened.counts(R) == {"SUCCESS": 10}
    assert len(await all_outcomes(reopened, R)) == 10
    assert (await reopened.history(["ep-3"], campaign_id="camp-1", since=0)) == {"ep-3": (1, 1)}


def test_run_info_round_trip_fields_are_covered() -> None:
    """A new RunInfo field must be stored by both ledgers: this lists what they store."""
    assert set(RunInfo.__dataclass_fields__) == {
        "run_id", "config", "segment", "campaign_id", "application_id", "started_at",
        "attempt", "state", "finished_at", "extra", "fingerprints",
    }  # fmt: skip
    assert Status.SUCCESS == "SUCCESS"
