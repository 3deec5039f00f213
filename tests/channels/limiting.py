"""Driving a limiter on a virtual clock and reading its grants (for the limiter tests)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from dispatcher.ratelimit import Limiter

Grant = tuple[float, int]


def max_in_window(grants: Sequence[Grant]) -> int:
    """The most grants in any half-open one-second window ``[t, t + 1)``.

    The maximum is reached by a window starting at some grant, so checking those suffices.
    """
    grants = sorted(grants)
    times = [t for t, _ in grants]
    prefix = [0]
    for _, n in grants:
        prefix.append(prefix[-1] + n)
    best = 0
    for i, t in enumerate(times):
        j = bisect_left(times, t + 1.0)
        best = max(best, prefix[j] - prefix[i])
    return best


def count_between(grants: Sequence[Grant], start: float, end: float) -> int:
    return sum(n for t, n in grants if start <= t < end)


async def hammer(
    limiter: Limiter,
    clock: Callable[[], float],
    until: float,
    grants: list[Grant],
    n: int = 1,
) -> None:
    """Acquire ``n`` at a time as fast as the limiter allows, until virtual time ``until``
    (each request done at once)."""
    while clock() < until:
        with await limiter.acquire(n):
            grants.append((clock(), n))


async def run_workers(
    clock: Any, limiter: Limiter, *, tasks: int, seconds: float, n: int = 1
) -> tuple[float, list[Grant]]:
    """``tasks`` hammers on ``limiter`` for ``seconds`` of the virtual ``clock``
    (``tests.channels.conftest.VirtualClock``); its start and every grant."""
    grants: list[Grant] = []
    start = clock()
    with anyio.fail_after(60):
        async with clock.driving(), anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(hammer, limiter, clock, start + seconds, grants, n)
    return start, grants
