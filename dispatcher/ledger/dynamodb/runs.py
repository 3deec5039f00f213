"""Runs and their shards: the run item (info, attempt, summary) and one item per shard.

A worker that joins a run does not call ``start_run`` (that bumps the attempt): it calls
``get_run`` per shard, which also tells this ledger the attempt to stamp on outcomes (a
ledger that never saw the run reads it once, on its first record).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dispatcher.errors import LedgerError
from dispatcher.ledger.base import RunInfo
from dispatcher.ledger.dynamodb._items import FORMAT_VERSION, int_of, n, run_key, s, str_of
from dispatcher.ledger.dynamodb._table import ConditionFailed, Table


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _info(run: RunInfo) -> str:
    fields = {k: getattr(run, k) for k in RunInfo.__dataclass_fields__ if k != "attempt"}
    return orjson.dumps(fields).decode()


class Runs:
    """Run and shard items, and the attempt of each run this ledger knows."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._attempt: dict[str, int] = {}

    async def start(self, run: RunInfo) -> None:
        info = _info(run)
        try:
            await self.table.put(
                {**run_key(run.run_id, "RUN"), "info": s(info), "attempt": n(run.attempt),
                 "v": n(FORMAT_VERSION)},
                "attribute_not_exists(pk)",
            )  # fmt: skip
        except ConditionFailed:
            answer = await self.table.call(
                "update_item", Key=run_key(run.run_id, "RUN"),
                UpdateExpression="SET info = :info ADD attempt :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":info": s(info), ":one": n(1)},
                ReturnValues="UPDATED_NEW",
            )  # fmt: skip
            run.attempt = int_of(answer["Attributes"], "attempt")
        self._attempt[run.run_id] = run.attempt

    async def get(self, run_id: str) -> RunInfo | None:
        item = await self.table.get(run_key(run_id, "RUN"))
        if item is None:
            return None
        fields = orjson.loads(item["info"]["S"])
        run = RunInfo(**{**fields, "attempt": int_of(item, "attempt")})
        self._attempt[run_id] = run.attempt
        return run

    async def finish(self, run_id: str, *, finished_at: str, summary: dict[str, Any]) -> None:
        run = await self.get(run_id)
        if run is None:
            raise LedgerError(f"run {run_id} is not in the ledger")
        run.state, run.finished_at = "FINISHED", finished_at
        run.extra["hook_invocations"] = summary.get("HookInvocations", 0)
        await self.table.call(
            "update_item", Key=run_key(run_id, "RUN"),
            UpdateExpression="SET info = :info, summary = :summary",
            ExpressionAttributeValues={":info": s(_info(run)),
                                       ":summary": s(orjson.dumps(summary).decode())},
        )  # fmt: skip

    async def attempt_of(self, run_id: str) -> int:
        attempt = self._attempt.get(run_id)
        if attempt is None:
            run = await self.get(run_id)
            attempt = self._attempt[run_id] = run.attempt if run else 1
        return attempt

    # -- shards ------------------------------------------------------------------------
    async def shard_started(self, run_id: str, shard_id: str, *, worker: str) -> None:
        now = _now()
        await self.table.call(
            "update_item", Key=run_key(run_id, "S#" + shard_id),
            UpdateExpression="SET w = :w, t0 = if_not_exists(t0, :now), ts = :now ADD n :one",
            ExpressionAttributeValues={":w": s(worker), ":now": s(now), ":one": n(1)},
        )  # fmt: skip

    async def shard_done(
        self, run_id: str, shard_id: str, counts: Mapping[str, int], *, hook_invocations: int,
        ignored_hook_ids: int, failures: Sequence[tuple[str, str, int]],
    ) -> None:  # fmt: skip
        await self.table.call(
            "update_item", Key=run_key(run_id, "S#" + shard_id),
            UpdateExpression="SET t1 = :now, c = :c, h = :h, i = :i, f = :f",
            ExpressionAttributeValues={
                ":now": s(_now()), ":c": {"M": {k: n(int(v)) for k, v in counts.items()}},
                ":h": n(int(hook_invocations)), ":i": n(int(ignored_hook_ids)),
                ":f": s(orjson.dumps([list(f) for f in failures]).decode())},
        )  # fmt: skip

    async def shards(self, run_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for item in self.table.query_items(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": s(f"R#{run_id}"), ":prefix": s("S#")},
        ):
            out.append({
                "shard_id": item["sk"]["S"][2:],
                "state": "DONE" if "t1" in item else "RUNNING",
                "worker": str_of(item, "w"),
                "deliveries": int_of(item, "n") if "n" in item else 0,
                "started_at": str_of(item, "t0"),
                "last_started_at": str_of(item, "ts"),
                "finished_at": str_of(item, "t1"),
                "counts": {k: int(v["N"]) for k, v in item.get("c", {}).get("M", {}).items()},
                "hook_invocations": int_of(item, "h") if "h" in item else 0,
                "ignored_hook_ids": int_of(item, "i") if "i" in item else 0,
                "failures": [(str(st), str(reason), int(k)) for st, reason, k
                             in orjson.loads(str_of(item, "f") or "[]")],
            })  # fmt: skip
        out.sort(key=lambda sh: (0, int(sh["shard_id"]), "") if sh["shard_id"].isdigit()
                 else (1, 0, sh["shard_id"]))  # fmt: skip
        return out
