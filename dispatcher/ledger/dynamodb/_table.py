"""Calls to the ledger's table: retries, error mapping, bounded fan-out, paging.

Every call goes through ``Table.call``: throttling, 5xx, connection errors and lost
answers are tried again under the AWS boundary's one retry policy (``dispatcher.aws``;
botocore's own retries are off). Every write here is conditional or idempotent, so a
write whose answer was lost may be sent again: its condition then fails, and the caller
reads what is stored to see whether its first try landed. A failed condition raises
``ConditionFailed`` for the caller to resolve; anything else that does not go away
raises ``DynamoLedgerError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import anyio

from dispatcher.aws import AwsClients
from dispatcher.aws.retry import backoff_delay, retrying
from dispatcher.errors import DynamoLedgerError, LedgerError
from dispatcher.ledger.dynamodb._items import Item

T = TypeVar("T")

BATCH_WRITE_ITEMS = 25
BATCH_GET_KEYS = 100


class ConditionFailed(Exception):
    """A conditional write met an item that fails the condition (``item``, if any).

    ``retried``: an earlier try of the same request got no answer, so that try may be
    what changed the item.
    """

    def __init__(self, item: Item | None, *, retried: bool = False) -> None:
        self.item = item
        self.retried = retried
        super().__init__("ConditionalCheckFailedException")


def op_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


class Table:
    """One DynamoDB table as the ledger uses it. ``concurrency`` bounds the calls one
    ``each`` has in flight; ``attempts`` bounds tries per call; ``page_size`` sets
    Query's ``Limit`` (None: 1 MB pages)."""

    def __init__(
        self, name: str, *, clients: AwsClients, endpoint_url: str | None, concurrency: int,
        attempts: int, max_backoff: float, page_size: int | None,
    ) -> None:  # fmt: skip
        self.name = name
        self.clients = clients
        self.endpoint_url = endpoint_url
        self.concurrency = concurrency
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.page_size = page_size
        self._client: Any = None

    async def client(self) -> Any:
        if self._client is None:
            self._client = await self.clients.client("dynamodb", endpoint_url=self.endpoint_url)
        return self._client

    def forget_client(self) -> None:
        self._client = None

    # -- one call ----------------------------------------------------------------------
    async def call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One DynamoDB call (``TableName`` added), with retries; errors mapped."""
        from dispatcher.aws import classify

        method = getattr(await self.client(), operation)
        if operation not in ("batch_get_item", "batch_write_item"):
            request.setdefault("TableName", self.name)
        tries = 0
        try:
            async for attempt in retrying(attempts=self.attempts, max_wait=self.max_backoff):
                with attempt:
                    tries += 1
                    return await method(**request)  # type: ignore[no-any-return]
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            if fault.kind == "condition":
                item = (fault.response or {}).get("Item")
                raise ConditionFailed(item, retried=tries > 1) from None
            name = op_name(operation)
            if fault.retryable(idempotent=True):
                raise DynamoLedgerError(
                    f"DynamoDB {name} on {self.name!r} failed {tries} times: {fault}",
                    code=fault.code, operation=name,
                ) from exc  # fmt: skip
            hint = ""
            if fault.code == "ResourceNotFoundException":
                # The public set-up step, not an internal function.
                hint = f" (create it with: dispatcher ledger create-table {self.name})"
            raise DynamoLedgerError(
                f"DynamoDB {name} on {self.name!r}: {fault}{hint}",
                code=fault.code if fault.response is not None else None, operation=name,
            ) from exc  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, key: Item) -> Item | None:
        answer = await self.call("get_item", Key=key, ConsistentRead=True)
        item: Item | None = answer.get("Item")
        return item

    async def put(self, item: Item, condition: str, values: dict[str, Any] | None = None) -> None:
        """A conditional ``PutItem``; a failed condition returns the stored item."""
        request: dict[str, Any] = {"Item": item, "ConditionExpression": condition,
                                   "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}  # fmt: skip
        if values:
            request["ExpressionAttributeValues"] = values
        await self.call("put_item", **request)

    # -- many calls --------------------------------------------------------------------
    async def each(self, fn: Callable[[T], Awaitable[None]], items: Iterable[T]) -> None:
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

    async def batch_get(self, keys: Sequence[Item]) -> list[Item]:
        """The items of ``keys`` that exist (100 keys a call, calls in parallel)."""
        found: list[Item] = []

        async def one(part: Sequence[Item]) -> None:
            found.extend(await self._batch_get(list(part)))

        await self.each(one, list(chunks(keys, BATCH_GET_KEYS)))
        return found

    async def _batch_get(self, keys: list[Item]) -> list[Item]:
        found: list[Item] = []
        pending: dict[str, Any] = {self.name: {"Keys": keys, "ConsistentRead": True}}
        for round_ in range(self.attempts):
            answer = await self.call("batch_get_item", RequestItems=pending)
            found.extend(answer.get("Responses", {}).get(self.name, ()))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                return found
            await anyio.sleep(backoff_delay(round_ + 1, base=0.05, cap=self.max_backoff))
        raise DynamoLedgerError("BatchGetItem left keys unprocessed; gave up",
                                code="UnprocessedKeys", operation="BatchGetItem")  # fmt: skip

    async def batch_write(self, requests: Sequence[dict[str, Any]]) -> None:
        """Idempotent puts and deletes, 25 a call, calls in parallel."""

        async def one(part: Sequence[dict[str, Any]]) -> None:
            await self._batch_write(list(part))

        await self.each(one, list(chunks(requests, BATCH_WRITE_ITEMS)))

    async def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self.name: requests}
        for round_ in range(self.attempts):
            answer = await self.call("batch_write_item", RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                return
            await anyio.sleep(backoff_delay(round_ + 1, base=0.05, cap=self.max_backoff))
        raise DynamoLedgerError("BatchWriteItem left items unprocessed; gave up",
                                code="UnprocessedItems", operation="BatchWriteItem")  # fmt: skip

    def query_request(self, **request: Any) -> dict[str, Any]:
        request.update(TableName=self.name, ConsistentRead=True)
        if self.page_size:
            request["Limit"] = self.page_size
        return request

    async def query_items(self, **request: Any) -> AsyncIterator[Item]:
        cursor = Cursor(self, self.query_request(**request))
        while await cursor.fill():
            while cursor.buffer:
                yield cursor.buffer.popleft()

    # -- the table itself --------------------------------------------------------------
    async def create(self) -> bool:
        """Create the table (PAY_PER_REQUEST) unless it exists; wait until it is ACTIVE."""
        created = True
        try:
            await self.call(
                "create_table",
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
        while await self.check() != "ACTIVE":  # noqa: ASYNC110 (polling AWS)
            await anyio.sleep(1.0)
        return created

    async def check(self) -> str:
        """Check that the table exists with the ledger's key schema; return its status."""
        described = await self.call("describe_table")
        table = described["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in table.get("KeySchema", ())}
        types = {
            a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", ())
        }
        if keys != {"pk": "HASH", "sk": "RANGE"} or types.get("pk") != "S" or (
                types.get("sk") != "S"):  # fmt: skip
            raise DynamoLedgerError(
                f"table {self.name!r} has key schema {keys} {types}; the ledger needs "
                "'pk' (HASH, S) and 'sk' (RANGE, S)",
                operation="DescribeTable",
            )
        return str(table.get("TableStatus", "ACTIVE"))


class Cursor:
    """One Query, a page at a time (``outcomes`` merges 16 of them in block order)."""

    def __init__(self, table: Table, request: dict[str, Any]) -> None:
        self.table = table
        self.request = request
        self.buffer: deque[Item] = deque()
        self.done = False

    async def fill(self) -> bool:
        """Make the buffer non-empty if the Query has more; False when exhausted."""
        while not self.buffer and not self.done:
            page = await self.table.call("query", **self.request)
            self.buffer.extend(page.get("Items", ()))
            last = page.get("LastEvaluatedKey")
            if last:
                self.request["ExclusiveStartKey"] = last
            else:
                self.done = True
        return bool(self.buffer)
