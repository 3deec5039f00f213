"""Per-second counters of a run, recorded while it goes: what ``report.html`` draws.

The pipeline calls a ``Timeline`` once per message batch, settled batch and hook call:
millions of calls in a large run. Each call costs one clock read and a few integer
operations on flat per-second lists (no per-call allocation beyond ints), so recording
stays well under a microsecond a call (see docs/report.md for the measurement).

Hook latency goes into a histogram per second with fixed log-scale buckets (8 per
octave, so any percentile read from it is within 4.4 % of the exact one): p50/p95/p99
per second and over the run come out of it without keeping a single sample.

The file form (``DIR/timeline.json``) keeps only non-empty seconds: each series is a
list of runs ``[first_second, [count, count, ...]]`` of consecutive non-zero seconds.
"""

from __future__ import annotations

import math
import os
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from dispatcher.errors import ConfigError, StorageError
from dispatcher.latency import (
    BUCKETS,
    EMPTY_HISTOGRAM,
    MIN_LATENCY,
    OFFSET,
    PER_OCTAVE,
    merge,
    new_histogram,
)
from dispatcher.outcomes import now_iso

TIMELINE_FILE = "timeline.json"
FORMAT_VERSION = 1

_GROW = 64  # seconds added at a time when a series outgrows its list
_log2 = math.log2  # a global lookup, not a module attribute, in the hot path


class Timeline:
    """Per-second counters of one run (seconds counted from ``started``, a monotonic time).

    ``ceiling`` is the campaign's MessagesPerSecond, drawn on the sends chart. Calls
    come from the event loop thread only: there are no locks.
    """

    __slots__ = (
        "_clock", "_duration", "_hook_failed", "_hook_ok", "_latency", "_outcomes",
        "_sent", "_started", "_throttled", "attempts", "ceiling", "run_id", "started_at",
    )  # fmt: skip

    def __init__(
        self,
        started: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        ceiling: float | None = None,
        started_at: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self._started = started
        self.run_id = run_id
        """The run recorded (a resume checks ``timeline.json`` is its own)."""
        self._clock = clock
        self.ceiling = ceiling
        self.started_at = started_at or now_iso()
        """Wall-clock start (ISO 8601 UTC), for the report's axis and header."""
        self.attempts: list[int] = [0]
        """The second each attempt of the run started at (more than one after a resume)."""
        self._sent: dict[str, list[int]] = {}
        self._outcomes: dict[str, list[int]] = {}
        self._hook_ok: list[int] = []
        self._hook_failed: list[int] = []
        self._throttled: list[int] = []
        self._latency: list[array[int] | None] = []
        self._duration: float | None = None

    # -- recording (the hot path) ---------------------------------------------------------
    def sent(self, n: int, channel: str) -> None:
        """``n`` messages handed to the provider now, on ``channel`` (a ChannelType)."""
        second = int(self._clock() - self._started)
        if second < 0:
            second = 0
        row = self._sent.get(channel)
        if row is None:
            row = self._sent[channel] = []
        if second >= len(row):
            _grow(row, second)
        row[second] += n

    def outcome(self, status: str, n: int = 1) -> None:
        """``n`` records settled now with ``status``."""
        second = int(self._clock() - self._started)
        if second < 0:
            second = 0
        row = self._outcomes.get(status)
        if row is None:
            row = self._outcomes[status] = []
        if second >= len(row):
            _grow(row, second)
        row[second] += n

    def hook(self, latency: float, ok: bool) -> None:
        """One hook call (a chunk, from its first attempt to its answer) finished now."""
        second = int(self._clock() - self._started)
        if second < 0:
            second = 0
        row = self._hook_ok if ok else self._hook_failed
        if second >= len(row):
            _grow(row, second)
        row[second] += 1
        if latency < MIN_LATENCY:
            bucket = 0
        else:
            bucket = int(_log2(latency) * PER_OCTAVE + OFFSET)
            if bucket >= BUCKETS:
                bucket = BUCKETS - 1
        seconds = self._latency
        if second >= len(seconds):
            seconds.extend([None] * max(second + 1 - len(seconds), len(seconds), _GROW))
        histogram = seconds[second]
        if histogram is None:  # the first call of this second: one allocation per second
            histogram = seconds[second] = array("I", EMPTY_HISTOGRAM)
        histogram[bucket] += 1

    def throttled(self, n: int = 1) -> None:
        """``n`` throttling answers from a provider now."""
        second = max(0, int(self._clock() - self._started))  # rare: no need to be fast
        if second >= len(self._throttled):
            _grow(self._throttled, second)
        self._throttled[second] += n

    def finish(self) -> None:
        """Fix the run's duration at now (a periodic write before it uses the clock)."""
        self._duration = max(0.0, self._clock() - self._started)

    # -- reading --------------------------------------------------------------------------
    @property
    def started(self) -> float:
        """The monotonic reading second 0 counts from (shared by ``--processes`` workers)."""
        return self._started

    @property
    def duration(self) -> float:
        """Seconds the run took (so far, while it runs)."""
        if self._duration is not None:
            return self._duration
        return max(0.0, self._clock() - self._started)

    @property
    def seconds(self) -> int:
        """How many seconds the series span: the duration rounded up, and at least
        every second that holds a count."""
        rows = [*self._sent.values(), *self._outcomes.values(), self._hook_ok,
                self._hook_failed, self._throttled]  # fmt: skip
        last = max((_last_nonzero(row) for row in rows), default=-1)
        for second in range(len(self._latency) - 1, last, -1):
            if self._latency[second] is not None:
                last = second
                break
        return max(last + 1, math.ceil(self.duration))

    def sends(self) -> dict[str, list[int]]:
        """Messages started per second, per channel (each list ``seconds`` long)."""
        n = self.seconds
        return {ch: _dense(row, n) for ch, row in sorted(self._sent.items())}

    def outcomes(self) -> dict[str, list[int]]:
        """Records settled per second, per status (each list ``seconds`` long)."""
        n = self.seconds
        return {st: _dense(row, n) for st, row in sorted(self._outcomes.items())}

    def hook_calls(self) -> tuple[list[int], list[int]]:
        """Hook calls per second: (answered, failed)."""
        n = self.seconds
        return _dense(self._hook_ok, n), _dense(self._hook_failed, n)

    def throttles(self) -> list[int]:
        """Throttling answers per second."""
        return _dense(self._throttled, self.seconds)

    def latency_histograms(self) -> list[array[int] | None]:
        """Per second, the hook latency histogram (calls per bucket, see ``percentile``);
        None for a second without a hook call."""
        n = self.seconds
        out = self._latency[:n]
        out.extend([None] * (n - len(out)))
        return out

    def latency_overall(self) -> array[int]:
        """The whole run's hook latency histogram (calls per bucket)."""
        return merge(h for h in self._latency if h is not None)

    def totals(self) -> dict[str, int]:
        """Run totals: ``sent``, ``hook_calls``, ``hook_failed``, ``throttled``."""
        return {
            "sent": sum(sum(row) for row in self._sent.values()),
            "hook_calls": sum(self._hook_ok) + sum(self._hook_failed),
            "hook_failed": sum(self._hook_failed),
            "throttled": sum(self._throttled),
        }

    def add(self, other: Timeline) -> None:
        """Add another timeline's counts, second by second (``--processes``: each worker
        records its own, from the same start; the run's is their sum)."""
        for ours, theirs in ((self._sent, other._sent), (self._outcomes, other._outcomes)):
            for key, row in theirs.items():
                _add_row(ours.setdefault(key, []), row)
        _add_row(self._hook_ok, other._hook_ok)
        _add_row(self._hook_failed, other._hook_failed)
        _add_row(self._throttled, other._throttled)
        latency = self._latency
        for second, histogram in enumerate(other._latency):
            if histogram is None:
                continue
            if second >= len(latency):
                latency.extend([None] * (second + 1 - len(latency)))
            counts = latency[second]
            if counts is None:
                latency[second] = array("I", histogram)
            else:
                for bucket, n in enumerate(histogram):
                    if n:
                        counts[bucket] += n

    # -- resume ---------------------------------------------------------------------------
    @classmethod
    def resumed(
        cls,
        previous: Timeline,
        started: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        ceiling: float | None = None,
    ) -> Timeline:
        """A timeline for the next attempt of a run that carries on after ``previous``:
        its seconds follow the earlier attempts' (one empty second between them), so
        one report shows them all; ``attempts`` marks where each began."""
        gap = previous.seconds + 1
        timeline = cls(started - gap, clock=clock, ceiling=ceiling,
                       started_at=previous.started_at, run_id=previous.run_id)  # fmt: skip
        timeline.attempts = [*previous.attempts, gap]
        timeline._sent = {k: list(v) for k, v in previous._sent.items()}
        timeline._outcomes = {k: list(v) for k, v in previous._outcomes.items()}
        timeline._hook_ok = list(previous._hook_ok)
        timeline._hook_failed = list(previous._hook_failed)
        timeline._throttled = list(previous._throttled)
        timeline._latency = [None if h is None else array("I", h) for h in previous._latency]
        return timeline

    # -- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The compact JSON form: only non-empty seconds (see the module docstring)."""
        histograms: list[list[Any]] = []
        for second, histogram in enumerate(self._latency):
            if histogram is not None:
                # The non-zero span, found in C: a second's calls fill few buckets.
                raw = histogram.tobytes()
                low = (len(raw) - len(raw.lstrip(b"\0"))) // 4
                high = (len(raw.rstrip(b"\0")) + 3) // 4
                histograms.append([second, low, histogram[low:high].tolist()])
        return {
            "Version": FORMAT_VERSION,
            "RunId": self.run_id,
            "StartedAt": self.started_at,
            "Duration": round(self.duration, 3),
            "Ceiling": self.ceiling,
            "Attempts": self.attempts,
            "Sent": {ch: _runs(row) for ch, row in sorted(self._sent.items())},
            "Outcomes": {st: _runs(row) for st, row in sorted(self._outcomes.items())},
            "HookCalls": _runs(self._hook_ok),
            "HookFailures": _runs(self._hook_failed),
            "Throttled": _runs(self._throttled),
            "HookLatency": {"PerOctave": PER_OCTAVE, "Offset": OFFSET, "Seconds": histograms},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Timeline:
        """Read ``to_json()`` output back; ``ConfigError`` if it is not a timeline."""
        try:
            if data.get("Version") != FORMAT_VERSION:
                raise ValueError(f"version {data.get('Version')!r}, not {FORMAT_VERSION}")
            latency = data["HookLatency"]
            if (latency["PerOctave"], latency["Offset"]) != (PER_OCTAVE, OFFSET):
                raise ValueError("other latency buckets")
            timeline = cls(0.0, clock=lambda: 0.0, ceiling=data.get("Ceiling"),
                           started_at=str(data["StartedAt"]), run_id=data.get("RunId"))  # fmt: skip
            timeline._duration = float(data["Duration"])
            timeline.attempts = [int(a) for a in data.get("Attempts", [0])]
            timeline._sent = {str(k): _unruns(v) for k, v in data["Sent"].items()}
            timeline._outcomes = {str(k): _unruns(v) for k, v in data["Outcomes"].items()}
            timeline._hook_ok = _unruns(data["HookCalls"])
            timeline._hook_failed = _unruns(data["HookFailures"])
            timeline._throttled = _unruns(data["Throttled"])
            seconds = timeline._latency
            for second, low, counts in latency["Seconds"]:
                second, low = int(second), int(low)
                if second < len(seconds) or low < 0 or low + len(counts) > BUCKETS:
                    raise ValueError(f"latency of second {second} out of order or range")
                seconds.extend([None] * (second - len(seconds)))
                histogram = new_histogram()
                histogram[low : low + len(counts)] = array("I", (int(n) for n in counts))
                seconds.append(histogram)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"not a timeline: {exc}") from None
        return timeline

    def write(self, path: Path) -> None:
        """Write the JSON atomically (a reader never sees half a file)."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(orjson.dumps(self.to_json()))
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}",
                               path=str(path)) from None  # fmt: skip

    @classmethod
    def read(cls, path: Path) -> Timeline:
        """Read a file ``write`` wrote; ``ConfigError`` naming the file if it is not one."""
        try:
            data = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"not JSON: {exc}", file=str(path)) from None
        if not isinstance(data, dict):
            raise ConfigError("not a timeline", file=str(path))
        try:
            return cls.from_json(data)
        except ConfigError as exc:
            raise ConfigError(exc.message, file=str(path)) from None

    def __repr__(self) -> str:
        totals = self.totals()
        return (f"Timeline(seconds={self.seconds}, sent={totals['sent']}, "
                f"hook_calls={totals['hook_calls']}, throttled={totals['throttled']})")  # fmt: skip


def _add_row(row: list[int], other: Sequence[int]) -> None:
    if len(other) > len(row):
        row.extend([0] * (len(other) - len(row)))
    for second, n in enumerate(other):
        if n:
            row[second] += n


def _grow(row: list[int], second: int) -> None:
    """Lengthen ``row`` past ``second``: at least doubling, so growth is amortised."""
    row.extend([0] * max(second + 1 - len(row), len(row), _GROW))


def _last_nonzero(row: Sequence[int]) -> int:
    return next((i for i in range(len(row) - 1, -1, -1) if row[i]), -1)


def _dense(row: Sequence[int], n: int) -> list[int]:
    out = list(row[:n])
    out.extend([0] * (n - len(out)))
    return out


def _runs(row: Sequence[int]) -> list[list[Any]]:
    """``[first_second, [counts...]]`` for each stretch of consecutive non-zero seconds."""
    runs: list[list[Any]] = []
    current: list[int] | None = None
    for second, n in enumerate(row):
        if not n:
            current = None
        elif current is None:
            current = [n]
            runs.append([second, current])
        else:
            current.append(n)
    return runs


def _unruns(runs: Iterable[Sequence[Any]]) -> list[int]:
    row: list[int] = []
    for first, counts in runs:
        first = int(first)
        if first < len(row) or first < 0:
            raise ValueError(f"runs out of order at second {first}")
        row.extend([0] * (first - len(row)))
        row.extend(int(n) for n in counts)
    return row
