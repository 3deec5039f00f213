"""The ledger's SQLite file: its schema, the connection's settings, transactions, and
SQLite's errors mapped to ``LedgerError`` naming the file and what to do about it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dispatcher.errors import LedgerError

__all__ = ["SCHEMA", "Transaction", "connect", "ledger_error"]

# Rows refer to their run by the runs table's integer key: a 32-character run id in
# every outcome and claim key would double the size of the hot indexes. A claim is
# "sent" when its line's outcome is SUCCESS; there is no second write to mark it.
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, info TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS outcomes (
    run INTEGER NOT NULL, line INTEGER NOT NULL, endpoint_id TEXT, status TEXT NOT NULL,
    reason TEXT, channel TEXT, treatment TEXT, attempt INTEGER NOT NULL,
    PRIMARY KEY (run, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    run INTEGER NOT NULL, endpoint_id TEXT NOT NULL, line INTEGER NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (run, endpoint_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sends (
    endpoint_id TEXT NOT NULL, campaign_id TEXT NOT NULL, run INTEGER NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_by_endpoint ON sends (endpoint_id, sent_at);
"""


def connect(path: Path, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """The ledger file, opened (created with its schema if new) in WAL mode; callers
    wrap this in their own error mapping."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(SCHEMA)
    return db


def ledger_error(path: Path, exc: sqlite3.Error, doing: str) -> LedgerError:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "corrupt" in text
    ):
        return LedgerError(
            f"ledger {path} is damaged ({text}); restore it from a backup (nothing was sent "
            "twice: claims are written before sends)",
            path=str(path),
        )
    if "full" in text or "too large" in text.lower():
        return LedgerError(f"ledger {path}: {text} (free disk space)", path=str(path))
    return LedgerError(f"ledger {path}: {doing}: {text}", path=str(path))


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error, errors mapped to LedgerError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise ledger_error(self._path, exc, "unavailable") from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as err:
                self._rollback()
                raise ledger_error(self._path, err, "write failed") from err
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise ledger_error(self._path, exc, "write failed") from exc

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (e.g. on SQLITE_FULL); the write is undone
