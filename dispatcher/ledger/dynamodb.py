"""The fleet ledger: one DynamoDB table shared by every worker of a run.

Same interface and answers as ``SqliteLedger``. Where SQLite runs a transaction, this
module uses single-item conditional writes, so workers on separate machines that race
on one shard (SQS may deliver it twice) still send each endpoint at most once and
count each record exactly once:

* a send claim is a conditional ``PutItem`` (``attribute_not_exists``) of the item
  (run, endpoint id). A failed condition returns the holder's line, and the answer is
  SQLite's: OTHER_LINE; for the same line SENT when that line's outcome is SUCCESS,
  else IN_DOUBT. A claim carries its caller's token, so a retried put whose first
  answer was lost still comes back GRANTED.
* outcomes live in *blocks* of 64 consecutive lines, one item each, with the block's
  count per status. One conditional ``UpdateItem`` changes lines and counts together,
  each line conditioned on what it replaces (absent, or that attempt and status). A
  failed condition returns the block; each line then supersedes what is stored (a
  later attempt, or SUCCESS over a failure of the same attempt) or is dropped as a
  duplicate. Retries, lost answers and duplicate workers cannot count a record twice.
* ``counts()`` reads *tallies*: one small item per 4096 lines holding, per block, a
  snapshot of the block's counts and version. A writer publishes the snapshot after
  its block update, conditioned on a newer version (idempotent, order-free). If a
  writer dies in between, the next ``lines_with_status`` over those lines (every
  resume, retry and redelivered shard starts with one) publishes what is missing.

No ``TransactWriteItems``: besides costing double, moto's copies the whole table per
transaction item, which no fleet test survives.

Table: one table, string keys ``pk`` (HASH) and ``sk`` (RANGE), no index::

    item          pk                            sk                 attributes
    run           R#{run}                       RUN                info (JSON), attempt,
                                                                   summary, v
    tally         R#{run}                       T#{line//4096:08d} b{block} = {v, c}
    shard         R#{run}                       S#{shard id}       w, n, t0, ts, t1, c, h
    block         O#{run}#{block % 16:02d}      {block:010d}       v, c:{STATUS},
                                                                   x{line} = {a,s,e,r,c,t}
    send claim    C#{run}#{crc32(id) % 32:02d}  i:{endpoint id}    e, l, sn, tk
    address       A#{run}#{digest % 32:02d}     {blake2b-128 hex}  l
    send          E#i:{endpoint id}             r:{run}            t (sent_at), c (campaign)

(block = line // 64.) Blocks are spread over 16 partitions, so the consecutive lines of
a shard do not all load one partition, and read in line order by merging the 16 sorted
Queries; a line range is a ``BETWEEN`` on the block key. Ids over 512 bytes are keyed by
``h:{sha256}`` instead of ``i:{id}``; outcome reasons are clipped to 4000 characters
(a block stays far below DynamoDB's 400 KB). The send history is an item per send,
keyed (endpoint, run) since an endpoint is sent at most once per run: written 25 a
call (``BatchWriteItem``, idempotent), read with one Query per endpoint (caps only).

IAM actions on the table: ``dynamodb:GetItem``, ``PutItem``, ``UpdateItem``, ``Query``,
``BatchGetItem``, ``BatchWriteItem``, ``DescribeTable`` (and ``CreateTable`` for
``create_table()``).

Additions to the Ledger protocol that a fleet needs (``SqliteLedger`` gains them too):
``claim_addresses`` (duplicate addresses across workers) and ``shard_started`` /
``shard_done`` / ``shards`` (what ``dispatcher status`` shows per shard).

A worker that joins a run does not call ``start_run`` (that bumps the attempt): it
calls ``get_run`` per shard, which also tells this ledger the attempt to stamp on
outcomes (a ledger that never saw the run reads it once, on its first record).
botocore's retries are off; throttling, 5xx and connection errors are retried here
with jittered exponential backoff (tenacity), other errors raise ``DynamoLedgerError``.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import aiohttp
import anyio
import orjson
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from dispatcher.aws import AwsClients
from dispatcher.errors import LedgerError
from dispatcher.ledger.base import Claim, LineSet, RunInfo, SendClaim
from dispatcher.model import Outcome, Status

__all__ = ["DynamoLedger", "DynamoLedgerError", "create_table_sync"]

T = TypeVar("T")
Item = dict[str, Any]
"""An item in DynamoDB's wire format: ``{"name": {"S": "value"}, ...}``."""

FORMAT_VERSION = 1
BLOCK_LINES = 64
"""Lines per outcome block: one conditional update's expressions stay under 4 KB."""
TALLY_BLOCKS = 64
BLOCK_PARTITIONS = 16
CLAIM_PARTITIONS = 32
ADDRESS_PARTITIONS = 32
BATCH_WRITE_ITEMS = 25
BATCH_GET_KEYS = 100
FLUSH_OUTCOMES = 1000
FLUSH_OPERATIONS = 500
MAX_RAW_ID = 512
MAX_REASON = 4000
MAX_BLOCK = 10**10 - 1

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException",
        "RequestLimitExceeded", "InternalServerError", "InternalFailure",
        "ServiceUnavailable", "ServiceUnavailableException", "LimitExceededException",
    }
)  # fmt: skip
"""Error codes worth another attempt (any HTTP 5xx is too)."""


class DynamoLedgerError(LedgerError):
    """A DynamoDB call failed for good; ``code`` is the AWS error code, when there is one."""

    def __init__(
        self, message: str, *, code: str | None = None, operation: str | None = None
    ) -> None:
        self.code = code
        self.operation = operation
        super().__init__(message)


class _Transient(Exception):
    """One attempt failed in a way the next one may not (throttled, 5xx, connection)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if message else code)


class _ConditionFailed(Exception):
    """A conditional write met an item that fails the condition (``item``, if any)."""

    def __init__(self, item: Item | None) -> None:
        self.item = item
        super().__init__("ConditionalCheckFailedException")


# -- keys and attribute values -----------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _str(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _int(item: Item, name: str) -> int:
    return int(item[name]["N"])


def _id_key(endpoint_id: str) -> str:
    """A key for an endpoint id: the id itself, or its digest when too long for a key."""
    raw = endpoint_id.encode()
    if len(raw) <= MAX_RAW_ID:
        return "i:" + endpoint_id
    return "h:" + hashlib.sha256(raw).hexdigest()


def _run_key(run_id: str, sk: str) -> Item:
    return {"pk": _s(f"R#{run_id}"), "sk": _s(sk)}


def _block_key(run_id: str, block: int) -> Item:
    return {"pk": _s(f"O#{run_id}#{block % BLOCK_PARTITIONS:02d}"), "sk": _s(f"{block:010d}")}


def _tally_key(run_id: str, block: int) -> Item:
    return _run_key(run_id, f"T#{block // TALLY_BLOCKS:08d}")


def _claim_key(run_id: str, endpoint_id: str) -> Item:
    bucket = zlib.crc32(endpoint_id.encode()) % CLAIM_PARTITIONS
    return {"pk": _s(f"C#{run_id}#{bucket:02d}"), "sk": _s(_id_key(endpoint_id))}


def _address_key(run_id: str, fingerprint: str) -> Item:
    digest = hashlib.blake2b(fingerprint.encode(), digest_size=16).hexdigest()
    bucket = int(digest[:4], 16) % ADDRESS_PARTITIONS
    return {"pk": _s(f"A#{run_id}#{bucket:02d}"), "sk": _s(digest)}


def _send_key(endpoint_id: str, run_id: str) -> Item:
    return {"pk": _s("E#" + _id_key(endpoint_id)), "sk": _s("r:" + run_id)}


def _supersedes(attempt: int, status: str, old_attempt: int, old_status: str) -> bool:
    """Does an outcome replace the stored one? A later attempt does; within one attempt
    the first recorder wins, except that SUCCESS (the worker that sent) beats a failure
    (a duplicate worker that found the claim in doubt, or failed its hook)."""
    if attempt != old_attempt:
        return attempt > old_attempt
    return status == Status.SUCCESS and old_status != Status.SUCCESS


def _entry(attempt: int, o: Outcome) -> dict[str, Any]:
    """One line of a block: ``{a, s, e, r, c, t}`` (absent fields are None)."""
    fields: dict[str, Any] = {"a": _n(attempt), "s": _s(o.status.value)}
    reason = o.reason if o.reason is None or len(o.reason) <= MAX_REASON else (
        o.reason[: MAX_REASON - 1] + "…")  # fmt: skip
    for name, value in (("e", o.endpoint_id), ("r", reason), ("c", o.channel_type),
                        ("t", o.treatment_id)):  # fmt: skip
        if value is not None:
            fields[name] = _s(value)
    return {"M": fields}


def _lines_of(block: Item) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line, entry fields) for every line stored in a block item."""
    for name, value in block.items():
        if name.startswith("x"):
            yield int(name[1:]), value["M"]


def _outcome(line: int, entry: dict[str, Any]) -> Outcome:
    return Outcome(line, _str(entry, "e"), Status(entry["s"]["S"]), _str(entry, "r"),
                   _str(entry, "c"), _str(entry, "t"))  # fmt: skip


def _block_number(item: Item) -> int:
    return int(item["sk"]["S"])


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _op_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


class _Cursor:
    """One Query, a page at a time (``outcomes`` merges 16 of them in line order)."""

    def __init__(self, ledger: DynamoLedger, request: dict[str, Any]) -> None:
        self.ledger = ledger
        self.request = request
        self.buffer: deque[Item] = deque()
        self.done = False

    async def fill(self) -> bool:
        """Make the buffer non-empty if the Query has more; False when exhausted."""
        while not self.buffer and not self.done:
            page = await self.ledger._call("query", **self.request)
            self.buffer.extend(page.get("Items", ()))
            last = page.get("LastEvaluatedKey")
            if last:
                self.request["ExclusiveStartKey"] = last
            else:
                self.done = True
        return bool(self.buffer)


class DynamoLedger:
    """The Ledger interface over one DynamoDB table, safe for many concurrent workers.

    ``clients`` shares the run's ``AwsClients``; without it the ledger makes its own for
    ``region`` (and closes them in ``aclose``). ``concurrency`` bounds the calls one
    ledger method has in flight; ``attempts`` bounds tries per call (throttling, 5xx,
    connection errors); ``page_size`` sets Query's ``Limit`` (None: 1 MB pages).
    """

    def __init__(
        self,
        table: str,
        *,
        clients: AwsClients | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        concurrency: int = 16,
        attempts: int = 10,
        max_backoff: float = 5.0,
        page_size: int | None = None,
    ) -> None:
        if not table:
            raise ValueError("'table' must be a DynamoDB table name")
        if concurrency < 1:
            raise ValueError("'concurrency' must be >= 1")
        if attempts < 1:
            raise ValueError("'attempts' must be >= 1")
        if clients is None and not region:
            raise ValueError("'region' is required when no 'clients' are given")
        self.table = table
        self.concurrency = concurrency
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.page_size = page_size
        self._endpoint_url = endpoint_url
        self._own_clients = clients is None
        self._clients = clients or AwsClients(
            region or "", max_pool_connections=max(concurrency * 2, 10)
        )
        self._client: Any = None
        self._attempt: dict[str, int] = {}
        # Buffered writes, keyed so that a later record of the same thing replaces or
        # yields to an earlier one exactly as the table would.
        self._outcomes: dict[tuple[str, int], tuple[int, Outcome]] = {}
        self._releases: set[tuple[str, str]] = set()
        self._history: dict[tuple[str, str], tuple[float, str]] = {}
        self._flush_lock = anyio.Lock()

    def __repr__(self) -> str:
        pending = len(self._outcomes) + len(self._releases) + len(self._history)
        return f"DynamoLedger(table={self.table!r}, pending={pending})"

    # -- table -------------------------------------------------------------------------
    async def create_table(self) -> bool:
        """Create the table (PAY_PER_REQUEST) unless it exists; wait until it is ACTIVE.

        Returns True when this call created it. Raises if an existing table has
        another key schema. Bound the wait with ``anyio.fail_after`` if need be.
        """
        created = True
        try:
            await self._call(
                "create_table",
                TableName=self.table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )  # fmt: skip
        except DynamoLedgerError as exc:
            if exc.code != "ResourceInUseException":
                raise
            created = False
        while await self.check_table() != "ACTIVE":  # noqa: ASYNC110 (polling AWS)
            await anyio.sleep(1.0)
        return created

    async def check_table(self) -> str:
        """Check that the table exists with this ledger's key schema; return its status."""
        described = await self._call("describe_table", TableName=self.table)
        table = described["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in table.get("KeySchema", ())}
        types = {
            a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", ())
        }
        if keys != {"pk": "HASH", "sk": "RANGE"} or types.get("pk") != "S" or (
                types.get("sk") != "S"):  # fmt: skip
            raise DynamoLedgerError(
                f"table {self.table!r} has key schema {keys} {types}; the ledger needs "
                "'pk' (HASH, S) and 'sk' (RANGE, S)",
                operation="DescribeTable",
            )
        return str(table.get("TableStatus", "ACTIVE"))

    # -- runs --------------------------------------------------------------------------
    async def start_run(self, run: RunInfo) -> None:
        info = self._info(run)
        try:
            await self._call(
                "put_item", TableName=self.table,
                Item={**_run_key(run.run_id, "RUN"), "info": _s(info), "attempt": _n(run.attempt),
                      "v": _n(FORMAT_VERSION)},
                ConditionExpression="attribute_not_exists(pk)",
            )  # fmt: skip
        except _ConditionFailed:
            answer = await self._call(
                "update_item", TableName=self.table, Key=_run_key(run.run_id, "RUN"),
                UpdateExpression="SET info = :info ADD attempt :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":info": _s(info), ":one": _n(1)},
                ReturnValues="UPDATED_NEW",
            )  # fmt: skip
            run.attempt = _int(answer["Attributes"], "attempt")
        self._attempt[run.run_id] = run.attempt

    async def get_run(self, run_id: str) -> RunInfo | None:
        answer = await self._call(
            "get_item", TableName=self.table, Key=_run_key(run_id, "RUN"), ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None:
            return None
        fields = orjson.loads(item["info"]["S"])
        run = RunInfo(**{**fields, "attempt": _int(item, "attempt")})
        self._attempt[run_id] = run.attempt
        return run

    async def finish_run(self, run_id: str, *, finished_at: str, summary: dict[str, Any]) -> None:
        await self.flush()
        run = await self.get_run(run_id)
        if run is None:
            raise LedgerError(f"run {run_id} is not in the ledger")
        run.state, run.finished_at = "FINISHED", finished_at
        run.extra["hook_invocations"] = summary.get("HookInvocations", 0)
        await self._call(
            "update_item", TableName=self.table, Key=_run_key(run_id, "RUN"),
            UpdateExpression="SET info = :info, summary = :summary",
            ExpressionAttributeValues={":info": _s(self._info(run)),
                                       ":summary": _s(orjson.dumps(summary).decode())},
        )  # fmt: skip

    @staticmethod
    def _info(run: RunInfo) -> str:
        fields = {k: getattr(run, k) for k in RunInfo.__dataclass_fields__ if k != "attempt"}
        return orjson.dumps(fields).decode()

    async def _attempt_of(self, run_id: str) -> int:
        attempt = self._attempt.get(run_id)
        if attempt is None:
            run = await self.get_run(run_id)
            attempt = self._attempt[run_id] = run.attempt if run else 1
        return attempt

    # -- claims ------------------------------------------------------------------------
    async def claim(self, run_id: str, claims: Sequence[SendClaim]) -> list[Claim]:
        if not claims:
            return []
        # As SQLite writes everything pending in the claim's transaction: a send's outcome
        # is durable by the next claim, so a crash leaves few sends in doubt, and a claim
        # meets the releases and outcomes recorded before it.
        await self.flush()
        token = uuid.uuid4().hex
        first: dict[str, SendClaim] = {}
        for c in claims:
            first.setdefault(c.endpoint_id, c)
        # endpoint id -> (answer to its first claim, the holder's line, whether that
        # line's send succeeded: None where the answer did not need to know)
        found: dict[str, tuple[Claim, int, bool | None]] = {}

        async def claim_one(c: SendClaim) -> None:
            found[c.endpoint_id] = await self._claim_one(run_id, c, token)

        await self._each(claim_one, first.values())
        # A repeat in the batch meets the first claim, as in SQLite's one transaction.
        unknown = {found[c.endpoint_id][1] for c in claims
                   if first[c.endpoint_id] is not c and found[c.endpoint_id][1] == c.line
                   and found[c.endpoint_id][2] is None}  # fmt: skip
        succeeded = await self._succeeded(run_id, unknown) if unknown else set()
        answers: list[Claim] = []
        for c in claims:
            answer, line, sent = found[c.endpoint_id]
            if first[c.endpoint_id] is c:
                answers.append(answer)
            elif line != c.line:
                answers.append(Claim.OTHER_LINE)
            else:
                sent = line in succeeded if sent is None else sent
                answers.append(Claim.SENT if sent else Claim.IN_DOUBT)
        return answers

    async def _claim_one(
        self, run_id: str, c: SendClaim, token: str
    ) -> tuple[Claim, int, bool | None]:
        key = _claim_key(run_id, c.endpoint_id)
        item = {**key, "e": _s(c.endpoint_id), "l": _n(c.line), "sn": _s(c.sender),
                "tk": _s(token)}  # fmt: skip
        for _ in range(self.attempts):
            try:
                await self._call(
                    "put_item", TableName=self.table, Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )  # fmt: skip
            except _ConditionFailed as exc:
                old = exc.item or await self._get(key)
                if old is None:
                    continue  # released between the put and the read: claim again
                line = _int(old, "l")
                if line != c.line:
                    return Claim.OTHER_LINE, line, None
                if _str(old, "tk") == token:
                    return Claim.GRANTED, line, False  # ours: the answer was lost, retried
                sent = bool(await self._succeeded(run_id, [line]))
                return (Claim.SENT if sent else Claim.IN_DOUBT), line, sent
            return Claim.GRANTED, c.line, False
        raise DynamoLedgerError(
            f"claim of {c.endpoint_id!r} kept changing under it", operation="PutItem"
        )

    async def claim_addresses(self, run_id: str, items: Sequence[tuple[str, int]]) -> list[bool]:
        """Hold address fingerprints for lines, across workers: True where ``line`` holds
        the address (also when it claimed it before), False where another line does.

        The first claimer wins: in a fleet DUPLICATE_ADDRESS goes to whichever record
        claimed later, not necessarily the later line.
        """
        first: dict[str, int] = {}
        for fingerprint, line in items:
            first.setdefault(fingerprint, line)
        holder: dict[str, int] = {}

        async def claim_one(entry: tuple[str, int]) -> None:
            fingerprint, line = entry
            key = _address_key(run_id, fingerprint)
            for _ in range(self.attempts):
                try:
                    await self._call(
                        "put_item", TableName=self.table, Item={**key, "l": _n(line)},
                        ConditionExpression="attribute_not_exists(pk)",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )  # fmt: skip
                except _ConditionFailed as exc:
                    old = exc.item or await self._get(key)
                    if old is None:
                        continue
                    holder[fingerprint] = _int(old, "l")
                    return
                holder[fingerprint] = line
                return
            raise DynamoLedgerError("address claim kept changing under it", operation="PutItem")

        await self._each(claim_one, list(first.items()))
        return [holder[fingerprint] == line for fingerprint, line in items]

    # -- shards ------------------------------------------------------------------------
    async def shard_started(self, run_id: str, shard_id: str, *, worker: str) -> None:
        """A worker took a shard (again, if SQS delivered it twice)."""
        now = _now()
        await self._call(
            "update_item", TableName=self.table, Key=_run_key(run_id, "S#" + shard_id),
            UpdateExpression="SET w = :w, t0 = if_not_exists(t0, :now), ts = :now ADD n :one",
            ExpressionAttributeValues={":w": _s(worker), ":now": _s(now), ":one": _n(1)},
        )  # fmt: skip

    async def shard_done(
        self, run_id: str, shard_id: str, counts: Mapping[str, int], *, hook_invocations: int = 0
    ) -> None:
        """Every record of the shard has its outcome in the ledger (written first):
        ``counts`` by status, and the hook invocations the shard took."""
        await self.flush()
        await self._call(
            "update_item", TableName=self.table, Key=_run_key(run_id, "S#" + shard_id),
            UpdateExpression="SET t1 = :now, c = :c, h = :h",
            ExpressionAttributeValues={
                ":now": _s(_now()), ":c": {"M": {k: _n(int(v)) for k, v in counts.items()}},
                ":h": _n(int(hook_invocations))},
        )  # fmt: skip

    async def shards(self, run_id: str) -> list[dict[str, Any]]:
        """Every shard seen for the run, numeric ids in numeric order: ``shard_id``,
        ``state`` (RUNNING or DONE: a done shard stays done when delivered again),
        ``worker`` (the latest), ``deliveries``, ``started_at``, ``last_started_at``,
        ``finished_at``, ``counts`` and ``hook_invocations``."""
        out: list[dict[str, Any]] = []
        async for item in self._query_items(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(f"R#{run_id}"), ":prefix": _s("S#")},
        ):
            out.append({
                "shard_id": item["sk"]["S"][2:],
                "state": "DONE" if "t1" in item else "RUNNING",
                "worker": _str(item, "w"),
                "deliveries": _int(item, "n") if "n" in item else 0,
                "started_at": _str(item, "t0"),
                "last_started_at": _str(item, "ts"),
                "finished_at": _str(item, "t1"),
                "counts": {k: int(v["N"]) for k, v in item.get("c", {}).get("M", {}).items()},
                "hook_invocations": _int(item, "h") if "h" in item else 0,
            })  # fmt: skip
        out.sort(key=lambda s: (0, int(s["shard_id"]), "") if s["shard_id"].isdigit()
                 else (1, 0, s["shard_id"]))  # fmt: skip
        return out

    # -- outcomes ----------------------------------------------------------------------
    async def record(
        self,
        run_id: str,
        outcomes: Sequence[Outcome],
        *,
        release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
    ) -> None:
        attempt = await self._attempt_of(run_id) if outcomes else 0
        for o in outcomes:
            key = (run_id, o.line)
            held = self._outcomes.get(key)
            if held is None or _supersedes(attempt, o.status, held[0], held[1].status):
                self._outcomes[key] = (attempt, o)
        self._releases.update((run_id, eid) for eid in release)
        now = time.time()
        for eid, campaign in sent:
            self._history[(run_id, eid)] = (now, campaign)
        if (len(self._outcomes) >= FLUSH_OUTCOMES
                or len(self._releases) + len(self._history) >= FLUSH_OPERATIONS):  # fmt: skip
            await self.flush()

    async def flush(self) -> None:
        """Write everything recorded so far; when it returns, all of it is durable."""
        async with self._flush_lock:
            if not (self._outcomes or self._releases or self._history):
                return
            outcomes, self._outcomes = self._outcomes, {}
            releases, self._releases = self._releases, set()
            history, self._history = self._history, {}
            await self._each(lambda job: job(), self._jobs(outcomes, releases, history))

    def _jobs(
        self,
        outcomes: dict[tuple[str, int], tuple[int, Outcome]],
        releases: set[tuple[str, str]],
        history: dict[tuple[str, str], tuple[float, str]],
    ) -> list[Callable[[], Awaitable[None]]]:
        jobs: list[Callable[[], Awaitable[None]]] = []
        blocks: dict[tuple[str, int], list[tuple[int, Outcome]]] = {}
        for (run_id, line), row in sorted(outcomes.items()):
            blocks.setdefault((run_id, line // BLOCK_LINES), []).append(row)
        for (run_id, block), rows in blocks.items():
            jobs.append(partial(self._write_block, run_id, block, rows))
        # Releases and sends in batches: a send is an item per (endpoint, run), and an
        # endpoint is sent at most once per run, so writing one again changes nothing.
        requests: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": _claim_key(run_id, eid)}} for run_id, eid in sorted(releases)
        ]
        requests += [
            {
                "PutRequest": {
                    "Item": {**_send_key(eid, run_id), "t": _n(sent_at), "c": _s(campaign)}
                }
            }
            for (run_id, eid), (sent_at, campaign) in sorted(history.items())
        ]
        for chunk in _chunks(requests, BATCH_WRITE_ITEMS):
            jobs.append(partial(self._batch_write, list(chunk)))
        return jobs

    async def _write_block(self, run_id: str, block: int, rows: list[tuple[int, Outcome]]) -> None:
        """Lines and counts of one block in one conditional update, then its tally.

        Each line is conditioned on what it replaces. A failed condition returns the
        block: a line then supersedes what is stored (condition on it next time) or is
        dropped as a duplicate; the update is tried again with what is left.
        """
        key = _block_key(run_id, block)
        live = {o.line: (attempt, o) for attempt, o in rows}
        expected: dict[int, tuple[int, str] | None] = dict.fromkeys(live)
        stored: Item | None = None
        for _ in range(self.attempts * 4):
            if not live:
                break
            update = self._block_update(live, expected)
            try:
                answer = await self._call(
                    "update_item", TableName=self.table, Key=key, **update,
                    ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )  # fmt: skip
            except _ConditionFailed as exc:
                stored = exc.item or await self._get(key) or {}
                entries = dict(_lines_of(stored))
                for line, (attempt, o) in list(live.items()):
                    entry = entries.get(line)
                    if entry is None:
                        expected[line] = None
                    elif _supersedes(attempt, o.status, _int(entry, "a"), entry["s"]["S"]):
                        expected[line] = (_int(entry, "a"), entry["s"]["S"])
                    else:
                        del live[line]  # a duplicate, or older than what is stored
                continue
            stored = answer["Attributes"]
            break
        else:
            raise DynamoLedgerError(f"block {block} of run {run_id} kept changing; gave up",
                                    operation="UpdateItem")  # fmt: skip
        if stored and "v" in stored:
            # Also when every line was a duplicate: the writer that stored them may have
            # died before publishing.
            await self._publish(run_id, block, stored)

    @staticmethod
    def _block_update(
        live: dict[int, tuple[int, Outcome]], expected: dict[int, tuple[int, str] | None]
    ) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {":one": _n(1)}
        sets: list[str] = []
        conditions: list[str] = []
        delta: Counter[str] = Counter()
        for i, line in enumerate(sorted(live)):
            attempt, o = live[line]
            names[f"#x{i}"] = f"x{line}"
            values[f":x{i}"] = _entry(attempt, o)
            sets.append(f"#x{i} = :x{i}")
            delta[o.status.value] += 1
            old = expected[line]
            if old is None:
                conditions.append(f"attribute_not_exists(#x{i})")
            else:
                delta[old[1]] -= 1
                conditions.append(f"#x{i}.a = :a{i} AND #x{i}.s = :s{i}")
                values[f":a{i}"], values[f":s{i}"] = _n(old[0]), _s(old[1])
        adds = ["v :one"]
        for j, (status, n) in enumerate(sorted(delta.items())):
            if n:
                names[f"#c{j}"], values[f":c{j}"] = "c:" + status, _n(n)
                adds.append(f"#c{j} :c{j}")
        return {
            "UpdateExpression": f"SET {', '.join(sets)} ADD {', '.join(adds)}",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        }  # fmt: skip

    async def _publish(self, run_id: str, block: int, stored: Item) -> None:
        """Put a block's counts (and version) in its tally, unless a newer one is there."""
        counts = {name[2:]: value for name, value in stored.items() if name.startswith("c:")}
        try:
            await self._call(
                "update_item", TableName=self.table, Key=_tally_key(run_id, block),
                UpdateExpression="SET #b = :b",
                ConditionExpression="attribute_not_exists(#b) OR #b.v < :v",
                ExpressionAttributeNames={"#b": f"b{block}"},
                ExpressionAttributeValues={":b": {"M": {"v": stored["v"], "c": {"M": counts}}},
                                           ":v": stored["v"]},
            )  # fmt: skip
        except _ConditionFailed:
            pass  # that version or a later one is published already

    async def _repair(self, run_id: str, blocks: dict[int, Item]) -> None:
        """Publish block counts their tallies lack (a writer died before publishing)."""
        keys = {_tally_key(run_id, block)["sk"]["S"]: _tally_key(run_id, block) for block in blocks}
        tallies: dict[str, Item] = {}

        async def read(part: Sequence[Item]) -> None:
            for item in await self._batch_get(list(part)):
                tallies[item["sk"]["S"]] = item

        await self._each(read, list(_chunks(list(keys.values()), BATCH_GET_KEYS)))
        stale = []
        for block, stored in blocks.items():
            tally = tallies.get(_tally_key(run_id, block)["sk"]["S"], {})
            published = tally.get(f"b{block}")
            if published is None or int(published["M"]["v"]["N"]) < _int(stored, "v"):
                stale.append(block)
        await self._each(lambda block: self._publish(run_id, block, blocks[block]), stale)

    async def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self.table: requests}
        for round_ in range(self.attempts):
            answer = await self._call("batch_write_item", RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                return
            await anyio.sleep(random.uniform(0, min(self.max_backoff, 0.05 * 2**round_)))
        raise DynamoLedgerError("BatchWriteItem left items unprocessed; gave up",
                                code="UnprocessedItems", operation="BatchWriteItem")  # fmt: skip

    # -- reads -------------------------------------------------------------------------
    async def lines_with_status(
        self,
        run_id: str,
        statuses: Iterable[str] | None = None,
        *,
        lines: tuple[int, int] | None = None,
    ) -> LineSet:
        """Lines with a recorded outcome (``statuses`` narrows to those, ``lines`` to an
        inclusive range). Also publishes block counts missing from their tallies."""
        await self.flush()
        wanted = None if statuses is None else frozenset(statuses)
        first, last = lines or (0, MAX_BLOCK * BLOCK_LINES)
        found = LineSet()
        if first > last:
            return found
        blocks: dict[int, Item] = {}

        def take(item: Item) -> None:
            blocks[_block_number(item)] = item
            for line, entry in _lines_of(item):
                if first <= line <= last and (wanted is None or entry["s"]["S"] in wanted):
                    found.add(line)

        if lines is not None and self._few_blocks(lines):
            for item in await self._blocks_of(run_id, lines):
                take(item)
        else:

            async def scan(partition: int) -> None:
                query = self._partition_query(run_id, partition, lines)
                async for item in self._query_items(**query):
                    take(item)

            await self._each(scan, range(BLOCK_PARTITIONS))
        await self._repair(run_id, blocks)
        return found

    @staticmethod
    def _few_blocks(lines: tuple[int, int]) -> bool:
        """Whether a line range is small enough (a shard) to read its blocks by key."""
        return lines[1] // BLOCK_LINES - lines[0] // BLOCK_LINES < 16 * BATCH_GET_KEYS

    async def _blocks_of(self, run_id: str, lines: tuple[int, int]) -> list[Item]:
        """The existing blocks of a line range, by key: a shard's range is a few dozen
        blocks, one BatchGetItem, where Queries would visit all 16 partitions."""
        numbers = range(max(lines[0], 0) // BLOCK_LINES, max(lines[1], 0) // BLOCK_LINES + 1)
        keys = [_block_key(run_id, b) for b in numbers]
        items: list[Item] = []
        for part in _chunks(keys, BATCH_GET_KEYS):
            items.extend(await self._batch_get(list(part)))
        items.sort(key=_block_number)
        return items

    def _partition_query(
        self, run_id: str, partition: int, lines: tuple[int, int] | None
    ) -> dict[str, Any]:
        """A Query of one block partition, over the blocks of ``lines`` if given."""
        values = {":pk": _s(f"O#{run_id}#{partition:02d}")}
        condition = "pk = :pk"
        if lines is not None:
            low = min(max(lines[0], 0) // BLOCK_LINES, MAX_BLOCK)
            high = min(max(lines[1], 0) // BLOCK_LINES, MAX_BLOCK)
            condition += " AND sk BETWEEN :low AND :high"
            values[":low"], values[":high"] = _s(f"{low:010d}"), _s(f"{high:010d}")
        return {"KeyConditionExpression": condition, "ExpressionAttributeValues": values}

    async def _succeeded(self, run_id: str, lines: Iterable[int]) -> set[int]:
        """Those of ``lines`` whose outcome is SUCCESS."""
        wanted = set(lines)
        keys = [_block_key(run_id, b) for b in sorted({line // BLOCK_LINES for line in wanted})]
        found: set[int] = set()

        async def check(part: Sequence[Item]) -> None:
            for item in await self._batch_get(list(part)):
                found.update(line for line, entry in _lines_of(item)
                             if line in wanted and entry["s"]["S"] == Status.SUCCESS)  # fmt: skip

        await self._each(check, list(_chunks(keys, BATCH_GET_KEYS)))
        return found

    async def history(
        self, endpoint_ids: Sequence[str], *, campaign_id: str, since: float
    ) -> dict[str, tuple[int, int]]:
        await self.flush()
        out: dict[str, tuple[int, int]] = {}

        async def read(endpoint_id: str) -> None:
            daily = total = 0
            async for item in self._query_items(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _send_key(endpoint_id, "")["pk"]},
            ):
                daily += float(item["t"]["N"]) >= since
                total += item["c"]["S"] == campaign_id
                out[endpoint_id] = (daily, total)

        await self._each(read, dict.fromkeys(endpoint_ids))
        return out

    async def counts(self, run_id: str) -> dict[str, int]:
        """Outcomes by status, from the tallies: one small item per 4096 lines."""
        await self.flush()
        totals: Counter[str] = Counter()
        async for item in self._query_items(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(f"R#{run_id}"), ":prefix": _s("T#")},
        ):
            for name, value in item.items():
                if name.startswith("b"):
                    for status, n in value["M"]["c"]["M"].items():
                        totals[status] += int(n["N"])
        return {status: n for status, n in sorted(totals.items()) if n}

    async def outcomes(
        self, run_id: str, *, lines: tuple[int, int] | None = None
    ) -> AsyncIterator[list[Outcome]]:
        """Recorded outcomes (``lines``: an inclusive range) in line order: the 16 block
        partitions' Queries, each sorted by block, merged a page at a time."""
        await self.flush()
        first, last = lines or (0, MAX_BLOCK * BLOCK_LINES)
        if first > last:
            return
        if lines is not None and self._few_blocks(lines):
            batch: list[Outcome] = []
            for block in await self._blocks_of(run_id, lines):
                batch.extend(_outcome(line, entry) for line, entry in sorted(_lines_of(block))
                             if first <= line <= last)  # fmt: skip
            if batch:
                yield batch
            return
        cursors = [_Cursor(self, self._query_request(**self._partition_query(run_id, p, lines)))
                   for p in range(BLOCK_PARTITIONS)]  # fmt: skip
        heap: list[tuple[int, int]] = []
        for i, cursor in enumerate(cursors):
            if await cursor.fill():
                heap.append((_block_number(cursor.buffer[0]), i))
        heapq.heapify(heap)
        batch = []
        while heap:
            _, i = heapq.heappop(heap)
            cursor = cursors[i]
            block = cursor.buffer.popleft()
            batch.extend(_outcome(line, entry) for line, entry in sorted(_lines_of(block))
                         if first <= line <= last)  # fmt: skip
            if await cursor.fill():
                heapq.heappush(heap, (_block_number(cursor.buffer[0]), i))
            if len(batch) >= 2000:
                yield batch
                batch = []
        if batch:
            yield batch

    async def in_doubt(self, run_id: str, sender: str) -> list[tuple[str, int]]:
        await self.flush()
        candidates: list[tuple[str, int]] = []

        async def scan(partition: int) -> None:
            async for item in self._query_items(
                KeyConditionExpression="pk = :pk", FilterExpression="sn = :sender",
                ProjectionExpression="e, l",
                ExpressionAttributeValues={":pk": _s(f"C#{run_id}#{partition:02d}"),
                                           ":sender": _s(sender)},
            ):  # fmt: skip
                candidates.append((item["e"]["S"], _int(item, "l")))

        await self._each(scan, range(CLAIM_PARTITIONS))
        succeeded = await self._succeeded(run_id, (line for _, line in candidates))
        return sorted((eid, line) for eid, line in candidates if line not in succeeded)

    async def aclose(self) -> None:
        try:
            await self.flush()
        finally:
            if self._own_clients:
                await self._clients.aclose()
            self._client = None

    # -- calls -------------------------------------------------------------------------
    async def _each(self, fn: Callable[[T], Awaitable[None]], items: Iterable[T]) -> None:
        """``fn`` on every item, at most ``concurrency`` at once: a slot is taken before
        each task starts, so a long list never becomes a crowd of waiting tasks."""
        slots = anyio.Semaphore(self.concurrency)
        failed = False

        async def run(item: T) -> None:
            nonlocal failed
            try:
                await fn(item)
            except BaseException:
                failed = True  # start nothing more
                raise
            finally:
                slots.release()

        try:
            async with anyio.create_task_group() as tg:
                for item in items:
                    await slots.acquire()
                    if failed:
                        break
                    tg.start_soon(run, item)
        except BaseExceptionGroup as group:
            errors = group.subgroup(LedgerError)
            if errors is None:
                raise
            leaf = _leaf(errors)
            raise leaf from leaf.__cause__

    async def _get(self, key: Item) -> Item | None:
        answer = await self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
        item: Item | None = answer.get("Item")
        return item

    async def _batch_get(self, keys: list[Item]) -> list[Item]:
        found: list[Item] = []
        pending: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for round_ in range(self.attempts):
            answer = await self._call("batch_get_item", RequestItems=pending)
            found.extend(answer.get("Responses", {}).get(self.table, ()))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                return found
            await anyio.sleep(random.uniform(0, min(self.max_backoff, 0.05 * 2**round_)))
        raise DynamoLedgerError("BatchGetItem left keys unprocessed; gave up",
                                code="UnprocessedKeys", operation="BatchGetItem")  # fmt: skip

    def _query_request(self, **request: Any) -> dict[str, Any]:
        request.update(TableName=self.table, ConsistentRead=True)
        if self.page_size:
            request["Limit"] = self.page_size
        return request

    async def _query_items(self, **request: Any) -> AsyncIterator[Item]:
        cursor = _Cursor(self, self._query_request(**request))
        while await cursor.fill():
            while cursor.buffer:
                yield cursor.buffer.popleft()

    async def _dynamodb(self) -> Any:
        if self._client is None:
            self._client = await self._clients.client("dynamodb", endpoint_url=self._endpoint_url)
        return self._client

    async def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One DynamoDB call with retries of transient failures; errors mapped.

        Raises ``_ConditionFailed`` for the caller to resolve, and ``DynamoLedgerError``
        for everything else that does not go away.
        """
        client = await self._dynamodb()
        method = getattr(client, operation)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.05, max=self.max_backoff),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, operation, request)
        except _Transient as exc:
            raise DynamoLedgerError(
                f"DynamoDB {_op_name(operation)} on {self.table!r} failed "
                f"{self.attempts} times: {exc}", code=exc.code, operation=_op_name(operation),
            ) from exc  # fmt: skip
        raise AssertionError("unreachable")

    async def _once(self, method: Any, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return await method(**request)  # type: ignore[no-any-return]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            message = str(error.get("Message") or "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed(exc.response.get("Item")) from None
            if code in TRANSIENT_CODES or status >= 500:
                raise _Transient(code or f"HTTP {status}", message) from exc
            hint = ""
            if code == "ResourceNotFoundException":
                hint = " (create it with DynamoLedger.create_table() or see the README)"
            raise DynamoLedgerError(
                f"DynamoDB {_op_name(operation)} on {self.table!r}: {code}: {message}{hint}",
                code=code or None, operation=_op_name(operation),
            ) from exc  # fmt: skip
        except (BotocoreConnectionError, HTTPClientError, aiohttp.ClientError, OSError,
                TimeoutError) as exc:  # fmt: skip
            raise _Transient(type(exc).__name__, str(exc)) from exc
        except BotoCoreError as exc:  # no credentials, bad parameters, ...
            raise DynamoLedgerError(
                f"DynamoDB {_op_name(operation)} on {self.table!r}: {type(exc).__name__}: {exc}",
                operation=_op_name(operation),
            ) from exc  # fmt: skip


def create_table_sync(
    table: str, *, region: str | None = None, endpoint_url: str | None = None
) -> bool:
    """``DynamoLedger.create_table()`` outside an event loop (scripts, tests, setup).

    The region defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1.
    """
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")

    async def create() -> bool:
        ledger = DynamoLedger(table, region=region or "us-east-1", endpoint_url=endpoint_url)
        try:
            return await ledger.create_table()
        finally:
            await ledger.aclose()

    return anyio.run(create)
