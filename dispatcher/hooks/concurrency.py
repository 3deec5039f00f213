"""How many chunks are at the hook at once: a fixed number, or one that adapts.

``HookConcurrency`` is the gate the hook stage passes every chunk through before it
starts it (``acquire`` ... ``release``), and the ear every invocation reports to
(``begin``, then ``succeeded`` / ``throttled`` / ``failed``).

Fixed (``[dispatch] hook_concurrency`` set): that many slots, whatever happens.

Adaptive (``hook_concurrency`` not set): the number of slots, ``limit``, moves between
1 and ``maximum`` (``hook_concurrency_max``, else a default per transport) the way TCP
moves its congestion window, because the problem is the same one: find the most
requests in flight the other side takes, without being told its capacity.

* **Slow start.** From 16 (the old fixed default), every success at full utilisation
  adds a slot, so the limit doubles each round trip: a 100 ms function goes from 16 to
  1,000 in chunks in flight in well under a second, if the pipeline can feed it.
* **Multiplicative decrease.** A throttle (Lambda's 429 ``TooManyRequestsException``, a
  webhook's 429, or any retryable answer with ``Retry-After``) multiplies the limit by
  0.7 and ends slow start. One cut per round trip: the answers to calls sent before the
  cut describe the old limit, not the new one.
* **Proportional increase.** After the first throttle, a success at full utilisation
  adds ``max(1, limit/16) / limit``: the limit grows by about 6 % per round trip (at
  least one slot), so recovering from a cut takes ~6 round trips at any scale.
* **Full utilisation** means every slot's chunk had a call in flight when the answer
  came. A success with slots idle (the reader is the bottleneck), or with chunks
  waiting on the send stage or on backoff, says nothing about whether the function
  could take more, so it grows nothing.
* **Latency guard.** No growth while the smoothed latency is more than twice its floor
  (plus 5 ms): latency rising with the limit means calls queue somewhere (the function,
  the network, or this process's own event loop at its CPU ceiling), and more of them
  in flight only hold more chunks in memory. Slow start ends earlier, at a quarter over
  the floor (as TCP's HyStart does): the answers it reads were sent a round trip ago,
  when the limit was half what it is, so waiting for twice the floor would overshoot
  twofold. Latency never shrinks the limit; only the function's own "slow down" does.

Memory stays flat: a chunk is only taken from the reader's stream once it has a slot, so
at most ``maximum`` chunks are at the hook, and the bounded streams push back on the
reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio

if TYPE_CHECKING:
    from dispatcher.config import DispatchOptions

TransportKind = Literal["lambda", "webhook", "python"]

INITIAL = 16
"""Where an adaptive limit starts: the old fixed default, so the first round trip is as
before."""

DEFAULT_MAXIMUM: dict[TransportKind, int] = {"lambda": 1000, "webhook": 64, "python": 16}
"""The adaptive bound when ``hook_concurrency_max`` is not set. Lambda: its default
account concurrency (1,000), so one run can use what the account has. Webhook: a server
of unknown size, often without 429s to tell us its limit. In process: the handler shares
this process's CPU (and, when sync, its GIL): more calls in flight gain nothing."""

DECREASE = 0.7
"""The limit after a throttle, as a fraction of the limit before it (CUBIC's factor:
gentler than TCP Reno's 0.5, so a function at its limit keeps ~85 % of it busy)."""

GROWTH = 1 / 16
"""After the first throttle: the limit grows by this fraction per round trip."""

LATENCY_TOLERANCE = 2.0
SLOW_START_TOLERANCE = 1.25
LATENCY_SLACK = 0.005
"""The latency guard: growth stops while the smoothed latency exceeds
``floor * LATENCY_TOLERANCE + LATENCY_SLACK`` seconds, slow start ends beyond
``floor * SLOW_START_TOLERANCE + LATENCY_SLACK`` (the slack keeps microsecond in-process
hooks from reading scheduling noise as queueing)."""

SMOOTHING = 0.1
"""Weight of a new latency sample in the moving average."""


def default_maximum(kind: TransportKind) -> int:
    """The adaptive bound for a transport, inside the process's file-descriptor limit.

    Every remote call in flight holds a socket; on a system whose soft ``RLIMIT_NOFILE``
    is 1,024 (the common default) a bound of 1,000 would run out of descriptors before it
    ran out of Lambda concurrency, so remote bounds keep to half the limit.
    """
    bound = DEFAULT_MAXIMUM[kind]
    if kind == "python":
        return bound
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no resource module on Windows
        return bound
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return bound
    return max(INITIAL, min(bound, soft // 2))


def pool_size(options: DispatchOptions, kind: TransportKind) -> int:
    """How many calls the transport must carry at once: the fixed ``hook_concurrency``
    if set, else the adaptive bound (``hook_concurrency_max``, else the default)."""
    if options.hook_concurrency:
        return options.hook_concurrency
    return options.hook_concurrency_max or default_maximum(kind)


def for_transport(fixed: int, transport: object) -> HookConcurrency:
    """The gate for one run: fixed at ``fixed`` if it is set (> 0), else adaptive up to
    the transport's own capacity.

    The transport's capacity (``concurrency``: its connection or thread pool) is what
    ``create_transport`` sized from ``hook_concurrency_max`` (``pool_size``), so the gate
    never lets more calls out than the transport can carry. (Read by name: the
    ``HookTransport`` protocol does not require it, and ``Stages`` has no field for it.)
    """
    if fixed > 0:
        return HookConcurrency.fixed(fixed)
    capacity = getattr(transport, "concurrency", None)
    if not isinstance(capacity, int) or capacity < 1:
        capacity = INITIAL
    return HookConcurrency(maximum=capacity)


@dataclass(slots=True)
class Call:
    """One invocation in flight: when it left, and how many cuts the limit had then."""

    began: float
    cuts: int


class HookConcurrency:
    """The hook stage's slots: ``limit`` chunks at the hook at once, fixed or adaptive.

    Build a fixed gate with ``HookConcurrency.fixed(n)``; an adaptive one with
    ``HookConcurrency(maximum=n)`` (``initial`` and ``minimum`` for tests and tuning).
    ``clock`` is the time source latency is measured with. Not thread-safe: one event
    loop owns it, as it owns the stages.
    """

    def __init__(
        self,
        *,
        maximum: int,
        initial: int = INITIAL,
        minimum: int = 1,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maximum < 1:
            raise ValueError(f"'maximum' must be >= 1, got {maximum}")
        if not 1 <= minimum <= maximum:
            raise ValueError(f"'minimum' must be between 1 and maximum ({maximum}), got {minimum}")
        if initial < 1:
            raise ValueError(f"'initial' must be >= 1, got {initial}")
        self.maximum = maximum
        self.minimum = minimum
        self.adaptive = adaptive
        self._clock = clock
        self._limit = float(min(max(initial, minimum), maximum))
        self._held = 0
        self._calls = 0
        self._slow_start = True
        self._cuts = 0
        self._latency: float | None = None
        self._floor: float | None = None
        self._room: anyio.Event | None = None
        self._answered = clock()
        self.peak = self.limit
        """The highest limit reached."""
        self.throttles = 0
        """Throttled answers seen (each one a call the function never ran)."""

    @classmethod
    def fixed(cls, n: int) -> HookConcurrency:
        """``n`` slots, never more, never fewer."""
        if n < 1:
            raise ValueError(f"'n' must be >= 1, got {n}")
        return cls(maximum=n, initial=n, minimum=n, adaptive=False)

    def __repr__(self) -> str:
        mode = "adaptive" if self.adaptive else "fixed"
        return (
            f"HookConcurrency({mode}, limit={self.limit}, maximum={self.maximum}, "
            f"held={self._held}, calls={self._calls}, peak={self.peak}, "
            f"throttles={self.throttles})"
        )

    # -- the gate ------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Chunks that may be at the hook now."""
        return int(self._limit)

    @property
    def held(self) -> int:
        """Chunks at the hook now (in a call, backing off, or handing on to delivery)."""
        return self._held

    @property
    def calls(self) -> int:
        """Invocations in flight now."""
        return self._calls

    @property
    def latency(self) -> float | None:
        """The smoothed latency of successful calls, in seconds (None before the first)."""
        return self._latency

    def quiet_for(self) -> float:
        """Seconds since the function last answered a call (or since this gate was made)."""
        return self._clock() - self._answered

    async def acquire(self) -> None:
        """Wait for a slot and take it. Call before taking a chunk off the stream, so a
        chunk never waits in memory for a slot (backpressure at the source)."""
        while self._held >= self.limit:
            if self._room is None or self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()
        self._held += 1

    def release(self) -> None:
        """Give a slot back (the chunk is done with the hook)."""
        self._held -= 1
        self._wake()

    def _wake(self) -> None:
        if self._room is not None and self._held < self.limit:
            self._room.set()

    # -- what the calls say ------------------------------------------------------------------

    def begin(self) -> Call:
        """An invocation is leaving; report its end with the returned ``Call``."""
        self._calls += 1
        return Call(self._clock(), self._cuts)

    def failed(self, call: Call) -> None:
        """The call failed in a way that says nothing about capacity (an error from the
        function, a time-out, a refused connection): no growth, no cut."""
        self._calls -= 1

    def succeeded(self, call: Call) -> None:
        """The function answered: learn its latency; grow if every slot was calling."""
        busy = self._calls
        self._calls -= 1
        self._answered = now = self._clock()
        self._observe(now - call.began)
        if not self.adaptive or busy < self.limit or self._limit >= self.maximum:
            return
        if not self._latency_below(LATENCY_TOLERANCE):
            return  # calls queue: more of them would wait, not run
        if self._slow_start and not self._latency_below(SLOW_START_TOLERANCE):
            self._slow_start = False  # queueing begins: from now on, grow gently
        if self._slow_start:
            step = 1.0
        else:
            step = max(1.0, self._limit * GROWTH) / self._limit
        self._set(self._limit + step)

    def throttled(self, call: Call) -> None:
        """The service refused the call before the function ran (429, or Retry-After):
        cut the limit, once per round trip."""
        self._calls -= 1
        self.throttles += 1
        if not self.adaptive or call.cuts != self._cuts:
            # Sent before the last cut: its answer describes the old limit.
            return
        self._cuts += 1
        self._slow_start = False
        self._set(self._limit * DECREASE)

    def _observe(self, latency: float) -> None:
        if self._latency is None:
            self._latency = latency
        else:
            self._latency += (latency - self._latency) * SMOOTHING
        if self._floor is None or self._latency < self._floor:
            self._floor = self._latency

    def _latency_below(self, tolerance: float) -> bool:
        if self._latency is None or self._floor is None:
            return True
        return self._latency <= self._floor * tolerance + LATENCY_SLACK

    def _set(self, value: float) -> None:
        self._limit = min(max(value, float(self.minimum)), float(self.maximum))
        self.peak = max(self.peak, self.limit)
        self._wake()
