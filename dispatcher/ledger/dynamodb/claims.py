"""Send claims by endpoint id: one item per (run, endpoint id), a conditional put each.

This is the Ledger contract's claim, the same answers as SQLite's: a failed condition
returns the holder's line, and the answer is OTHER_LINE; for the same line SENT when
the claim is marked sent or that line's outcome is SUCCESS, else IN_DOUBT. A claim
carries its caller's token, so a retried put whose first answer was lost still comes
back GRANTED. A fleet claims this way only the lines whose endpoint id appears on more
than one line of the segment (the rest are claimed by line, see ``pages``); for those,
a success is marked on the claim item (``s``) with the worker's next claim, since the
worker does not write its outcomes before each claim.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from dispatcher.errors import DynamoLedgerError
from dispatcher.ledger.base import Claim, SendClaim
from dispatcher.ledger.dynamodb._items import (
    CLAIM_PARTITIONS,
    claim_key,
    claim_partition,
    int_of,
    n,
    s,
    str_of,
)
from dispatcher.ledger.dynamodb._table import ConditionFailed, Table

Succeeded = Callable[[str, Iterable[int]], Awaitable[set[int]]]


class IdClaims:
    """Endpoint-id claims, and the releases and sent marks not yet written."""

    def __init__(self, table: Table, succeeded: Succeeded) -> None:
        self.table = table
        self._succeeded = succeeded
        self.releases: set[tuple[str, str]] = set()
        self.marks: set[tuple[str, str]] = set()
        self.watched: set[tuple[str, str]] = set()
        """Claims granted to ``claim(mark=True)`` whose success is to be marked."""

    def pending(self) -> bool:
        return bool(self.releases or self.marks)

    async def claim(
        self, run_id: str, claims: Sequence[SendClaim], token: str, *, mark: bool = False
    ) -> list[Claim]:
        """One answer per claim, in order; a repeat in the batch meets the first claim,
        as in SQLite's one transaction. ``mark``: remember the granted ones, so that
        ``sent`` marks their success on the claim item."""
        first: dict[str, SendClaim] = {}
        for c in claims:
            first.setdefault(c.endpoint_id, c)
        # endpoint id -> (answer to its first claim, the holder's line, whether that
        # line's send succeeded: None where the answer did not need to know)
        found: dict[str, tuple[Claim, int, bool | None]] = {}

        async def claim_one(c: SendClaim) -> None:
            found[c.endpoint_id] = await self._claim_one(run_id, c, token)

        await self.table.each(claim_one, first.values())
        unknown = {found[c.endpoint_id][1] for c in claims
                   if first[c.endpoint_id] is not c and found[c.endpoint_id][1] == c.line
                   and found[c.endpoint_id][2] is None}  # fmt: skip
        succeeded = await self._succeeded(run_id, unknown) if unknown else set()
        answers: list[Claim] = []
        for c in claims:
            answer, line, sent = found[c.endpoint_id]
            if first[c.endpoint_id] is c:
                answers.append(answer)
                if mark and answer is Claim.GRANTED:
                    self.watched.add((run_id, c.endpoint_id))
            elif line != c.line:
                answers.append(Claim.OTHER_LINE)
            else:
                sent = line in succeeded if sent is None else sent
                answers.append(Claim.SENT if sent else Claim.IN_DOUBT)
        return answers

    async def _claim_one(
        self, run_id: str, c: SendClaim, token: str
    ) -> tuple[Claim, int, bool | None]:
        key = claim_key(run_id, c.endpoint_id)
        item = {**key, "e": s(c.endpoint_id), "l": n(c.line), "sn": s(c.sender), "tk": s(token)}
        for _ in range(self.table.attempts):
            try:
                await self.table.put(item, "attribute_not_exists(pk)")
            except ConditionFailed as exc:
                old = exc.item or await self.table.get(key)
                if old is None:
                    continue  # released between the put and the read: claim again
                line = int_of(old, "l")
                if line != c.line:
                    return Claim.OTHER_LINE, line, True if "s" in old else None
                if str_of(old, "tk") == token:
                    return Claim.GRANTED, line, False  # ours: the answer was lost, retried
                sent = "s" in old or bool(await self._succeeded(run_id, [line]))
                return (Claim.SENT if sent else Claim.IN_DOUBT), line, sent
            return Claim.GRANTED, c.line, False
        raise DynamoLedgerError(
            f"claim of {c.endpoint_id!r} kept changing under it", operation="PutItem"
        )

    def release(self, run_id: str, endpoint_ids: Iterable[str]) -> None:
        for eid in endpoint_ids:
            self.releases.add((run_id, eid))
            self.marks.discard((run_id, eid))
            self.watched.discard((run_id, eid))

    def sent(self, run_id: str, endpoint_ids: Iterable[str]) -> None:
        """Successes: those of watched claims are marked on their items."""
        for eid in endpoint_ids:
            if (run_id, eid) in self.watched:
                self.watched.discard((run_id, eid))
                self.marks.add((run_id, eid))

    async def write_marks(self) -> None:
        marks, self.marks = self.marks, set()
        try:
            await self.table.each(self._mark, sorted(marks))
        except BaseException:
            self.marks |= marks
            raise

    async def _mark(self, key: tuple[str, str]) -> None:
        try:
            await self.table.call(
                "update_item", Key=claim_key(*key), UpdateExpression="SET s = :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":one": n(1)},
            )  # fmt: skip
        except ConditionFailed:
            pass  # no such claim: nothing to mark

    async def in_doubt(self, run_id: str, sender: str) -> list[tuple[str, int]]:
        candidates: list[tuple[str, int]] = []

        async def scan(partition: int) -> None:
            async for item in self.table.query_items(
                KeyConditionExpression="pk = :pk", FilterExpression="sn = :sender",
                ProjectionExpression="e, l, s",
                ExpressionAttributeValues={":pk": s(claim_partition(run_id, partition)),
                                           ":sender": s(sender)},
            ):  # fmt: skip
                if "s" not in item:
                    candidates.append((str(item["e"]["S"]), int_of(item, "l")))

        await self.table.each(scan, range(CLAIM_PARTITIONS))
        succeeded = await self._succeeded(run_id, (line for _, line in candidates))
        return sorted((eid, line) for eid, line in candidates if line not in succeeded)


def release_requests(releases: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Releases of (run, endpoint id) claims as BatchWriteItem deletes."""
    return [{"DeleteRequest": {"Key": claim_key(run_id, eid)}} for run_id, eid in sorted(releases)]
