"""Rate leases in an SQLite file: the processes of one machine (``--processes N``).

The leases live in their own table of the run's ledger file (any SQLite file the
processes share works), one row per ceiling and member::

    CREATE TABLE rate_leases (ceiling TEXT, member TEXT, share INTEGER, rate REAL,
                              expires REAL, PRIMARY KEY (ceiling, member))

An update is one short ``BEGIN IMMEDIATE`` transaction (read the ceiling's rows, write
the changed ones), run in a worker thread so that waiting for another process's write
lock never blocks the event loop. WAL mode, as the ledger.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from dispatcher.ratelimit.shared import Lease, LeaseError, Leases

__all__ = ["SqliteLeaseStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_leases (
    ceiling TEXT NOT NULL, member TEXT NOT NULL, share INTEGER NOT NULL, rate REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (ceiling, member)
) WITHOUT ROWID;
"""


class SqliteLeaseStore:
    """``LeaseStore`` over one SQLite file shared by the processes of a machine."""

    def __init__(self, path: Path | str, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.writes = 0
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=busy_timeout,
            )  # fmt: skip
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise LeaseError(f"cannot open rate leases in {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteLeaseStore({str(self.path)!r}, writes={self.writes})"

    async def read(self, key: str) -> Leases:
        return await anyio.to_thread.run_sync(self._read, key)

    async def update(self, key: str, change: Callable[[Leases], Leases]) -> Leases:
        return await anyio.to_thread.run_sync(self._update, key, change)

    def _read(self, key: str) -> Leases:
        with self._lock:
            try:
                return self._select(key)
            except sqlite3.Error as exc:
                raise LeaseError(f"rate lease {key} in {self.path}: {exc}") from None

    def _select(self, key: str) -> Leases:
        rows = self._db.execute(
            "SELECT member, share, rate, expires FROM rate_leases WHERE ceiling = ?", (key,)
        ).fetchall()
        return {m: Lease(int(s), float(r), float(x)) for m, s, r, x in rows}

    def _update(self, key: str, change: Callable[[Leases], Leases]) -> Leases:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    before = self._select(key)
                    after = change(dict(before))
                    gone = [(key, m) for m in before if m not in after]
                    db.executemany("DELETE FROM rate_leases WHERE ceiling = ? AND member = ?", gone)
                    db.executemany(
                        "INSERT OR REPLACE INTO rate_leases VALUES (?, ?, ?, ?, ?)",
                        [(key, m, v.share, v.ceiling, v.expires)
                         for m, v in after.items() if before.get(m) != v],
                    )  # fmt: skip
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise LeaseError(f"rate lease {key} in {self.path}: {exc}") from None
            self.writes += 1
            return after

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
