"""RateLimiter against a virtual clock: the window ceiling (for grants and for arrivals
anywhere between a grant and its permit's done), achieved rate, feedback, composition,
leases' rate changes. What the provider sees is tested at the wire (test_send_rate_wire)."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.ratelimit import Limiter, Permit, RateLimiter, all_of
from tests.channels.limiting import Grant, count_between, hammer, max_in_window, run_workers

pytestmark = pytest.mark.anyio


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
            with await limiter.acquire(k):
                grants.append((virtual_clock(), k))

    with anyio.fail_after(30):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(bursty, i)

    assert sum(k for _, k in grants) == limiter.granted > 100
    assert max_in_window(grants) <= 100


GAPS = st.sampled_from([0.0, 0.0, 0.001, 0.2, 0.99, 1.0, 2.5])
DELAYS = st.sampled_from([0.0, 0.0, 0.0005, 0.004, 0.3, 0.9, 1.5])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.integers(min_value=1, max_value=20_000),
    plan=st.lists(
        st.lists(st.tuples(GAPS, st.floats(0, 1), DELAYS, DELAYS), min_size=1, max_size=15),
        min_size=1,
        max_size=6,
    ),
)
def test_window_property_holds_for_arrivals_anywhere_between_grant_and_done(
    virtual_clock_type, rate, plan
):
    # A request reaches the provider some time after its grant (a slow client, a busy
    # loop) and is done some time after that: any window of *arrivals* stays within rate.
    clock = virtual_clock_type(start=12.345)
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep, window_margin=0.0)
    arrivals: list[Grant] = []

    async def worker(steps) -> None:
        for gap, fraction, to_wire, to_answer in steps:
            await clock.sleep(gap)
            k = max(1, int(fraction * rate))
            with await limiter.acquire(k):
                await clock.sleep(to_wire)
                arrivals.append((clock(), k))
                await clock.sleep(to_answer)

    async def main() -> None:
        with anyio.fail_after(30):
            async with clock.driving(), anyio.create_task_group() as tg:
                for steps in plan:
                    tg.start_soon(worker, steps)

    anyio.run(main, backend="asyncio")
    assert len(arrivals) == sum(map(len, plan))
    assert max_in_window(arrivals) <= rate
    assert limiter.in_flight == 0


async def test_waiters_are_served_in_arrival_order_and_large_requests_are_not_starved(
    virtual_clock,
):
    limiter = RateLimiter(100, clock=virtual_clock, sleep=virtual_clock.sleep)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        (await limiter.acquire(n)).done()
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


def test_bad_arguments_are_rejected_with_teaching_errors() -> None:
    with pytest.raises(ValueError, match="'rate' must be"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="'decrease'"):
        RateLimiter(10, decrease=1.5)
    with pytest.raises(ValueError, match="from 0 to the ceiling"):
        RateLimiter(10).set_rate(11)


async def test_requests_larger_than_the_ceiling_fail_fast() -> None:
    limiter = RateLimiter(10)
    with pytest.raises(ValueError, match="can never fit"):
        await limiter.acquire(11)
    with pytest.raises(ValueError, match="can never fit"):
        await all_of(RateLimiter(5), limiter).acquire(6)
    (await limiter.acquire(0)).done()
    assert limiter.granted == 0
    assert isinstance(limiter, Limiter) and isinstance(all_of(limiter, RateLimiter(5)), Limiter)


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


async def test_an_open_permit_holds_its_unit_until_done_then_for_a_window(virtual_clock):
    limiter = RateLimiter(2, clock=virtual_clock, sleep=virtual_clock.sleep, window_margin=0.0)
    t0 = virtual_clock()
    granted: list[float] = []

    async def slow_request() -> None:
        with await limiter.acquire(1):
            await virtual_clock.sleep(3.0)  # e.g. a client being created, then the call

    async def third() -> None:
        await virtual_clock.sleep(0.1)
        (await limiter.acquire(1)).done()
        granted.append(virtual_clock() - t0)

    with anyio.fail_after(10):
        async with virtual_clock.driving(), anyio.create_task_group() as tg:
            tg.start_soon(slow_request)
            tg.start_soon(slow_request)
            tg.start_soon(third)
    # Both units are held until 3.0 (done), and the stamps count for a second after.
    assert granted == [pytest.approx(4.0)]
    assert limiter.in_flight == 0


async def test_a_pacer_paces_and_takes_feedback_but_holds_no_window(virtual_clock):
    pacer = RateLimiter(100, clock=virtual_clock, sleep=virtual_clock.sleep, hard=False)
    start, grants = await run_workers(virtual_clock, pacer, tasks=4, seconds=3)
    assert 0.97 * 300 <= count_between(grants, start, start + 3) <= 303
    pacer.throttled(retry_after=2.0)
    before = virtual_clock()
    async with virtual_clock.driving():
        held = await pacer.acquire(50)
        assert pacer.in_flight == 0
        held.done()
    assert virtual_clock() - before >= 2.0


def test_a_permit_is_done_once() -> None:
    limiter = RateLimiter(5)

    async def main() -> None:
        permit = await limiter.acquire(2)
        assert limiter.in_flight == 2
        permit.done()
        permit.done()
        assert limiter.in_flight == 0
        assert isinstance(permit, Permit)

    anyio.run(main, backend="asyncio")
