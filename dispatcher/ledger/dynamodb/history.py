"""The send history that ``Daily`` and ``Total`` caps count: an item per send.

Keyed (endpoint, run), since an endpoint is sent at most once per run: written 25 a
call (``BatchWriteItem``; writing one again changes nothing), read with one Query per
endpoint. An item per send is what a per-endpoint read needs, and it costs one write
unit per send whatever the batching; so a fleet writes it only for campaigns that set
``Daily`` or ``Total`` caps (``DynamoLedger(send_history=False)`` otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from dispatcher.ledger.dynamodb._items import n, s, send_key
from dispatcher.ledger.dynamodb._table import Table

FLUSH_SENDS = 500
"""Buffered sends that make the ledger write them."""


class History:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.pending: dict[tuple[str, str], tuple[float, str]] = {}

    def add(self, run_id: str, sent: Iterable[tuple[str, str]]) -> None:
        now = time.time()
        for eid, campaign in sent:
            self.pending[(run_id, eid)] = (now, campaign)

    async def counts(
        self, endpoint_ids: Sequence[str], *, campaign_id: str, since: float
    ) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}

        async def read(endpoint_id: str) -> None:
            daily = total = 0
            async for item in self.table.query_items(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": send_key(endpoint_id, "")["pk"]},
            ):
                daily += float(item["t"]["N"]) >= since
                total += item["c"]["S"] == campaign_id
                out[endpoint_id] = (daily, total)

        await self.table.each(read, dict.fromkeys(endpoint_ids))
        return out


def history_requests(pending: dict[tuple[str, str], tuple[float, str]]) -> list[dict[str, Any]]:
    """Sends, (run, endpoint id) -> (sent at, campaign), as BatchWriteItem puts."""
    return [{"PutRequest": {"Item": {**send_key(eid, run_id), "t": n(sent_at), "c": s(campaign)}}}
            for (run_id, eid), (sent_at, campaign) in sorted(pending.items())]  # fmt: skip
