"""RateLimiter against a virtual clock: the window ceiling, achieved rate, feedback, chains."""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Callable, Sequence

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.channels.ratelimit import ChainedLimiter, Limiter, RateLimiter, chain

pytestmark = pytest.mark.anyio

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
    """Acquire ``n`` at a time as fast as the limiter allows, until virtual time ``until``."""
    while clock() < until:
        await limiter.acquire(n)
        grants.append((clock(), n))


async def run_workers(clock, limiter: Limiter, *, tasks: int, seconds: float, n: int = 1):
    grants: list[Grant] = []
    start = clock()
    with anyio.fail_after(60):
        async with clock.driving(), anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(hammer, limiter, clock, start + seconds, grants, n)
    return start, grants


def test_the_window_checker_itself_sees_a_violation() -> None:
    assert max_in_window([(0.0, 1), (0.999, 1), (1.0, 1)]) == 2
    assert max_in_window([(0.0, 1), (1.0, 1), (2.0, 1)]) == 1
    assert max_in_window([(0.5, 3), (1.2, 4), (1.6, 1)]) == 7


@pytest.mark.parametrize(("rate", "tasks", "seconds", "n"), [(20_000, 40, 3, 1), (1, 5, 30, 1)])
async def test_ceiling_is_never_exceeded_and_is_reached(virtual_clock, rate, tasks, seconds, n):
    limiter = RateLimiter(rate, clock=virtual_clock, sleep=virtual_clock.sleep)
    start, grants = await run_workers(virtual_clock, limiter, tasks=tasks, seconds=seconds, n=n)

    assert max_in_window(grants) <= rate
    achieved = count_between(grants, start, start + seconds) / seconds
    assert achieved >= 0.97 * rate, achieved
    assert limiter.granted == sum(k for _, k in grants)


async def test_batched_grants_at_20000_per_second_sleep_per_batch_not_per_message(virtual_clock):
    limiter = RateLimiter(20_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    start, grants = await run_workers(virtual_clock, limiter, tasks=8, seconds=5, n=100)

    assert max_in_window(grants) <= 20_000
    assert count_between(grants, start, start + 5) >= 0.97 * 5 * 20_000
    # Pacing: grants are spread over each second (no window of 50 ms holds more than
    # ~ a tenth of the second's allowance) ...
    for t, _ in grants:
        assert count_between(grants, t, t + 0.05) <= 0.1 * 20_000
    # ... and single-message acquirers cost one sleep per batch, not per message.
    single = RateLimiter(20_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    before = virtual_clock.sleeps
    _, ones = await run_workers(virtual_clock, single, tasks=4, seconds=2, n=1)
    assert (virtual_clock.sleeps - before) * 50 < len(ones)


async def test_bursts_after_idle_periods_respect_the_window(virtual_clock):
    limiter = RateLimiter(100, clock=virtual_clock, sleep=virtual_clock.sleep)
    grants: list[Grant] = []
    rng = random.Random(7)

    async def bursty(i: int) -> None:
        for _ in range(30):
            await virtual_clock.sleep(rng.choice([0.0, 0.01, 0.3, 1.7]))
            k = rng.randint(1, 40)
            await limiter.acquire(k)
            grants.append((virtual_clock(), k))

    with anyio.fail_after(30):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(bursty, i)

    assert sum(k for _, k in grants) == limiter.granted > 100
    assert max_in_window(grants) <= 100


GAPS = st.sampled_from([0.0, 0.0, 0.001, 0.2, 0.99, 1.0, 2.5])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.integers(min_value=1, max_value=20_000),
    plan=st.lists(
        st.lists(st.tuples(GAPS, st.floats(0, 1)), min_size=1, max_size=15),
        min_size=1,
        max_size=6,
    ),
)
def test_window_property_holds_for_any_request_pattern(virtual_clock_type, rate, plan):
    clock = virtual_clock_type(start=12.345)
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    grants: list[Grant] = []

    async def worker(steps) -> None:
        for gap, fraction in steps:
            await clock.sleep(gap)
            k = max(1, int(fraction * rate))
            await limiter.acquire(k)
            grants.append((clock(), k))

    async def main() -> None:
        with anyio.fail_after(30):
            async with clock.driving(), anyio.create_task_group() as tg:
                for steps in plan:
                    tg.start_soon(worker, steps)

    anyio.run(main, backend="asyncio")
    assert len(grants) == sum(map(len, plan))
    assert max_in_window(grants) <= rate


async def test_waiters_are_served_in_arrival_order_and_large_requests_are_not_starved(
    virtual_clock,
):
    limiter = RateLimiter(100, clock=virtual_clock, sleep=virtual_clock.sleep)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        await limiter.acquire(n)
        order.append(name)

    with anyio.fail_after(30):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(take, f"small{i}", 10)
                if i == 5:
                    tg.start_soon(take, "large", 100)
    assert order.index("large") == 6
    assert order == [f"small{i}" for i in range(6)] + ["large"] + [
        f"small{i}" for i in range(6, 30)
    ]


async def test_throttling_lowers_the_rate_then_recovers_to_never_above_the_ceiling(virtual_clock):
    limiter = RateLimiter(1_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    grants: list[Grant] = []
    t0 = virtual_clock()

    async def feedback() -> None:
        await virtual_clock.sleep(2.0)
        for _ in range(50):  # a whole batch of throttled results: one decrease
            limiter.throttled()

    with anyio.fail_after(60):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(feedback)
            for _ in range(10):
                tg.start_soon(hammer, limiter, virtual_clock, t0 + 25.0, grants)

    assert limiter.throttle_events == 50
    assert max_in_window(grants) <= 1_000
    assert count_between(grants, t0 + 1.0, t0 + 2.0) >= 970
    # Halved once (not 50 times), then growing back by 10 %/s.
    after = count_between(grants, t0 + 2.05, t0 + 3.05)
    assert 450 <= after <= 600, after
    # Back at the ceiling well before t0 + 25 s (ln 2 / ln 1.1 ~ 7.3 s), and not above it.
    assert count_between(grants, t0 + 20.0, t0 + 21.0) >= 970
    assert limiter.effective_rate == 1_000


async def test_retry_after_pauses_all_grants(virtual_clock):
    limiter = RateLimiter(500, clock=virtual_clock, sleep=virtual_clock.sleep)
    grants: list[Grant] = []
    t0 = virtual_clock()

    async def feedback() -> None:
        await virtual_clock.sleep(1.0)
        limiter.throttled(retry_after=2.5)

    with anyio.fail_after(60):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(feedback)
            for _ in range(4):
                tg.start_soon(hammer, limiter, virtual_clock, t0 + 6.0, grants)

    # At most the one acquire that was already past its wait when feedback arrived.
    assert count_between(grants, t0 + 1.0 + 1e-9, t0 + 3.5) <= 4
    assert count_between(grants, t0 + 3.5, t0 + 6.0) > 300
    assert max_in_window(grants) <= 500


async def test_chained_channel_limit_under_a_run_wide_ceiling(virtual_clock):
    run = RateLimiter(2_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    narrow = run.channel(max_per_second=500)
    wide = run.channel()  # no own limit: the run's rate, but its own throttling feedback
    a: list[Grant] = []
    b: list[Grant] = []
    t0 = virtual_clock()
    with anyio.fail_after(60):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(hammer, narrow, virtual_clock, t0 + 4.0, a, 5)
                tg.start_soon(hammer, wide, virtual_clock, t0 + 4.0, b, 5)

    assert max_in_window(a) <= 500
    assert max_in_window(a + b) <= 2_000
    assert count_between(a, t0, t0 + 4) >= 0.97 * 4 * 500
    assert count_between(a + b, t0, t0 + 4) >= 0.97 * 4 * 2_000
    assert isinstance(narrow, ChainedLimiter) and narrow.rate == 500


async def test_a_wait_in_the_run_wide_limiter_counts_for_the_channel_ceiling(virtual_clock):
    # The channel's grant is recorded when the message actually starts, i.e. after the
    # run-wide wait; otherwise the start after the pause would add to a full window.
    run = RateLimiter(1_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    narrow = run.channel(max_per_second=5)
    grants: list[Grant] = []
    t0 = virtual_clock()

    async def account_wide_pause() -> None:
        await virtual_clock.sleep(0.5)
        run.throttled(retry_after=1.5)

    with anyio.fail_after(60):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(account_wide_pause)
            for _ in range(5):
                tg.start_soon(hammer, narrow, virtual_clock, t0 + 5.0, grants)

    assert count_between(grants, t0 + 0.5 + 1e-9, t0 + 2.0) == 0
    assert max_in_window(grants) <= 5
    assert count_between(grants, t0, t0 + 5.0) >= 17  # 3 before the pause, 15 after


async def test_throttling_one_channel_leaves_the_others_their_share(virtual_clock):
    run = RateLimiter(1_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    slow, other = run.channel(), run.channel()
    a: list[Grant] = []
    b: list[Grant] = []
    t0 = virtual_clock()

    async def feedback() -> None:
        for _ in range(4):
            await virtual_clock.sleep(1.0)
            slow.throttled()

    with anyio.fail_after(60):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(feedback)
            for _ in range(4):
                tg.start_soon(hammer, slow, virtual_clock, t0 + 5.0, a, 2)
                tg.start_soon(hammer, other, virtual_clock, t0 + 5.0, b, 2)

    assert slow.limiters[0].effective_rate < 100
    assert other.limiters[0].effective_rate == 1_000
    assert max_in_window(a + b) <= 1_000
    # The throttled channel's unused share goes to the other one.
    assert count_between(b, t0 + 4.0, t0 + 5.0) > 850


def test_bad_arguments_are_rejected_with_teaching_errors() -> None:
    with pytest.raises(ValueError, match="'rate' must be"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="'decrease'"):
        RateLimiter(10, decrease=1.5)
    with pytest.raises(ValueError, match="at least one"):
        chain()
    with pytest.raises(ValueError, match="share one clock"):
        chain(RateLimiter(5, clock=lambda: 0.0), RateLimiter(5))


async def test_requests_larger_than_the_ceiling_fail_fast() -> None:
    limiter = RateLimiter(10)
    with pytest.raises(ValueError, match="can never fit"):
        await limiter.acquire(11)
    with pytest.raises(ValueError, match="can never fit"):
        await limiter.channel(max_per_second=5).acquire(6)
    await limiter.acquire(0)
    assert limiter.granted == 0
    assert isinstance(limiter, Limiter)


async def test_on_grant_sees_every_grant_at_its_clock_reading(virtual_clock):
    seen: list[Grant] = []
    limiter = RateLimiter(
        50,
        clock=virtual_clock,
        sleep=virtual_clock.sleep,
        on_grant=lambda t, n: seen.append((t, n)),
    )
    start, grants = await run_workers(virtual_clock, limiter, tasks=3, seconds=3, n=2)
    assert sorted(seen) == sorted(grants)
    assert max_in_window(seen) <= 50
    assert count_between(seen, start, start + 3) >= 0.97 * 150
