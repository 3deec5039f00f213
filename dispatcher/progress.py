"""Progress on stderr: a line redrawn in place on a terminal, a log line every 10 s
elsewhere (systemd, CI, Kubernetes logs), and countdowns while a run waits."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import anyio

LOG_EVERY = 10.0
"""Seconds between two progress lines when stderr is not a terminal."""


def span(seconds: float) -> str:
    """``1d 02h 03m 04s`` / ``3h 12m 05s`` / ``4m 09s`` / ``12s``."""
    total = int(seconds + 0.999)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m {secs:02d}s"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@dataclass(slots=True)
class Counters:
    """Live counts of the run, updated by the stages (single event loop: no locks)."""

    read: int = 0
    hooked: int = 0
    sent: int = 0
    failed: int = 0
    hook_invocations: int = 0
    hook_chunks: int = 0
    hook_seconds: float = 0.0
    """Time from a chunk's first attempt to its last answer, summed (hook latency)."""
    started: float = field(default_factory=time.monotonic)
    position: Callable[[], tuple[int, int] | None] | None = None
    """(bytes read, size) of the segment source, when it knows its size: the percent."""
    expected: int | None = None
    """Records the segment holds, when known: the percent, more exactly than bytes."""
    clock: Callable[[], float] = time.monotonic
    """Where ``started`` and ``elapsed`` are read (a test's fixed clock: a stable line)."""

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def fraction(self) -> float | None:
        """How much of the segment was read (0..1), None when its size is unknown."""
        if self.expected:
            return min(1.0, self.read / self.expected)
        where = self.position() if self.position is not None else None
        if where is not None and where[1] > 0:
            return min(1.0, where[0] / where[1])
        return None

    def fields(self) -> list[tuple[int, str]]:
        """The progress fields in display order, each with its priority (0 is kept
        longest when the line is too wide for the terminal)."""
        elapsed = max(self.elapsed, 1e-9)
        done = self.fraction()
        out = []
        if done is not None:
            out.append((0, f"{done * 100:.1f}%"))
        total = f" of ~{self.read / done:,.0f}" if done and not self.expected else ""
        if self.expected:
            total = f" of {self.expected:,}"
        out += [(0, f"read {self.read:,}{total}"), (6, f"hooked {self.hooked:,}"),
                (1, f"sent {self.sent:,}"), (2, f"failed {self.failed:,}"),
                (3, f"{self.read / elapsed:,.0f}/s"), (5, f"elapsed {span(elapsed)}")]  # fmt: skip
        if done is not None and 0 < done < 1:
            out.append((4, f"ETA {span(elapsed * (1 - done) / done)}"))
        return out

    def line(self, width: int | None = None) -> str:
        """The progress line, fitted to ``width`` columns: the least important fields
        go first, and what still does not fit is cut (a wrapped line cannot be redrawn)."""
        fields = self.fields()
        text = "  ".join(f for _, f in fields)
        while width is not None and len(text) > width - 1 and len(fields) > 1:
            worst = max(range(len(fields)), key=lambda i: (fields[i][0], i))
            del fields[worst]
            text = "  ".join(f for _, f in fields)
        return text[: width - 1] if width is not None and width > 1 else text


async def show_progress(
    counters: Counters, stream: TextIO | None = None, every: float = 0.5,
    log_every: float = LOG_EVERY,
) -> None:  # fmt: skip
    """Until cancelled: on a terminal, redraw the progress line in place (fitted to its
    width); elsewhere, write a ``dispatcher: progress:`` line every ``log_every`` seconds,
    and a last one at the end of a run that wrote one (a short run has its tally)."""
    stream = stream or sys.stderr
    if stream.isatty():
        try:
            while True:
                _write(stream, "\r\x1b[2K" + counters.line(_width(stream)))
                await anyio.sleep(every)
        finally:
            _write(stream, "\r\x1b[2K" + counters.line(_width(stream)) + "\n")
        return  # (never reached: cancellation ends the loop above)
    logged = False
    try:
        while True:
            await anyio.sleep(log_every)
            _write(stream, "dispatcher: progress: " + counters.line() + "\n")
            logged = True
    finally:
        if logged:
            _write(stream, "dispatcher: progress: " + counters.line() + "\n")


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size().columns


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass  # stderr closed: the run goes on without it


class Notice:
    """A line on stderr that changes while the run waits (a countdown): redrawn in place
    on a TTY; in a log (no TTY) printed when it first shows and then every ``every`` s."""

    def __init__(self, stream: TextIO | None = None, every: float = 60.0) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self._tty = self.stream.isatty()
        self._last: float | None = None

    def show(self, text: str) -> None:
        now = time.monotonic()
        try:
            if self._tty:
                self.stream.write("\r\x1b[2K" + text)
            elif self._last is None or now - self._last >= self.every:
                self.stream.write(text + "\n")
            else:
                return
            self.stream.flush()
        except (OSError, ValueError):
            return  # stderr closed: the wait goes on without it
        self._last = now

    def done(self) -> None:
        """End the redrawn line (a TTY), so that what follows starts on its own."""
        if self._tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._last = None
