"""The in-process limiter: a hard ceiling on requests as the provider sees them.

``Limits.MessagesPerSecond`` promises that no half-open one-second window ``[t, t + 1)``
of *arrival times at the provider* holds more than ``rate`` messages. A limiter cannot
see arrivals, only two instants that bound one: the **grant** (before the request is
written) and the **done** stamp (after its answer came, or it failed: the request, if
it left at all, has arrived by then). So a grant opens a *permit* that counts against
every window until ``done()``, and is then logged at the done instant:

* a grant of ``n`` is made only if (permits still open) + (done stamps in the last
  ``1 s + window_margin``) + ``n`` stays within ``rate``. Take any window of arrivals
  and the last-granted message in it: at its grant every other message of the window
  was either still open, or done at an instant inside the second before (it arrived in
  the window, and was done after arriving). All were counted, so no window exceeds the
  ceiling, however late a granted request reaches the wire (a slow first client, a
  connection pool, a busy event loop). The cost is the round trip: a message holds its
  unit for ``latency + 1 s``, i.e. ~0.2-0.5 % of the ceiling on loopback.
* **GCRA pacing** at the *effective* rate spreads grants over the second, so a fast
  consumer does not spend a whole second's allowance in one burst. It tolerates
  ``burst`` seconds of credit and, once ahead of schedule, sleeps until half of that
  credit is back: a waiter sleeps once per batch of grants, never once per message.

Done stamps within a millisecond of each other share one log entry stamped with the
*later* time (only stricter), so the log stays small at 20,000/s.

Throttling feedback (``throttled()``) lowers the effective pacing rate multiplicatively,
at most once per ``cooldown``, optionally pauses all grants for the provider's
``Retry-After``, and lets the rate grow back by ``recovery`` (a fraction per second)
up to the ceiling, never above it.

``set_rate(rate, until=...)`` moves the allowed rate between 0 and the ceiling, up to a
clock reading after which nothing is granted: a shared ceiling
(``dispatcher.ratelimit.shared``) keeps it at this process's lease, and a lease that is
not renewed in time stops the grants by itself. ``drained()`` waits until what this
limiter has in flight and in its window fits a lower rate.

Waiters are served first come, first served (``anyio.Lock`` hands over in FIFO order),
so a large request is never starved by a stream of small ones.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Limiter", "Permit", "RateLimiter"]

_COALESCE = 0.001
"""Done stamps closer together than this share one log entry (stamped with the later time)."""
_MIN_SLEEP = 1e-6
"""Never sleep less than this: guarantees progress of a clock with coarse resolution."""


class Permit:
    """Starts granted and not yet done: they count against every window until ``done()``.

    Use it around the request: ``with await limiter.acquire(n): await client.call(...)``.
    ``done()`` is idempotent; a permit that is never done holds its units for good.
    """

    __slots__ = ("_parts",)

    def __init__(self, parts: list[tuple[RateLimiter, int]]) -> None:
        self._parts = parts

    @classmethod
    def joined(cls, permits: Iterable[Permit]) -> Permit:
        """One permit for several: done together."""
        return cls([part for permit in permits for part in permit._parts])

    def done(self) -> None:
        """The requests have arrived (answered, failed or abandoned): stamp them now."""
        parts, self._parts = self._parts, []
        for limiter, n in parts:
            limiter._done(n)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.done()


@runtime_checkable
class Limiter(Protocol):
    """What a sender or the send stage needs from a rate limiter."""

    @property
    def max_grant(self) -> int:
        """The most starts one ``acquire`` can be granted under the current rate."""
        ...

    async def acquire(self, n: int = 1) -> Permit:
        """Wait until ``n`` starts fit under the ceiling; grant them as an open ``Permit``."""
        ...

    def throttled(self, retry_after: float | None = None) -> None:
        """Report that the provider throttled a request."""
        ...


class RateLimiter:
    """A hard ceiling of ``rate`` arrivals in any one-second window (see the module doc).

    ``clock`` and ``sleep`` are injectable (tests drive a virtual clock). Keyword knobs:
    ``burst`` seconds of pacing credit (default 20 ms), ``decrease`` the factor applied to
    the effective rate on throttling, ``recovery`` the fraction per second by which it
    grows back, ``cooldown`` the least time between two decreases, ``min_rate`` the floor
    of the effective rate, ``max_pause`` the longest ``retry_after`` honoured,
    ``window_margin`` (default 5 ms) widens the enforced window to ``1 s + margin`` for
    network jitter between two requests, ``on_grant`` a callback ``(clock reading, n)``
    run at each grant (metrics, tests), ``initial_rate`` the allowed rate to start with
    (default: the ceiling; a shared ceiling starts at 0 until it holds a lease).

    ``hard=False`` makes a *pacer*: pacing, throttling feedback and ``Retry-After``
    without the window (its permits hold nothing). A sender with no quota of its own
    gets one in front of the campaign's hard ceiling, for its own throttling feedback:
    two hard ceilings of one rate in a row would hold each permit of the first while
    the second makes it wait, costing throughput for nothing.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        burst: float = 0.02,
        decrease: float = 0.5,
        recovery: float = 0.1,
        cooldown: float = 1.0,
        min_rate: float | None = None,
        max_pause: float = 60.0,
        window_margin: float = 0.005,
        on_grant: Callable[[float, int], object] | None = None,
        initial_rate: float | None = None,
        hard: bool = True,
    ) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate >= 1):
            raise ValueError(f"'rate' must be a finite number >= 1, got {rate!r}")
        if not burst > 0:
            raise ValueError(f"'burst' must be > 0 seconds, got {burst!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"'decrease' must be between 0 and 1 (exclusive), got {decrease!r}")
        if not recovery >= 0:
            raise ValueError(f"'recovery' must be >= 0, got {recovery!r}")
        if not 0 <= window_margin < 0.5:
            raise ValueError(
                f"'window_margin' must be from 0 to 0.5 seconds, got {window_margin!r}"
            )
        if not cooldown >= 0:
            raise ValueError(f"'cooldown' must be >= 0 seconds, got {cooldown!r}")
        floor = min(1.0, float(rate)) if min_rate is None else float(min_rate)
        if not 0 < floor <= rate:
            raise ValueError(f"'min_rate' must be > 0 and <= rate ({rate:g}), got {min_rate!r}")
        self.ceiling = float(rate)
        """The most this limiter ever allows; ``rate`` is at most this."""
        self.rate = self.ceiling
        """The rate allowed now (``set_rate``): the ceiling, or a shared ceiling's lease."""
        self.hard = hard
        self._clock = clock
        self._sleep = sleep
        self._burst = float(burst)
        self._decrease = float(decrease)
        self._growth = math.log1p(recovery)
        self._cooldown = float(cooldown)
        self._min_rate = floor
        self._max_pause = float(max_pause)
        self._on_grant = on_grant
        self._span = 1.0 + window_margin
        self._lock = anyio.Lock(fast_acquire=True)
        self._log: deque[list[float]] = deque()  # [done stamp, count], oldest first
        self._in_window = 0
        self._open = 0  # granted, not yet done
        self._until = math.inf  # no grant from this clock reading on (a lease's end)
        self._changed: anyio.Event | None = None  # set when a permit is done or rate grows
        self._tat = -math.inf  # GCRA theoretical arrival time
        self._not_before = -math.inf
        self._effective = self.ceiling
        self._rate_updated = -math.inf
        self._next_decrease = -math.inf
        self.granted = 0
        """Starts granted so far."""
        self.throttle_events = 0
        """``throttled()`` calls so far."""
        if initial_rate is not None:
            self.set_rate(initial_rate)

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self.rate:g}, ceiling={self.ceiling:g}, "
            f"effective={self.effective_rate:.4g}, granted={self.granted}, open={self._open}, "
            f"throttle_events={self.throttle_events})"
        )

    @property
    def effective_rate(self) -> float:
        """The current pacing rate: the allowed rate, or less after throttling feedback."""
        if self._effective < self.ceiling:
            self._recover(self._clock())
        return min(self._effective, self.rate)

    @property
    def max_grant(self) -> int:
        return int(self.rate)

    @property
    def in_flight(self) -> int:
        """Starts granted whose permits are not done yet."""
        return self._open

    async def acquire(self, n: int = 1) -> Permit:
        """Wait until ``n`` starts fit under the ceiling, then grant them (an open permit)."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"'n' must be an int >= 0, got {n!r}")
        if n > self.ceiling:
            raise ValueError(f"'n' must be <= the rate ({self.ceiling:g}/s): {n} can never fit")
        if n == 0:
            return Permit([])
        async with self._lock:
            now = await self._ready(n)
            self._grant(n, now)
        return Permit([(self, n)] if self.hard else [])

    def throttled(self, retry_after: float | None = None) -> None:
        """Slow down after a provider throttled a request; pause for ``retry_after`` seconds."""
        now = self._clock()
        self.throttle_events += 1
        if self._effective < self.ceiling:
            self._recover(now)
        if now >= self._next_decrease:
            # Many in-flight sends report the same throttling episode: decrease once.
            current = min(self._effective, self.rate)
            self._effective = max(self._min_rate, current * self._decrease)
            self._rate_updated = now
            self._next_decrease = now + self._cooldown
        if retry_after is not None and retry_after > 0:
            self._not_before = max(self._not_before, now + min(retry_after, self._max_pause))

    def set_rate(self, rate: float, *, until: float = math.inf) -> None:
        """Allow ``rate`` (0 to the ceiling) from now on, and nothing from clock reading
        ``until`` on (a lease's end); grants already made stay made."""
        if not (math.isfinite(rate) and 0 <= rate <= self.ceiling):
            raise ValueError(f"'rate' must be from 0 to the ceiling ({self.ceiling:g}), got {rate}")
        grew = rate > self.rate or until > self._until
        self.rate = float(rate)
        self._until = until
        if grew:
            self._wake()

    async def drained(self, rate: float) -> None:
        """Wait until what is in flight plus the window's done stamps fit within ``rate``.

        After ``set_rate(rate)`` and this, the process uses no more than ``rate`` in any
        window that starts from now on: what a lease may then hand to another process.
        """
        while True:
            wait = self._occupancy_wait(rate, self._clock())
            if wait <= 0:
                return
            await self._wait(wait)

    # -- internals -------------------------------------------------------------------------

    async def _ready(self, n: int) -> float:
        """Sleep until ``n`` starts may be granted; return the clock reading at that point."""
        while True:
            now = self._clock()
            wait = self._wait_time(n, now)
            if wait <= 0:
                return now
            await self._wait(wait)

    async def _wait(self, wait: float) -> None:
        if math.isinf(wait):
            # Only a permit being done or the rate growing can help: wait for either.
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        else:
            await self._sleep(max(wait, _MIN_SLEEP))

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _expire(self, now: float) -> None:
        log = self._log
        span = self._span
        while log and log[0][0] + span <= now:
            self._in_window -= int(log.popleft()[1])

    def _occupancy_wait(self, limit: float, now: float) -> float:
        """Seconds until open permits plus the window's stamps fit ``limit`` (inf: a permit
        must be done first)."""
        self._expire(now)
        if self._open > limit:
            return math.inf
        excess = self._open + self._in_window - limit
        if excess <= 0:
            return 0.0
        freed = 0.0
        for stamp, count in self._log:
            freed += count
            if freed >= excess:
                return stamp + self._span - now
        return math.inf  # unreachable: the log holds _in_window

    def _wait_time(self, n: int, now: float) -> float:
        if now >= self._until or n > self.rate:
            return math.inf  # the lease ran out or is too small: only set_rate() helps
        wait = self._occupancy_wait(self.rate - n, now) if self.hard else 0.0
        if math.isinf(wait):
            return wait
        wait = max(wait, self._not_before - now)
        if self._effective < self.ceiling:
            self._recover(now)
        burst = self._burst
        if self._tat - burst > now:
            # Ahead of the pacing schedule: wait until half the burst credit is back, so
            # the next wake-up grants a batch rather than a single message.
            wait = max(wait, self._tat - 0.5 * burst - now)
        return wait

    def _grant(self, n: int, now: float) -> None:
        pace = min(self._effective, self.rate)
        self._tat = max(self._tat, now) + n / pace
        if self.hard:
            self._open += n
        self.granted += n
        if self._on_grant is not None:
            self._on_grant(now, n)

    def _done(self, n: int) -> None:
        now = self._clock()
        self._open -= n
        log = self._log
        if log and now - log[-1][0] < _COALESCE:
            last = log[-1]
            last[0] = max(last[0], now)
            last[1] += n
        else:
            log.append([now, n])
        self._in_window += n
        self._wake()

    def _recover(self, now: float) -> None:
        elapsed = now - self._rate_updated
        if elapsed > 0:
            self._effective = min(self.ceiling, self._effective * math.exp(self._growth * elapsed))
            self._rate_updated = now
