"""The embedded ledger: one SQLite file (WAL mode), by default ``DIR/ledger.sqlite``.

Calls run on the event loop thread: each is a short local transaction (a claim batch
commits in well under a millisecond), cheaper than a thread hop. ``synchronous=NORMAL``
in WAL mode survives a killed process (what the crash tests do); a power loss may
drop the last transactions, which a resume then redoes: claims keep that safe, since a
claim is committed before its send and an in-doubt claim is never sent again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson

from dispatcher.errors import LedgerError
from dispatcher.ledger.base import Claim, LineSet, RunInfo, SendClaim
from dispatcher.ledger.sqlite_file import Transaction, connect, ledger_error
from dispatcher.model import Outcome, Status


class SqliteLedger:
    """The Ledger interface over one SQLite database file."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        with self._guard("cannot open"):
            self._db = connect(path, synchronous=synchronous)
        self._outcomes: list[tuple[Any, ...]] = []
        self._release: list[tuple[int, str]] = []
        self._sent: list[tuple[str, str, int, float]] = []
        self._attempt: dict[str, int] = {}
        self._keys: dict[str, int] = {}
        self._queue: list[_PendingClaim] = []
        self._leader = False

    def _key(self, run_id: str) -> int:
        """The run's integer key; a run first seen here gets a row (its info comes with
        ``start_run``)."""
        key = self._keys.get(run_id)
        if key is None:
            with self._guard():
                self._db.execute("INSERT OR IGNORE INTO runs (run_id) VALUES (?)", (run_id,))
                row = self._db.execute(
                    "SELECT run FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
            key = self._keys[run_id] = int(row[0])
        return key

    # -- runs --------------------------------------------------------------------------
    async def start_run(self, run: RunInfo) -> None:
        existing = await self.get_run(run.run_id)
        if existing is not None:
            run.attempt = existing.attempt + 1
        self._attempt[run.run_id] = run.attempt
        with self._tx():
            self._db.execute(
                "INSERT INTO runs (run_id, info) VALUES (?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET info = excluded.info",
                (run.run_id, _dump(run)),
            )
        self._key(run.run_id)

    async def join_run(self, run_id: str) -> RunInfo | None:
        """Record outcomes for a run another process started (``--processes`` workers):
        as the same attempt, which this connection did not begin itself."""
        run = await self.get_run(run_id)
        if run is not None:
            self._attempt[run_id] = run.attempt
        return run

    async def get_run(self, run_id: str) -> RunInfo | None:
        with self._guard():
            row = self._db.execute("SELECT info FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return _run_info(row[0])

    async def runs_of(self, application_id: str, campaign_id: str) -> list[RunInfo]:
        with self._guard():
            rows = self._db.execute(
                "SELECT info FROM runs WHERE info IS NOT NULL ORDER BY run"
            ).fetchall()
        runs = [_run_info(info) for (info,) in rows]
        return [r for r in runs
                if r.application_id == application_id and r.campaign_id == campaign_id]  # fmt: skip

    async def claimed(self, run_id: str) -> int:
        await self.flush()
        with self._guard():
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM claims WHERE run = ?", (self._key(run_id),)
            ).fetchone()
        return int(n)

    async def set_state(self, run_id: str, state: str) -> None:
        await self.flush()
        run = await self.get_run(run_id)
        if run is None:
            raise LedgerError(f"run {run_id} is not in the ledger {self.path}", path=str(self.path))
        run.state = state
        with self._tx():
            self._db.execute("UPDATE runs SET info = ? WHERE run_id = ?", (_dump(run), run_id))

    async def finish_run(self, run_id: str, *, finished_at: str, summary: dict[str, Any]) -> None:
        await self.flush()
        run = await self.get_run(run_id)
        if run is None:
            raise LedgerError(f"run {run_id} is not in the ledger {self.path}", path=str(self.path))
        run.state, run.finished_at = "FINISHED", finished_at
        run.extra["hook_invocations"] = summary.get("HookInvocations", 0)
        with self._tx():
            self._db.execute(
                "UPDATE runs SET info = ?, summary = ? WHERE run_id = ?",
                (_dump(run), orjson.dumps(summary), run_id),
            )

    # -- outcomes and claims -------------------------------------------------------------
    async def lines_with_status(
        self,
        run_id: str,
        statuses: Iterable[str] | None = None,
        *,
        lines: tuple[int, int] | None = None,
    ) -> LineSet:
        await self.flush()
        first, last = lines or (0, 1 << 62)
        query = "SELECT line FROM outcomes WHERE run = ? AND line BETWEEN ? AND ?"
        params: list[Any] = [self._key(run_id), first, last]
        if statuses is not None:
            wanted = list(statuses)
            query += f" AND status IN ({','.join('?' * len(wanted))})"
            params += wanted
        found = LineSet()
        with self._guard():
            for (line,) in self._db.execute(query, params):
                found.add(line)
        return found

    async def claim(self, run_id: str, claims: Sequence[SendClaim]) -> list[Claim]:
        """Claim endpoints durably before their send; one answer per claim, in order.

        Group commit: concurrent claimers (the send workers) share one transaction. The
        first becomes the leader, lets the others queue their claims for one turn of the
        event loop, then commits them all with whatever ``record`` buffered; every claim
        is durable before any of them is answered.
        """
        if not claims:
            return []
        pending = _PendingClaim(self._key(run_id), claims)
        self._queue.append(pending)
        if self._leader:
            await pending.done.wait()
        else:
            self._leader = True
            try:
                await anyio.lowlevel.cancel_shielded_checkpoint()
                queued, self._queue = self._queue, []
                self._commit_claims(queued)
            finally:
                self._leader = False
        if pending.error is not None:
            raise pending.error
        return pending.answers

    def _commit_claims(self, queued: list[_PendingClaim]) -> None:
        try:
            with self._tx():
                self._write_pending()
                for pending in queued:
                    pending.answers = self._claim_rows(pending.run, pending.claims)
            self._clear_pending()
        except LedgerError as exc:
            for pending in queued:
                pending.error = exc
        finally:
            for pending in queued:
                pending.done.set()

    def _claim_rows(self, run: int, claims: Sequence[SendClaim]) -> list[Claim]:
        # The common case first: no endpoint claimed before (a fresh run), so every row
        # inserts and every answer is GRANTED without reading the claims back. Any row
        # that meets an earlier claim (or a repeat within ``claims``) undoes the inserts
        # and takes the reading path below, which tells the answers apart.
        fresh = [(run, c.endpoint_id, c.line, c.sender) for c in claims]
        self._db.execute("SAVEPOINT claim")
        inserted = self._db.executemany(
            "INSERT OR IGNORE INTO claims VALUES (?, ?, ?, ?)", fresh
        ).rowcount
        if inserted == len(fresh):
            self._db.execute("RELEASE claim")
            return [Claim.GRANTED] * len(fresh)
        self._db.execute("ROLLBACK TO claim")
        self._db.execute("RELEASE claim")
        return self._claim_rows_read(run, claims)

    def _claim_rows_read(self, run: int, claims: Sequence[SendClaim]) -> list[Claim]:
        ids = [c.endpoint_id for c in claims]
        held: dict[str, tuple[int, bool]] = {}  # endpoint id -> (line, sent)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for eid, line, status in self._db.execute(
                "SELECT c.endpoint_id, c.line, o.status FROM claims c LEFT JOIN outcomes o "
                "ON o.run = c.run AND o.line = c.line "
                f"WHERE c.run = ? AND c.endpoint_id IN ({marks})",
                (run, *part),
            ):
                held[eid] = (line, status == "SUCCESS")
        answers: list[Claim] = []
        fresh = []
        for c in claims:
            prior = held.get(c.endpoint_id)
            if prior is None:
                answers.append(Claim.GRANTED)
                held[c.endpoint_id] = (c.line, False)
                fresh.append((run, c.endpoint_id, c.line, c.sender))
            elif prior[0] != c.line:
                answers.append(Claim.OTHER_LINE)
            else:
                answers.append(Claim.SENT if prior[1] else Claim.IN_DOUBT)
        self._db.executemany("INSERT INTO claims VALUES (?, ?, ?, ?)", fresh)
        return answers

    async def record(
        self,
        run_id: str,
        outcomes: Sequence[Outcome],
        *,
        release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
    ) -> None:
        run = self._key(run_id)
        attempt = self._attempt.get(run_id, 1)
        self._outcomes.extend(
            (run, o.line, o.endpoint_id, o.status.value, o.reason, o.channel_type,
             o.treatment_id, attempt)
            for o in outcomes
        )  # fmt: skip
        self._release.extend((run, eid) for eid in release)
        now = time.time()
        self._sent.extend((eid, campaign, run, now) for eid, campaign in sent)
        if len(self._outcomes) >= 5000:
            await self.flush()

    def _write_pending(self) -> None:
        """Write what ``record`` buffered; it stays buffered until the commit succeeds."""
        if self._outcomes:
            self._db.executemany(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._outcomes
            )
        if self._release:
            self._db.executemany("DELETE FROM claims WHERE run = ? AND endpoint_id = ?",
                                 self._release)  # fmt: skip
        if self._sent:
            self._db.executemany("INSERT INTO sends VALUES (?, ?, ?, ?)", self._sent)

    def _clear_pending(self) -> None:
        self._outcomes, self._release, self._sent = [], [], []

    async def flush(self) -> None:
        if self._outcomes or self._release or self._sent:
            with self._tx():
                self._write_pending()
            self._clear_pending()

    # -- reads ---------------------------------------------------------------------------
    async def history(
        self, endpoint_ids: Sequence[str], *, campaign_id: str, since: float
    ) -> dict[str, tuple[int, int]]:
        await self.flush()
        out: dict[str, tuple[int, int]] = {}
        for start in range(0, len(endpoint_ids), 500):
            part = list(endpoint_ids[start : start + 500])
            marks = ",".join("?" * len(part))
            with self._guard():
                rows = self._db.execute(
                    f"SELECT endpoint_id, SUM(sent_at >= ?), SUM(campaign_id = ?) FROM sends "
                    f"WHERE endpoint_id IN ({marks}) GROUP BY endpoint_id",
                    (since, campaign_id, *part),
                ).fetchall()
            for eid, daily, total in rows:
                out[eid] = (int(daily or 0), int(total or 0))
        return out

    async def counts(self, run_id: str) -> dict[str, int]:
        with self._guard():
            rows = self._db.execute(
                "SELECT status, COUNT(*) FROM outcomes WHERE run = ? GROUP BY status",
                (self._key(run_id),),
            ).fetchall()
        return {status: n for status, n in rows}

    async def reasons(
        self, run_id: str, statuses: Sequence[str], limit: int = 3
    ) -> list[tuple[str, str, int]]:
        """The most frequent (status, reason, count) among outcomes with ``statuses``."""
        await self.flush()
        marks = ",".join("?" * len(statuses))
        with self._guard():
            rows = self._db.execute(
                f"SELECT status, reason, COUNT(*) AS n FROM outcomes WHERE run = ? AND "
                f"status IN ({marks}) GROUP BY status, reason ORDER BY n DESC LIMIT ?",
                (self._key(run_id), *statuses, limit),
            ).fetchall()
        return [(st, reason or "", int(n)) for st, reason, n in rows]

    async def outcomes(
        self, run_id: str, *, lines: tuple[int, int] | None = None
    ) -> AsyncIterator[list[Outcome]]:
        await self.flush()
        first, last = lines or (0, 1 << 62)
        with self._guard():
            cur = self._db.execute(
                "SELECT line, endpoint_id, status, reason, channel, treatment FROM outcomes "
                "WHERE run = ? AND line BETWEEN ? AND ? ORDER BY line",
                (self._key(run_id), first, last),
            )
        while True:
            with self._guard():
                rows = cur.fetchmany(2000)
            if not rows:
                return
            yield [Outcome(line, eid, Status(st), reason, ch, tr)
                   for line, eid, st, reason, ch, tr in rows]  # fmt: skip

    async def in_doubt(self, run_id: str, sender: str) -> list[tuple[str, int]]:
        await self.flush()
        with self._guard():
            rows = self._db.execute(
                "SELECT c.endpoint_id, c.line FROM claims c LEFT JOIN outcomes o "
                "ON o.run = c.run AND o.line = c.line "
                "WHERE c.run = ? AND c.sender = ? AND (o.status IS NULL OR o.status != 'SUCCESS')",
                (self._key(run_id), sender),
            ).fetchall()
        return [(eid, line) for eid, line in rows]

    async def in_doubt_lines(self, run_id: str) -> LineSet:
        """Lines whose endpoint was claimed but never recorded sent: maybe sent, whatever
        their recorded status says; no later attempt may send them."""
        await self.flush()
        found = LineSet()
        with self._guard():
            for (line,) in self._db.execute(
                "SELECT c.line FROM claims c LEFT JOIN outcomes o "
                "ON o.run = c.run AND o.line = c.line "
                "WHERE c.run = ? AND (o.status IS NULL OR o.status != 'SUCCESS')",
                (self._key(run_id),),
            ):
                found.add(line)
        return found

    async def aclose(self) -> None:
        try:
            await self.flush()
        finally:
            self._db.close()

    # -- helpers -------------------------------------------------------------------------
    def _tx(self) -> Transaction:
        return Transaction(self._db, self.path)

    @contextmanager
    def _guard(self, doing: str = "cannot read") -> Iterator[None]:
        """Map SQLite's errors to ``LedgerError`` naming the file and what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise ledger_error(self.path, exc, doing) from exc


class _PendingClaim:
    """One ``claim`` call waiting for the group commit that answers it."""

    __slots__ = ("answers", "claims", "done", "error", "run")

    def __init__(self, run: int, claims: Sequence[SendClaim]) -> None:
        self.run = run
        self.claims = claims
        self.done = anyio.Event()
        self.answers: list[Claim] = []
        self.error: LedgerError | None = None


def _dump(run: RunInfo) -> bytes:
    return orjson.dumps({k: getattr(run, k) for k in RunInfo.__dataclass_fields__})


def _run_info(info: str | bytes) -> RunInfo:
    fields = orjson.loads(info)
    return RunInfo(**{k: v for k, v in fields.items() if k in RunInfo.__dataclass_fields__})
