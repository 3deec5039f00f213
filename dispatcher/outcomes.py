"""The outcome log (``outcomes.jsonl``) and the run summary (``summary.json``).

One line per segment record, written as outcomes become final, in completion order.
The log is the single place where statuses are counted, so ``ByStatus`` always adds up
to ``Total`` and to the number of lines in the file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from dispatcher.errors import StorageError
from dispatcher.model import FAILURE_STATUSES, Outcome, Summary

OUTCOMES_FILE = "outcomes.jsonl"
SUMMARY_FILE = "summary.json"


def now_iso() -> str:
    """The current UTC time in ISO 8601 with milliseconds, as Pinpoint prints times."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OutcomeLog:
    """Appends outcomes to ``outcomes.jsonl`` and counts them by status."""

    def __init__(self, path: Path, *, append: bool = False, shared: bool = False) -> None:
        self.path = path
        try:
            # ``shared``: other processes append to the same file (``--processes``): each
            # ``write`` is then one write(2) of whole lines, which O_APPEND keeps apart.
            self._file = path.open("ab" if append or shared else "wb",
                                   buffering=0 if shared else -1)  # fmt: skip
        except OSError as exc:
            raise storage_error(path, exc) from None
        self.counts: Counter[str] = Counter()
        self.failure_reasons: Counter[tuple[str, str]] = Counter()
        """(status, reason) of the failures written, for the closing tally."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def write(self, outcomes: Iterable[Outcome]) -> None:
        lines = []
        counts = self.counts
        for o in outcomes:
            counts[o.status.value] += 1
            if o.status in FAILURE_STATUSES:
                self.failure_reasons[(o.status.value, o.reason or "")] += 1
            lines.append(orjson.dumps(o.to_json()))
        if lines:
            lines.append(b"")
            try:
                self._file.write(b"\n".join(lines))
            except OSError as exc:
                raise storage_error(self.path, exc) from None

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise storage_error(self.path, exc) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise storage_error(self.path, exc) from None


def storage_error(path: Path, exc: OSError) -> StorageError:
    """A run file that cannot be written: name it and the cause (``No space left``...)."""
    return StorageError(f"cannot write {path}: {exc.strerror or exc}", path=str(path))


def write_summary(out_dir: Path, summary: Summary) -> None:
    """Write ``summary.json`` atomically (readers never see half a file)."""
    path = out_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(path, exc) from None

