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
