"""What only the DynamoDB ledger does: the table, retries, lost answers, fleet races,
the fleet's shard records.

Faults come from ``DynamoProxy`` in front of moto: an injected throttle or 5xx is a
real HTTP answer that aiobotocore parses; a "lost" answer is a request moto applied
whose response the client never saw.
"""

from __future__ import annotations

from collections import Counter

import pytest

from dispatcher.aws import AwsClients
from dispatcher.delivery import IN_DOUBT_REASON
from dispatcher.errors import LedgerError
from dispatcher.ledger import Claim, SendClaim
from dispatcher.ledger.dynamodb import DynamoLedger, DynamoLedgerError
from tests.ledger.conftest import REGION, Ledgers
from tests.ledger.helpers import all_outcomes, out, run_info

pytestmark = pytest.mark.anyio

R = "run-1"


async def test_create_table_is_idempotent_and_checks_the_schema(dynamo: Ledgers) -> None:
    ledger = dynamo.new()
    assert await ledger.create_table() is False, "the fixture created it"
    assert await ledger.check_table() == "ACTIVE"

    clients = AwsClients(REGION)
    try:
        client = await clients.client("dynamodb")
        await client.create_table(
            TableName="not-a-ledger", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )  # fmt: skip
    finally:
        await clients.aclose()
    wrong = dynamo.new()
    wrong.table = "not-a-ledger"
    with pytest.raises(DynamoLedgerError, match="'pk' \\(HASH, S\\)"):
        await wrong.check_table()


async def test_missing_table_is_a_ledger_error(dynamo: Ledgers) -> None:
    ledger = DynamoLedger("no-such-table", region=REGION)
    dynamo.opened.append(ledger)
    with pytest.raises(DynamoLedgerError) as caught:
        await ledger.claim(R, [SendClaim("ep-1", 1, "outbox")])
    assert isinstance(caught.value, LedgerError)
    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.operation == "PutItem"
    assert "(create it with: dispatcher ledger create-table no-such-table)" in str(caught.value)


async def test_throttling_and_server_errors_are_retried(dynamo: Ledgers) -> None:
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new(max_backoff=0.05)
    await ledger.start_run(run_info(R))
    proxy.fail("PutItem", "ProvisionedThroughputExceededException", times=2)
    assert await ledger.claim(R, [SendClaim("ep-1", 1, "outbox")]) == [Claim.GRANTED]
    assert proxy.count("PutItem") == 1 + 3, "start_run's put, then the claim's three tries"

    proxy.fail("PutItem", "ThrottlingException", match='"B#')  # an outcome block
    proxy.fail("BatchWriteItem", "RequestLimitExceeded")
    proxy.fail("Query", "InternalServerError", status=500)
    proxy.fail("PutItem", "ServiceUnavailable", status=503, match='"B#')
    await ledger.record(R, [out(1, "PERMANENT_FAILURE")], release=["ep-1"],
                        sent=[("ep-9", "camp-1")])  # fmt: skip
    assert await ledger.counts(R) == {"PERMANENT_FAILURE": 1}
    assert await ledger.claim(R, [SendClaim("ep-1", 1, "outbox")]) == [Claim.GRANTED]
    assert await ledger.history(["ep-9"], campaign_id="camp-1", since=0) == {"ep-9": (1, 1)}
    for operation in ("BatchWriteItem", "Query", "PutItem"):
        assert proxy.count(operation) >= 2, operation
    assert proxy.faults and all(f.times == 0 for f in proxy.faults), "every fault was met"


async def test_throttling_gives_up_after_the_attempts(dynamo: Ledgers) -> None:
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new(attempts=3, max_backoff=0.05)
    proxy.fail("PutItem", "ThrottlingException", times=-1)
    with pytest.raises(DynamoLedgerError) as caught:
        await ledger.claim(R, [SendClaim("ep-1", 1, "outbox")])
    assert (caught.value.code, caught.value.operation) == ("ThrottlingException", "PutItem")
    assert proxy.count("PutItem") == 3


async def test_other_client_errors_are_not_retried(dynamo: Ledgers) -> None:
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new()
    proxy.fail("GetItem", "AccessDeniedException", times=-1)
    with pytest.raises(DynamoLedgerError) as caught:
        await ledger.get_run(R)
    assert caught.value.code == "AccessDeniedException"
    assert proxy.count("GetItem") == 1


async def test_unreachable_endpoint_is_retried_then_a_ledger_error(
    dynamo: Ledgers, free_tcp_port: int
) -> None:
    ledger = DynamoLedger(dynamo.table, region=REGION, attempts=2, max_backoff=0.01,
                          endpoint_url=f"http://127.0.0.1:{free_tcp_port}")  # fmt: skip
    dynamo.opened.append(ledger)
    with pytest.raises(DynamoLedgerError, match="failed 2 times"):
        await ledger.get_run(R)


async def test_a_lost_claim_answer_is_still_granted(dynamo: Ledgers) -> None:
    """moto stored the claim but the answer was lost: the retry finds its own token."""
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new(max_backoff=0.05)
    await ledger.start_run(run_info(R))
    proxy.reset_stats()
    proxy.lose("PutItem")
    assert await ledger.claim(R, [SendClaim("ep-1", 1, "outbox")]) == [Claim.GRANTED]
    assert proxy.count("PutItem") == 2
    assert await dynamo.new().claim(R, [SendClaim("ep-1", 1, "outbox")]) == [Claim.IN_DOUBT]
    # A later claim call by the same ledger is another delivery, so in doubt too.
    assert await ledger.claim(R, [SendClaim("ep-1", 1, "outbox")]) == [Claim.IN_DOUBT]


async def test_a_lost_block_write_answer_counts_once(dynamo: Ledgers) -> None:
    """moto stored the block but the answer was lost: the retry's condition fails, the
    stored block already holds these lines, and nothing is written or counted twice."""
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new(max_backoff=0.05)
    await ledger.start_run(run_info(R))
    proxy.reset_stats()
    proxy.lose("PutItem", match='"B#')
    await ledger.record(R, [out(n, "SUCCESS" if n % 3 else "FILTERED") for n in range(1, 31)])
    await ledger.flush()
    assert proxy.count("PutItem") == 2, "lost, then retried (its condition fails: no change)"
    assert await ledger.counts(R) == {"SUCCESS": 20, "FILTERED": 10}
    assert len(await all_outcomes(dynamo.new(), R)) == 30


async def test_counts_are_exact_when_a_writer_dies_between_blocks(dynamo: Ledgers) -> None:
    """Counts live in the block item beside the lines they count: a writer that dies
    after one block and before the next leaves counts that match what is stored."""
    proxy = dynamo.proxy
    assert proxy is not None
    dying = dynamo.new(attempts=1, concurrency=1)
    await dying.start_run(run_info(R))
    proxy.fail("PutItem", "AccessDeniedException", match='"0000000001"')  # block 1's item
    await dying.record(R, [out(n, "SUCCESS" if n % 2 else "THROTTLED") for n in range(1, 301)])
    with pytest.raises(DynamoLedgerError, match="AccessDenied"):
        await dying.flush()
    resumed = dynamo.new()
    stored = await all_outcomes(resumed, R)
    assert [o.line for o in stored] == list(range(1, 256)), "block 0 (lines 0-255) only"
    assert await resumed.counts(R) == dict(Counter(o.status.value for o in stored))
    assert await resumed.counts(R) == {"SUCCESS": 128, "THROTTLED": 127}


async def test_outcomes_go_in_one_write_per_block_of_256_lines(dynamo: Ledgers) -> None:
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new()
    await ledger.start_run(run_info(R))
    proxy.reset_stats()
    await ledger.record(R, [out(n, "SUCCESS") for n in range(1, 201)])
    assert proxy.count("PutItem") == 0, "buffered until the block is in, or a flush"
    await ledger.record(R, [out(n, "SUCCESS") for n in range(201, 600)])
    assert proxy.count("PutItem") == 2, "blocks 0 and 1 (lines 0-511) are in: written"
    await ledger.flush()
    assert proxy.count("PutItem") == 3, "block 2 at the flush"
    assert proxy.count("UpdateItem") == proxy.count("TransactWriteItems") == 0
    assert await ledger.counts(R) == {"SUCCESS": 599}


async def test_calls_in_flight_are_bounded(dynamo: Ledgers) -> None:
    proxy = dynamo.proxy
    assert proxy is not None
    ledger = dynamo.new(concurrency=3)
    await ledger.start_run(run_info(R))
    proxy.reset_stats()
    claims = [SendClaim(f"ep-{n}", n, "outbox") for n in range(40)]
    assert await ledger.claim(R, claims) == [Claim.GRANTED] * 40
    assert 2 <= proxy.max_in_flight <= 3


async def test_same_attempt_first_recorder_wins_but_success_beats_a_failure(
    dynamo: Ledgers,
) -> None:
    """Two workers on one shard (SQS delivered it twice), one attempt of the run."""
    await dynamo.new().start_run(run_info(R))
    a, b = dynamo.new(), dynamo.new()
    # Line 1: b found the claim in doubt before a (which sent it) recorded SUCCESS.
    await b.record(R, [out(1, "TEMPORARY_FAILURE", reason=IN_DOUBT_REASON)])
    await b.flush()
    await a.record(R, [out(1, "SUCCESS")])
    await a.flush()
    # Line 2: two different failures; the first one recorded stays.
    await b.record(R, [out(2, "FILTERED")])
    await b.flush()
    await a.record(R, [out(2, "HOOK_FAILURE")])
    await a.flush()
    # Line 3: the same SUCCESS twice. Lines 4 and 5: the same rules inside one buffer.
    await a.record(R, [out(3, "SUCCESS"), out(4, "TEMPORARY_FAILURE"), out(5, "FILTERED")])
    await a.record(R, [out(4, "SUCCESS"), out(5, "HOOK_FAILURE")])
    await b.record(R, [out(3, "SUCCESS")])
    await a.flush()
    await b.flush()
    stored = {o.line: o.status.value for o in await all_outcomes(a, R)}
    assert stored == {1: "SUCCESS", 2: "FILTERED", 3: "SUCCESS", 4: "SUCCESS", 5: "FILTERED"}
    assert await b.counts(R) == {"SUCCESS": 3, "FILTERED": 2}


async def test_a_later_attempt_wins_and_a_stale_worker_cannot_undo_it(dynamo: Ledgers) -> None:
    first = dynamo.new()
    await first.start_run(run_info(R))
    await first.record(R, [out(1, "SUCCESS"), out(2, "THROTTLED")])
    await first.flush()
    stale = dynamo.new()
    assert (await stale.get_run(R)).attempt == 1

    retry = dynamo.new()
    await retry.start_run(run_info(R))
    assert (await retry.get_run(R)).attempt == 2
    await retry.record(R, [out(1, "PERMANENT_FAILURE"), out(2, "SUCCESS")])
    await retry.flush()
    # A worker still on attempt 1 (a shard of the first pass, delivered late):
    await stale.record(R, [out(1, "SUCCESS"), out(2, "THROTTLED"), out(3, "FILTERED")])
    await stale.flush()
    stored = {o.line: o.status.value for o in await all_outcomes(retry, R)}
    assert stored == {1: "PERMANENT_FAILURE", 2: "SUCCESS", 3: "FILTERED"}
    counts = await retry.counts(R)
    assert counts == {"PERMANENT_FAILURE": 1, "SUCCESS": 1, "FILTERED": 1}
    assert counts == dict(Counter(stored.values()))


async def test_history_counts_one_send_per_endpoint_per_run(dynamo: Ledgers) -> None:
    """A retried call or a redelivered record of the same send cannot count twice."""
    ledger = dynamo.new()
    await ledger.start_run(run_info(R))
    await ledger.record(R, [], sent=[("ep-1", "camp-1")])
    await ledger.flush()
    await ledger.record(R, [], sent=[("ep-1", "camp-1")])
    assert await ledger.history(["ep-1"], campaign_id="camp-1", since=0) == {"ep-1": (1, 1)}


async def test_a_writer_with_a_stale_block_merges_what_others_wrote(dynamo: Ledgers) -> None:
    """Each block write is conditioned on the version it read: a writer whose idea of a
    block is stale fails that condition, reads the block and merges into it."""
    a, b = dynamo.new(), dynamo.new()
    await a.start_run(run_info(R))
    await a.record(R, [out(n, "SUCCESS") for n in range(1, 11)])
    await a.flush()  # a knows block 0 at version 1
    await b.record(R, [out(n, "FILTERED") for n in range(11, 21)])
    await b.flush()  # b meets a's block, merges: version 2
    await a.record(R, [out(n, "THROTTLED") for n in range(21, 31)] + [out(5, "FILTERED")])
    await a.flush()  # a's version 1 is stale: merge again (line 5 stays SUCCESS)
    clients = AwsClients(REGION)
    try:
        client = await clients.client("dynamodb")
        key = {"pk": {"S": f"B#{R}#00"}, "sk": {"S": "0000000000"}}
        item = (await client.get_item(TableName=dynamo.table, Key=key, ConsistentRead=True))["Item"]
    finally:
        await clients.aclose()
    assert item["v"] == {"N": "3"}
    stored = {o.line: o.status.value for o in await all_outcomes(dynamo.new(), R)}
    assert stored == {**dict.fromkeys(range(1, 11), "SUCCESS"),
                      **dict.fromkeys(range(11, 21), "FILTERED"),
                      **dict.fromkeys(range(21, 31), "THROTTLED")}  # fmt: skip
    assert await dynamo.new().counts(R) == {"SUCCESS": 10, "FILTERED": 10, "THROTTLED": 10}


async def test_shard_bookkeeping(dynamo: Ledgers) -> None:
    """The fleet's shard records (``FleetLedger``; a local run has no shards)."""
    ledgers = dynamo
    ledger = ledgers.new()
    await ledger.start_run(run_info(R))
    assert await ledger.shards(R) == []
    await ledger.shard_started(R, "10", worker="w4")
    await ledger.shard_started(R, "1", worker="w1")
    await ledger.shard_started(R, "2", worker="w2")
    await ledgers.new().shard_started(R, "1", worker="w3")  # SQS delivered it again
    await ledger.shard_done(R, "1", {"SUCCESS": 3, "FILTERED": 1}, hook_invocations=2,
                            ignored_hook_ids=4, failures=[("HOOK_FAILURE", "hook h: boom", 7)])
    await ledger.shard_started(R, "3", worker="w1")
    await ledger.shard_done(R, "3", {"SUCCESS": 1})
    await ledgers.new().shard_started(R, "3", worker="w2")  # again, after it was done
    shards = await ledgers.new().shards(R)
    assert [s["shard_id"] for s in shards] == ["1", "2", "3", "10"], "numeric ids by number"
    one, two, three, _ = shards
    assert (one["state"], one["worker"], one["deliveries"]) == ("DONE", "w3", 2)
    assert (one["counts"], one["hook_invocations"]) == ({"SUCCESS": 3, "FILTERED": 1}, 2)
    assert one["ignored_hook_ids"] == 4
    assert one["failures"] == [("HOOK_FAILURE", "hook h: boom", 7)]
    assert one["started_at"] and one["last_started_at"] and one["finished_at"]
    assert (two["state"], two["worker"], two["deliveries"]) == ("RUNNING", "w2", 1)
    assert (two["counts"], two["hook_invocations"], two["finished_at"]) == ({}, 0, None)
    assert (three["state"], three["deliveries"], three["counts"]) == ("DONE", 2, {"SUCCESS": 1})
    assert (three["ignored_hook_ids"], three["failures"]) == (0, [])
    assert await ledger.shards("other-run") == []
