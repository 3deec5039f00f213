"""A one-line progress display on stderr for long runs; silent when stderr is no TTY."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import anyio


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

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        elapsed = max(self.elapsed, 1e-9)
        return (
            f"read {self.read:,}  hooked {self.hooked:,}  sent {self.sent:,}  "
            f"failed {self.failed:,}  {self.read / elapsed:,.0f} endpoints/s"
        )


async def show_progress(
    counters: Counters, stream: TextIO | None = None, every: float = 0.5
) -> None:
    """Redraw the progress line until cancelled; do nothing if ``stream`` is not a TTY."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return
    try:
        while True:
            stream.write("\r\x1b[2K" + counters.line())
            stream.flush()
            await anyio.sleep(every)
    finally:
        stream.write("\r\x1b[2K" + counters.line() + "\n")
        stream.flush()


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
