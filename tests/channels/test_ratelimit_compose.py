"""Composed limiters (``all_of``) and the rate changes a shared ceiling's lease makes
(``set_rate``, ``drained``), on a virtual clock."""

from __future__ import annotations

import anyio
import pytest

from dispatcher.ratelimit import Limiter, NoLimit, RateLimiter, all_of
from dispatcher.ratelimit.compose import limiters_of
from tests.channels.limiting import Grant, count_between, hammer, max_in_window

pytestmark = pytest.mark.anyio


async def test_a_narrow_ceiling_composed_under_a_wide_one(virtual_clock):
    run = RateLimiter(2_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    narrow = all_of(RateLimiter(500, clock=virtual_clock, sleep=virtual_clock.sleep), run)
    # No quota of its own: a pacer (its own throttling feedback) in front of the run's.
    wide = all_of(RateLimiter(2_000, clock=virtual_clock, sleep=virtual_clock.sleep,
                              hard=False), run)  # fmt: skip
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
    assert narrow.max_grant == 500 and wide.max_grant == 2_000


async def test_a_wait_in_the_wide_limiter_counts_for_the_narrow_ceiling(virtual_clock):
    # The narrow permit is open while the wide limiter makes the start wait: the start
    # may come at any point of that wait, so it counts in the narrow window throughout.
    run = RateLimiter(1_000, clock=virtual_clock, sleep=virtual_clock.sleep)
    narrow = all_of(RateLimiter(5, clock=virtual_clock, sleep=virtual_clock.sleep), run)
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
    assert count_between(grants, t0, t0 + 5.0) >= 15


async def test_throttling_one_sender_leaves_the_others_their_share(virtual_clock):
    run = RateLimiter(1_000, clock=virtual_clock, sleep=virtual_clock.sleep)

    def sender() -> Limiter:
        return all_of(RateLimiter(1_000, clock=virtual_clock, sleep=virtual_clock.sleep,
                                  hard=False), run)  # fmt: skip

    slow, other = sender(), sender()
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

    [slow_own, _] = limiters_of(slow)
    [other_own, _] = limiters_of(other)
    assert isinstance(slow_own, RateLimiter) and isinstance(other_own, RateLimiter)
    assert slow_own.effective_rate < 100
    assert other_own.effective_rate == 1_000
    assert max_in_window(a + b) <= 1_000
    # The throttled sender's unused share goes to the other one.
    assert count_between(b, t0 + 4.0, t0 + 5.0) > 850


async def test_composition_is_flat_and_skips_no_limit(virtual_clock):
    x = RateLimiter(10, clock=virtual_clock, sleep=virtual_clock.sleep)
    y = RateLimiter(20, clock=virtual_clock, sleep=virtual_clock.sleep)
    assert all_of(x) is x and isinstance(all_of(), NoLimit)
    assert list(limiters_of(all_of(all_of(x, NoLimit()), y))) == [x, y]


async def test_a_permit_open_in_one_limiter_is_given_back_when_the_next_is_cancelled(
    virtual_clock,
):
    narrow = RateLimiter(2, clock=virtual_clock, sleep=virtual_clock.sleep)
    closed = RateLimiter(1, clock=virtual_clock, sleep=virtual_clock.sleep, initial_rate=0)
    both = all_of(narrow, closed)
    with anyio.fail_after(10):
        async with virtual_clock.driving():
            with anyio.move_on_after(0.1):
                await both.acquire(1)  # waits forever in `closed`
    assert narrow.in_flight == 0 and narrow.granted == 1


async def test_set_rate_lowers_at_once_grows_wakes_waiters_and_until_stops_grants(virtual_clock):
    limiter = RateLimiter(10, clock=virtual_clock, sleep=virtual_clock.sleep, initial_rate=0)
    grants: list[Grant] = []
    t0 = virtual_clock()

    async def lease() -> None:
        await virtual_clock.sleep(1.0)
        limiter.set_rate(4, until=t0 + 3.0)  # a lease of 4/s that runs out at t0 + 3

    with anyio.fail_after(30):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(lease)
            for _ in range(3):
                tg.start_soon(hammer, limiter, virtual_clock, t0 + 6.0, grants)
            await virtual_clock.sleep(6.5)
            limiter.set_rate(10)  # renewed: the hammers finish
    assert count_between(grants, t0, t0 + 1.0) == 0
    assert max_in_window(grants) <= 4 or count_between(grants, t0, t0 + 6.5) <= 8
    assert count_between(grants, t0 + 3.0, t0 + 6.5) == 0
    assert count_between(grants, t0 + 1.0, t0 + 3.0) == 8


async def test_drained_waits_for_in_flight_requests_and_the_window(virtual_clock):
    limiter = RateLimiter(10, clock=virtual_clock, sleep=virtual_clock.sleep, window_margin=0.0,
                          burst=1.0)  # fmt: skip
    t0 = virtual_clock()
    permits = [await limiter.acquire(1) for _ in range(6)]  # all within the pacing credit
    limiter.set_rate(2)
    when: list[float] = []

    async def drain() -> None:
        await limiter.drained(2)
        when.append(virtual_clock() - t0)

    async def finish() -> None:
        await virtual_clock.sleep(0.5)
        for permit in permits:
            permit.done()

    with anyio.fail_after(10):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(drain)
            tg.start_soon(finish)
    assert when == [pytest.approx(1.5)]  # done at 0.5, out of the window at 1.5
