"""Counting a run's outcomes in one streaming pass: per status, per treatment, and the
reasons records were not sent, each with a few sample endpoint ids.

``outcomes.jsonl`` can hold 10 million lines, and counting them one parsed line at a
time costs ~7 µs a line. Most lines are SUCCESS and need only their status and
treatment, so ``feed_jsonl`` finds those two fields with regular expressions over
4 MiB blocks (in C) and parses only the other lines: ~2 µs a line with 10 % of them
not SUCCESS. A block whose fields do not line up one-to-one with its lines falls back
to parsing every line: the counts are exact either way.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dispatcher.errors import ConfigError

SAMPLES = 5
MAX_REASONS = 10_000
"""Distinct (status, reason) pairs counted one by one; beyond, the rest are lumped."""
OTHER_REASONS = "(other reasons: too many distinct ones to count each)"
_BLOCK = 4 << 20

# Inside a JSON string every '"' is escaped, so these byte patterns only match keys.
_STATUS = re.compile(rb'"Status":"([A-Z_]+)"')
_TREATMENT = re.compile(rb'"TreatmentId":(null|"(?:[^"\\]|\\.)*")')
_NOT_SUCCESS = re.compile(rb'"Status":"(?!SUCCESS")')


@dataclass(frozen=True, slots=True)
class Reason:
    """One (status, reason) pair: how many records, and up to 5 of their endpoint ids
    (``line N`` for a record without one, such as a malformed line)."""

    status: str
    reason: str
    count: int
    samples: tuple[str, ...] = ()


class OutcomeStats:
    """Counts outcomes as they are fed, in bounded memory."""

    def __init__(self, *, samples: int = SAMPLES, max_reasons: int = MAX_REASONS) -> None:
        self.by_status: Counter[str] = Counter()
        self.by_treatment: dict[str, Counter[str]] = {}
        self._reasons: dict[tuple[str, str], list[Any]] = {}  # key -> [count, samples]
        self._samples = samples
        self._max_reasons = max_reasons
        self.complete = True
        """False once a reason was lumped into OTHER_REASONS."""

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def add(
        self,
        status: str,
        treatment: str | None,
        reason: str | None,
        endpoint_id: str | None,
        line: int | None = None,
    ) -> None:
        """Count one outcome (``line``: its segment line, the sample when it has no id)."""
        self.by_status[status] += 1
        self._treatment(treatment)[status] += 1
        if status != "SUCCESS":
            self._reason(status, reason, _sample(endpoint_id, line))

    def reasons(self, limit: int | None = None) -> list[Reason]:
        """(status, reason) pairs, most frequent first (then by status and reason)."""
        rows = [Reason(st, reason, n, tuple(samples))
                for (st, reason), (n, samples) in self._reasons.items()]  # fmt: skip
        rows.sort(key=lambda r: (-r.count, r.status, r.reason))
        return rows[:limit] if limit is not None else rows

    def feed_jsonl(self, path: Path) -> None:
        """Count every line of an ``outcomes.jsonl``; ``ConfigError`` naming a bad line."""
        try:
            with path.open("rb") as f:
                rest = b""
                while True:
                    block = f.read(_BLOCK)
                    if not block:
                        break
                    block = rest + block
                    cut = block.rfind(b"\n") + 1
                    rest = block[cut:]
                    self._feed_block(block[:cut], path)
                if rest.strip():
                    self._feed_block(rest + b"\n", path)
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None

    def _feed_block(self, block: bytes, path: Path) -> None:
        lines = block.count(b"\n")
        statuses = _STATUS.findall(block)
        treatments = _TREATMENT.findall(block)
        if not (len(statuses) == len(treatments) == lines):
            for line in block.splitlines():
                if line.strip():
                    self._feed_line(line, path)
            return
        pairs = Counter(zip(treatments, statuses, strict=True))
        for (treatment, status), n in pairs.items():
            name = status.decode()
            self.by_status[name] += n
            self._treatment(_treatment_id(treatment))[name] += n
        if all(status == b"SUCCESS" for _, status in pairs):
            return
        for match in _NOT_SUCCESS.finditer(block):
            start = block.rfind(b"\n", 0, match.start()) + 1
            o = _loads(block[start : block.index(b"\n", match.end())], path)
            self._reason(
                str(o["Status"]), o.get("Reason"), _sample(o.get("EndpointId"), o.get("Line"))
            )

    def _feed_line(self, line: bytes, path: Path) -> None:
        o = _loads(line, path)
        status = o.get("Status")
        if not isinstance(status, str):
            raise ConfigError(f"an outcome without a Status: {line[:200]!r}", file=str(path))
        self.add(status, o.get("TreatmentId"), o.get("Reason"), o.get("EndpointId"), o.get("Line"))

    def _treatment(self, treatment: str | None) -> Counter[str]:
        key = treatment or ""
        counts = self.by_treatment.get(key)
        if counts is None:
            counts = self.by_treatment[key] = Counter()
        return counts

    def _reason(self, status: str, reason: str | None, sample: str | None) -> None:
        key = (status, reason or "")
        entry = self._reasons.get(key)
        if entry is None:
            if len(self._reasons) >= self._max_reasons:
                self.complete = False
                key = (status, OTHER_REASONS)
                entry = self._reasons.get(key)
            if entry is None:
                entry = self._reasons[key] = [0, []]
        entry[0] += 1
        if sample and len(entry[1]) < self._samples:
            entry[1].append(sample)


def _sample(endpoint_id: object, line: object) -> str | None:
    if endpoint_id:
        return str(endpoint_id)
    return f"line {line}" if isinstance(line, int) else None


def _treatment_id(raw: bytes) -> str | None:
    if raw == b"null":
        return None
    value = orjson.loads(raw)
    return str(value) if value is not None else None


def _loads(line: bytes, path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ConfigError(f"not a JSON line: {line[:200]!r}", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"not an outcome: {line[:200]!r}", file=str(path))
    return data
