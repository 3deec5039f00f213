"""Rate leases in DynamoDB: the workers of a fleet, in the fleet ledger's table.

One item per ceiling, beside the ledger's items (whose key prefixes are ``R#``, ``B#``,
``L#``, ``C#``, ``E#``; this one is ``Q#``, for quota)::

    item          pk                     sk        attributes
    rate leases   Q#{scope}/{ceiling}    LEASES    m = {member: {s: share, c: ceiling,
                                                         x: expires}}, v (version)

A read is one strongly consistent ``GetItem``. An update reads the item and writes it
back with a conditional ``PutItem`` on the version it read (``DeleteItem`` when the last
member leaves); a lost race re-reads and tries again. So one renewal costs one read and
one write: an item of ~60 bytes per member, i.e. 1 write unit up to ~16 members.

IAM actions on the table: ``dynamodb:GetItem``, ``PutItem``, ``DeleteItem``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
from botocore.exceptions import BotoCoreError, ClientError

from dispatcher.aws import AwsClients, call, classify
from dispatcher.ratelimit.shared import Lease, LeaseError, Leases

__all__ = ["DynamoLeaseStore"]

SK = "LEASES"


def _key(key: str) -> dict[str, Any]:
    return {"pk": {"S": f"Q#{key}"}, "sk": {"S": SK}}


def _leases(item: dict[str, Any] | None) -> Leases:
    if item is None:
        return {}
    members = item.get("m", {}).get("M", {})
    return {
        member: Lease(int(v["M"]["s"]["N"]), float(v["M"]["c"]["N"]), float(v["M"]["x"]["N"]))
        for member, v in members.items()
    }


def _item_value(leases: Leases) -> dict[str, Any]:
    return {"M": {
        member: {"M": {"s": {"N": str(lease.share)}, "c": {"N": repr(lease.ceiling)},
                       "x": {"N": repr(lease.expires)}}}
        for member, lease in leases.items()
    }}  # fmt: skip


class DynamoLeaseStore:
    """``LeaseStore`` over a DynamoDB table with string keys ``pk`` and ``sk`` (the fleet
    ledger's table). ``clients`` shares the run's ``AwsClients``; else its own are made
    for ``region`` and closed by ``aclose``. ``conflicts`` bounds the re-reads of one
    update that keeps losing races."""

    def __init__(
        self,
        table: str,
        *,
        clients: AwsClients | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        conflicts: int = 20,
    ) -> None:
        if not table:
            raise ValueError("'table' must be a DynamoDB table name")
        if clients is None and not region:
            raise ValueError("'region' is required when no 'clients' are given")
        self.table = table
        self.conflicts = conflicts
        self.writes = 0
        self.reads = 0
        self._endpoint_url = endpoint_url
        self._own_clients = clients is None
        self._clients = clients or AwsClients(region or "", max_pool_connections=10)
        self._client: Any = None

    def __repr__(self) -> str:
        return f"DynamoLeaseStore({self.table!r}, reads={self.reads}, writes={self.writes})"

    async def read(self, key: str) -> Leases:
        client = await self._dynamodb()
        try:
            got = await call(client.get_item, TableName=self.table, Key=_key(key),
                             ConsistentRead=True)  # fmt: skip
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError) as exc:
            fault = classify(exc)
            if fault is None:
                raise
            raise LeaseError(f"rate lease {key} in DynamoDB table {self.table!r}: {fault}") from exc
        self.reads += 1
        return _leases(got.get("Item"))

    async def _dynamodb(self) -> Any:
        if self._client is None:
            self._client = await self._clients.client("dynamodb", endpoint_url=self._endpoint_url)
        return self._client

    async def update(self, key: str, change: Callable[[Leases], Leases]) -> Leases:
        client = await self._dynamodb()
        for _ in range(self.conflicts):
            try:
                got = await call(client.get_item, TableName=self.table, Key=_key(key),
                                 ConsistentRead=True)  # fmt: skip
                self.reads += 1
                item = got.get("Item")
                before = _leases(item)
                after = change(dict(before))
                condition: dict[str, Any] = (
                    {"ConditionExpression": "attribute_not_exists(pk)"} if item is None else {
                        "ConditionExpression": "v = :v",
                        "ExpressionAttributeValues": {":v": item["v"]}})  # fmt: skip
                version = 0 if item is None else int(item["v"]["N"])
                if after:
                    await call(client.put_item, TableName=self.table, Item={
                        **_key(key), "m": _item_value(after), "v": {"N": str(version + 1)},
                    }, **condition)  # fmt: skip
                elif item is not None:
                    await call(client.delete_item, TableName=self.table, Key=_key(key),
                               **condition)  # fmt: skip
                self.writes += 1
                return after
            except (BotoCoreError, ClientError, aiohttp.ClientError, OSError) as exc:
                fault = classify(exc)
                if fault is None or fault.kind != "condition":
                    raise LeaseError(f"rate lease {key} in DynamoDB table {self.table!r}: "
                                     f"{fault}") from exc  # fmt: skip
            # Another member wrote in between: read again, after a little jitter.
            await anyio.sleep(random.uniform(0.005, 0.05))
        raise LeaseError(
            f"rate lease {key} in DynamoDB table {self.table!r}: {self.conflicts} conflicting "
            "writes in a row"
        )

    async def aclose(self) -> None:
        if self._own_clients:
            await self._clients.aclose()
