"""Message-start rate limiting: a hard per-second ceiling, paced, with throttling feedback.

``Limits.MessagesPerSecond`` is a ceiling on message *starts*: no half-open one-second
window ``[t, t + 1)`` of the run may hold more grants than ``rate``. Two mechanisms share
the work:

* a **sliding-window log** of grants enforces the ceiling exactly. A grant of ``n`` at
  time ``g`` is made only if the grants recorded in ``(g - 1, g]`` plus ``n`` stay within
  ``rate``; two grants share some window ``[t, t + 1)`` exactly when they are less than a
  second apart, so no window can ever exceed the ceiling. (The enforced window is 5 ms
  longer than a second, see ``window_margin``.) Grants within a millisecond of
  each other are coalesced into one entry stamped with the *later* time (which only makes
  the check stricter), so the log stays small at 20,000/s.
* **GCRA pacing** at the *effective* rate spreads grants over the second, so a fast
  consumer does not spend a whole second's allowance in one burst. Pacing tolerates
  ``burst`` seconds of credit and, once ahead of schedule, sleeps until half of that
  credit is back: a waiter sleeps once per batch of grants, never once per message.

Throttling feedback (``throttled()``) lowers the effective pacing rate multiplicatively,
at most once per ``cooldown``, optionally pauses all grants for the provider's
``Retry-After``, and lets the rate grow back by ``recovery`` (a fraction per second)
up to the configured ceiling, never above it.

Waiters are served first come, first served (``anyio.Lock`` hands over in FIFO order),
so a large request is never starved by a stream of small ones.

``RateLimiter.chain(limiter)`` / ``chain(...)`` compose limiters, e.g. a channel's own
``max_per_second`` with the run-wide ``MessagesPerSecond``: a grant is recorded in every
limiter of the chain at the same instant, so each ceiling holds for the actual starts.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["ChainedLimiter", "Limiter", "NoLimit", "RateLimiter", "chain"]

_COALESCE = 0.001
"""Grants closer together than this share one log entry (stamped with the later time)."""
_MIN_SLEEP = 1e-6
"""Never sleep less than this: guarantees progress of a clock with coarse resolution."""


@runtime_checkable
class Limiter(Protocol):
    """What the send stage needs from a rate limiter."""

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` message starts are allowed, then grant them."""
        ...

    def throttled(self, retry_after: float | None = None) -> None:
        """Report that the provider throttled a send."""
        ...


class RateLimiter:
    """A hard ceiling of ``rate`` message starts in any one-second window.

    ``clock`` and ``sleep`` are injectable (tests drive a virtual clock). Keyword knobs:
    ``burst`` seconds of pacing credit (default 20 ms), ``decrease`` the factor applied to
    the effective rate on throttling, ``recovery`` the fraction per second by which it
    grows back, ``cooldown`` the least time between two decreases, ``min_rate`` the floor
    of the effective rate, ``max_pause`` the longest ``retry_after`` honoured, ``on_grant``
    a callback ``(clock reading, n)`` run at each grant (metrics, tests).

    ``window_margin`` (default 5 ms) widens the enforced window to ``1 s + margin``: the
    ceiling holds exactly for grant times, and the margin keeps it for the actual starts
    too when a granted task is scheduled, or writes its request, a little late. It costs
    ~0.5 % of the ceiling.
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
        self.rate = float(rate)
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
        self._log: deque[list[float]] = deque()  # [time, count], oldest first
        self._in_window = 0
        self._tat = -math.inf  # GCRA theoretical arrival time
        self._not_before = -math.inf
        self._effective = self.rate
        self._rate_updated = -math.inf
        self._next_decrease = -math.inf
        self.granted = 0
        """Message starts granted so far."""
        self.throttle_events = 0
        """``throttled()`` calls so far."""

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self.rate:g}, effective={self._effective:.4g}, "
            f"granted={self.granted}, throttle_events={self.throttle_events})"
        )

    @property
    def effective_rate(self) -> float:
        """The current pacing rate: the ceiling, or less after throttling feedback."""
        if self._effective < self.rate:
            self._recover(self._clock())
        return self._effective

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` message starts fit under the ceiling, then grant them."""
        _check_request(n, self.rate)
        if n == 0:
            return
        async with self._lock:
            now = await self._ready(n)
            self._commit(n, now)

    def throttled(self, retry_after: float | None = None) -> None:
        """Slow down after a provider throttled a send; pause for ``retry_after`` seconds."""
        now = self._clock()
        self.throttle_events += 1
        if self._effective < self.rate:
            self._recover(now)
        if now >= self._next_decrease:
            # Many in-flight sends report the same throttling episode: decrease once.
            self._effective = max(self._min_rate, self._effective * self._decrease)
            self._rate_updated = now
            self._next_decrease = now + self._cooldown
        if retry_after is not None and retry_after > 0:
            self._not_before = max(self._not_before, now + min(retry_after, self._max_pause))

    def chain(self, outer: RateLimiter) -> ChainedLimiter:
        """This (narrower, e.g. per-channel) limiter composed with ``outer`` (run-wide)."""
        return ChainedLimiter(self, outer)

    def channel(self, max_per_second: float | None = None) -> ChainedLimiter:
        """A channel's limiter under this run-wide one.

        The channel gets its own ceiling (``max_per_second``, capped at the run's rate)
        and its own throttling feedback, on the same clock; every grant also counts
        against this limiter.
        """
        rate = self.rate if max_per_second is None else min(float(max_per_second), self.rate)
        own = RateLimiter(
            rate,
            clock=self._clock,
            sleep=self._sleep,
            burst=self._burst,
            decrease=self._decrease,
            recovery=math.expm1(self._growth),
            cooldown=self._cooldown,
            max_pause=self._max_pause,
            window_margin=self._span - 1.0,
        )
        return ChainedLimiter(own, self)

    # -- internals, also used by ChainedLimiter (which holds the lock) -------------------

    async def _ready(self, n: int) -> float:
        """Sleep until ``n`` starts may be granted; return the clock reading at that point."""
        now = self._clock()
        wait = self._wait_time(n, now)
        while wait > 0:
            await self._sleep(max(wait, _MIN_SLEEP))
            now = self._clock()
            wait = self._wait_time(n, now)
        return now

    def _wait_time(self, n: int, now: float) -> float:
        log = self._log
        span = self._span
        while log and log[0][0] + span <= now:
            self._in_window -= int(log.popleft()[1])
        wait = self._not_before - now
        if self._effective < self.rate:
            self._recover(now)
        burst = self._burst
        if self._tat - burst > now:
            # Ahead of the pacing schedule: wait until half the burst credit is back, so
            # the next wake-up grants a batch rather than a single message.
            wait = max(wait, self._tat - 0.5 * burst - now)
        excess = self._in_window + n - self.rate
        if excess > 0:
            freed = 0.0
            for stamp, count in log:
                freed += count
                if freed >= excess:
                    wait = max(wait, stamp + span - now)
                    break
        return wait

    def _commit(self, n: int, now: float) -> None:
        self._tat = max(self._tat, now) + n / self._effective
        log = self._log
        if log and now - log[-1][0] < _COALESCE:
            last = log[-1]
            last[0] = now
            last[1] += n
        else:
            log.append([now, n])
        self._in_window += n
        self.granted += n
        if self._on_grant is not None:
            self._on_grant(now, n)

    def _recover(self, now: float) -> None:
        elapsed = now - self._rate_updated
        if elapsed > 0:
            self._effective = min(self.rate, self._effective * math.exp(self._growth * elapsed))
            self._rate_updated = now


class ChainedLimiter:
    """Several ``RateLimiter`` s acting as one: every ceiling holds for every grant.

    The first limiter is the narrowest (a channel's own), the last the widest (the run's).
    Each limiter's lock is held while waiting on the next one, and the grant is recorded
    in all of them at the same clock reading, so the per-channel ceiling holds for the
    actual start times even when the run-wide limiter made the channel wait. Throttling
    feedback goes to the first limiter only: one provider's throttling must not slow the
    other channels.
    """

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("chain() needs at least one RateLimiter")
        clock = limiters[0]._clock
        if any(lim._clock is not clock for lim in limiters):
            raise ValueError("chained RateLimiters must share one clock")
        self.limiters = limiters
        self.rate = min(lim.rate for lim in limiters)

    def __repr__(self) -> str:
        return f"ChainedLimiter({', '.join(map(repr, self.limiters))})"

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` starts fit under every ceiling of the chain, then grant them."""
        _check_request(n, self.rate)
        if n:
            await self._acquire_from(0, n)

    async def _acquire_from(self, index: int, n: int) -> float:
        limiter = self.limiters[index]
        async with limiter._lock:
            now = await limiter._ready(n)
            if index + 1 < len(self.limiters):
                # Waiting here only delays the grant; this limiter's conditions are
                # monotone in time and nobody else can commit to it while we hold its lock.
                now = await self._acquire_from(index + 1, n)
            limiter._commit(n, now)
            return now

    def throttled(self, retry_after: float | None = None) -> None:
        """Slow down the first (narrowest) limiter of the chain."""
        self.limiters[0].throttled(retry_after)


def chain(*limiters: RateLimiter) -> ChainedLimiter:
    """Compose limiters, narrowest first: ``chain(per_channel, run_wide)``."""
    return ChainedLimiter(*limiters)


def _check_request(n: int, rate: float) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"'n' must be an int >= 0, got {n!r}")
    if n > rate:
        raise ValueError(f"'n' must be <= the rate ({rate:g}/s): {n} starts can never fit")


class NoLimit:
    """The limiter of a route with no rate limit."""

    async def acquire(self, n: int = 1) -> None:
        return None

    def throttled(self, retry_after: float | None = None) -> None:
        return None
