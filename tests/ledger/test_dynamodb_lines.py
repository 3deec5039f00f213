"""Claims by line (``DynamoLedger.claim_lines``): what a fleet worker claims with.

A page of 2048 lines is one item; claims made together share one conditional write;
a send's success rides on the worker's next claim. The guarantees are the contract's:
each line granted once whatever workers race, a crash between claim and send leaves the
line in doubt and never sent again, a release lets a later attempt send.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from dispatcher.delivery import IN_DOUBT_REASON
from dispatcher.ledger import Claim, SendClaim
from dispatcher.ledger.dynamodb._items import page_key
from tests.ledger.conftest import REGION, Ledgers
from tests.ledger.helpers import out, run_info

pytestmark = pytest.mark.anyio

R = "run-1"
G, D, S, X = Claim.GRANTED, Claim.IN_DOUBT, Claim.SENT, Claim.OTHER_LINE


def sc(line: int, eid: str | None = None) -> SendClaim:
    return SendClaim(eid or f"ep-{line}", line, "sms")


async def test_answers_and_what_a_crash_leaves(dynamo: Ledgers) -> None:
    worker = dynamo.new()
    await worker.start_run(run_info(R))
    assert await worker.claim_lines(R, []) == []
    assert await worker.claim_lines(R, [sc(1), sc(2), sc(3)]) == [G, G, G]
    assert await worker.claim_lines(R, [sc(1), sc(1)]) == [D, D], "claimed: never again"
    await worker.record(R, [out(1, "SUCCESS")], sent=[("ep-1", "camp-1")])
    await worker.record(R, [out(2, "PERMANENT_FAILURE")], release=["ep-2"])
    assert await worker.claim_lines(R, [sc(4), sc(4)]) == [G, D]
    # ...killed here, without a flush: its outcomes are lost, its claim round is not.
    redelivered = dynamo.new()
    assert len(await redelivered.lines_with_status(R)) == 0, "outcomes go by block"
    answers = await redelivered.claim_lines(R, [sc(1), sc(2), sc(3), sc(4), sc(5)])
    assert answers == [S, G, D, D, G], "sent, released, in doubt, in doubt, new"


async def test_a_crash_between_claim_and_send_is_in_doubt_in_every_later_attempt(
    dynamo: Ledgers,
) -> None:
    crashed = dynamo.new()
    await crashed.start_run(run_info(R))
    assert await crashed.claim_lines(R, [sc(n) for n in range(1, 11)]) == [G] * 10
    # ...killed before any send returned. SQS delivers the shard again:
    second = dynamo.new()
    await second.get_run(R)
    assert await second.claim_lines(R, [sc(n) for n in range(1, 11)]) == [D] * 10
    await second.record(R, [out(n, "TEMPORARY_FAILURE", reason=IN_DOUBT_REASON)
                            for n in range(1, 11)])  # fmt: skip
    await second.flush()
    # A later attempt of the run (submitted again) retries them: still never sent.
    third = dynamo.new()
    await third.start_run(run_info(R))
    assert await third.claim_lines(R, [sc(n) for n in range(1, 11)]) == [D] * 10
    assert await third.counts(R) == {"TEMPORARY_FAILURE": 10}


async def test_success_beats_in_doubt_when_the_sender_records_last(dynamo: Ledgers) -> None:
    """Two deliveries of one shard: b finds a's claim in doubt before a has recorded;
    a's SUCCESS still wins the line, and a later claim answers SENT."""
    a, b = dynamo.new(), dynamo.new()
    await a.start_run(run_info(R))
    assert await a.claim_lines(R, [sc(7)]) == [G]
    assert await b.claim_lines(R, [sc(7)]) == [D]
    await b.record(R, [out(7, "TEMPORARY_FAILURE", reason=IN_DOUBT_REASON)])
    await b.flush()
    await a.record(R, [out(7, "SUCCESS")])
    await a.flush()
    assert {o.line: o.status for o in [o async for batch in a.outcomes(R) for o in batch]} == {
        7: "SUCCESS"
    }
    assert await dynamo.new().claim_lines(R, [sc(7)]) == [S]


async def test_two_workers_race_for_the_same_lines(dynamo: Ledgers) -> None:
    """A shard delivered twice, claimed by both in many concurrent batches (across a
    page boundary): each line is granted exactly once; the loser's answers are in doubt."""
    await dynamo.new().start_run(run_info(R))
    lines = list(range(1990, 2110))  # pages 0 and 1
    answers: list[tuple[int, Claim]] = []

    async def work(worker: Any, seed: int) -> None:
        order = lines[:]
        random.Random(seed).shuffle(order)
        async with anyio.create_task_group() as tg:  # 8 send workers' claims in flight
            for start in range(0, len(order), 10):
                part = order[start : start + 10]

                async def claim(part: list[int] = part) -> None:
                    got = await worker.claim_lines(R, [sc(n) for n in part])
                    answers.extend(zip(part, got, strict=True))

                tg.start_soon(claim)

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, dynamo.new(), 1)
        tg.start_soon(work, dynamo.new(), 2)
    granted = [line for line, answer in answers if answer is G]
    assert sorted(granted) == lines, "each line granted exactly once"
    assert {answer for _, answer in answers} <= {G, D}


async def test_claims_made_together_share_one_write(dynamo: Ledgers) -> None:
    proxy = dynamo.proxy
    assert proxy is not None
    proxy.meter = True
    worker = dynamo.new()
    await worker.start_run(run_info(R))
    proxy.reset_stats()
    results: list[list[Claim]] = []

    async def claim(part: list[int]) -> None:
        results.append(await worker.claim_lines(R, [sc(n) for n in part]))

    async with anyio.create_task_group() as tg:
        for start in range(1, 201, 10):
            tg.start_soon(claim, list(range(start, start + 10)))
    assert results == [[G] * 10] * 20
    assert proxy.count("PutItem") <= 2, "20 claims, one page: group-committed"
    assert proxy.write_units == proxy.count("PutItem"), "a page write is one write unit"


async def test_a_page_stays_one_write_unit_whatever_it_holds(dynamo: Ledgers) -> None:
    """Every other line of a whole page claimed, half of them sent: the least
    compressible bitmaps a page can hold, still under 1 KB."""
    proxy = dynamo.proxy
    assert proxy is not None
    proxy.meter = True
    worker = dynamo.new()
    await worker.start_run(run_info(R))
    picked = random.Random(3).sample(range(2048, 4096), 1024)
    assert await worker.claim_lines(R, [sc(n) for n in picked]) == [G] * 1024
    await worker.record(R, [out(n, "SUCCESS") for n in picked[::2]])
    proxy.reset_stats()
    assert await worker.claim_lines(R, [sc(4096 + 5)]) == [G], "page 2"
    assert proxy.count("PutItem") == 2, "page 2's claim, page 1's sent bits"
    assert proxy.write_units == 2
    from dispatcher.aws import AwsClients
    from dispatcher.ledger.dynamodb._items import item_size

    clients = AwsClients(REGION)
    try:
        client = await clients.client("dynamodb")
        page = (await client.get_item(TableName=dynamo.table, Key=page_key(R, 1)))["Item"]
    finally:
        await clients.aclose()
    assert item_size(page) <= 1024


async def test_shared_ids_are_claimed_by_id(dynamo: Ledgers) -> None:
    """Lines whose endpoint id other lines share go through endpoint-id claims: two
    lines with one id are never both granted, whatever page they are on."""
    worker = dynamo.new()
    await worker.start_run(run_info(R))
    shared = {5, 3000}
    claims = [sc(4), sc(5, "twin"), sc(3000, "twin"), sc(3001)]
    assert await worker.claim_lines(R, claims, shared=shared) == [G, G, X, G]
    await worker.record(R, [out(5, "SUCCESS", eid="twin")], sent=[("twin", "camp-1")])
    assert await worker.claim_lines(R, [sc(6)]) == [G], "a claim round marks twin sent"
    other = dynamo.new()
    answers = await other.claim_lines(R, [sc(3000, "twin"), sc(5, "twin")], shared=shared)
    assert answers == [X, S]


async def test_a_lost_page_write_answer_is_still_granted(dynamo: Ledgers) -> None:
    """moto stored the page but the answer was lost: the retry's condition fails, and
    the page's recent write tokens include this writer's, so its claims stand."""
    proxy = dynamo.proxy
    assert proxy is not None
    worker = dynamo.new(max_backoff=0.05)
    await worker.start_run(run_info(R))
    proxy.reset_stats()
    proxy.lose("PutItem", match='"L#')
    assert await worker.claim_lines(R, [sc(1), sc(2)]) == [G, G]
    assert proxy.count("PutItem") == 2
    assert await dynamo.new().claim_lines(R, [sc(1), sc(2)]) == [D, D]


async def test_a_release_lets_a_later_attempt_send(dynamo: Ledgers) -> None:
    worker = dynamo.new()
    await worker.start_run(run_info(R))
    assert await worker.claim_lines(R, [sc(1), sc(2)]) == [G, G]
    await worker.record(R, [out(1, "THROTTLED"), out(2, "TEMPORARY_FAILURE")], release=["ep-1"])
    await worker.flush()
    retry = dynamo.new()
    await retry.start_run(run_info(R))
    assert await retry.claim_lines(R, [sc(1), sc(2)]) == [G, D]
