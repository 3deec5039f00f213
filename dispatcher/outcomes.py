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

from dispatcher.model import Outcome, Summary

OUTCOMES_FILE = "outcomes.jsonl"
SUMMARY_FILE = "summary.json"


def now_iso() -> str:
    """The current UTC time in ISO 8601 with milliseconds, as Pinpoint prints times."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OutcomeLog:
    """Appends outcomes to ``outcomes.jsonl`` and counts them by status."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self._file = path.open("ab" if append else "wb")
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def write(self, outcomes: Iterable[Outcome]) -> None:
        lines = []
        counts = self.counts
        for o in outcomes:
            counts[o.status.value] += 1
            lines.append(orjson.dumps(o.to_json()))
        if lines:
            lines.append(b"")
            self._file.write(b"\n".join(lines))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_summary(out_dir: Path, summary: Summary) -> None:
    """Write ``summary.json`` atomically (readers never see half a file)."""
    path = out_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)

