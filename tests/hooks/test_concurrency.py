"""The hook concurrency gate on its own: slow start, cuts, bounds, the latency guard.

A small discrete-event simulation drives the gate the way the hook stage does (a slot,
then a call, then its answer, then the slot back) against a function with a capacity
and a latency, on a simulated clock: every figure below is exact and repeatable, and
no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from dispatcher.config import DispatchOptions
from dispatcher.errors import ConfigError
from dispatcher.hooks.concurrency import (
    DEFAULT_MAXIMUM,
    INITIAL,
    Call,
    HookConcurrency,
    default_maximum,
    for_transport,
    pool_size,
)
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Function:
    """A function with ``capacity`` concurrent executions (None: unlimited) that answers
    after ``latency(running)`` seconds; a call over capacity is throttled after 1 ms."""

    capacity: int | None = None
    latency: Callable[[int], float] = lambda running: 0.1
    running: int = 0
    accepted: int = 0
    throttled: int = 0
    busy_time: float = 0.0  # integral of running executions over time
    limits: list[tuple[float, int]] = field(default_factory=list)


async def simulate(gate: HookConcurrency, clock: Clock, fn: Function, *, answers: int,
                   demand: int | None = None) -> None:  # fmt: skip
    """Keep the gate full (or ``demand`` chunks in flight) until ``answers`` answers came."""
    pending: list[tuple[float, int, Call, bool]] = []  # (answer time, seq, call, throttled)
    seq = 0
    last = clock.now
    for _ in range(answers):
        while gate.held < gate.limit and (demand is None or gate.held < demand):
            await gate.acquire()
            call = gate.begin()
            throttle = fn.capacity is not None and fn.running >= fn.capacity
            if throttle:
                delay = 0.001
            else:
                fn.running += 1
                delay = fn.latency(fn.running)
            seq += 1
            heapq.heappush(pending, (clock.now + delay, seq, call, throttle))
        when, _, call, throttle = heapq.heappop(pending)
        fn.busy_time += fn.running * (when - last)
        clock.now = last = when
        if throttle:
            fn.throttled += 1
            gate.throttled(call)
        else:
            fn.running -= 1
            fn.accepted += 1
            gate.succeeded(call)
        gate.release()
        fn.limits.append((clock.now, gate.limit))


# -- growth ----------------------------------------------------------------------------


async def test_slow_start_reaches_a_large_bound_within_a_second_for_a_100ms_hook() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=1000, clock=clock)
    assert gate.limit == INITIAL
    fn = Function()
    await simulate(gate, clock, fn, answers=4000)
    reached = next(t for t, limit in fn.limits if limit == 1000)
    assert reached <= 1.0  # simulated seconds: 16 -> 1000 is six doublings of 0.1 s
    assert max(limit for _, limit in fn.limits) == 1000 == gate.peak  # never above the bound
    assert fn.throttled == 0


async def test_no_growth_without_full_utilisation() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=1000, clock=clock)
    await simulate(gate, clock, Function(), answers=2000, demand=5)  # the reader is slower
    assert gate.limit == INITIAL


async def test_latency_that_rises_with_load_stops_growth_well_below_the_bound() -> None:
    # 50 executions run at once; beyond that calls queue, and latency grows with them.
    clock = Clock()
    gate = HookConcurrency(maximum=1000, clock=clock)
    fn = Function(latency=lambda running: 0.1 * max(1.0, running / 50))
    await simulate(gate, clock, fn, answers=20_000)
    assert 50 <= gate.limit <= 200  # twice the floor at ~100 in flight, plus slow start's lag
    assert gate.peak < 300


# -- cuts --------------------------------------------------------------------------------


async def test_a_throttle_cuts_the_limit_once_per_round_trip() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=100, initial=20, clock=clock)
    calls = []
    for _ in range(20):
        await gate.acquire()
        calls.append(gate.begin())
    gate.throttled(calls[0])
    assert gate.limit == 14  # 20 * 0.7
    for call in calls[1:6]:  # sent before the cut: they describe the old limit
        gate.throttled(call)
    assert gate.limit == 14
    assert gate.throttles == 6
    later = gate.begin()
    gate.throttled(later)  # sent after the cut: the new limit is too high as well
    assert gate.limit == 9  # 14 * 0.7 = 9.8
    for _ in range(20):
        gate.release()


async def test_bounds_hold_under_throttles_and_successes() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=40, initial=30, minimum=2, clock=clock)
    for _ in range(30):
        gate.throttled(gate.begin())  # each one sent after the previous cut
    assert gate.limit == 2
    fn = Function()
    await simulate(gate, clock, fn, answers=5000)
    assert gate.limit == 40
    assert max(limit for _, limit in fn.limits) == 40


async def test_converges_on_a_function_that_throttles_above_a_fixed_concurrency() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=1000, clock=clock)
    fn = Function(capacity=40)
    await simulate(gate, clock, fn, answers=30_000)
    assert fn.throttled < 0.05 * fn.accepted  # few calls past the limit
    utilisation = fn.busy_time / (clock.now * 40)
    assert utilisation > 0.7  # and the function kept busy
    settled = [limit for t, limit in fn.limits if t > clock.now / 2]
    assert max(settled) <= 60  # never far above what the function takes


async def test_recovery_after_a_cut_is_proportional_at_scale() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=2000, initial=1000, clock=clock)
    gate.throttled(gate.begin())
    assert gate.limit == 700
    fn = Function()
    await simulate(gate, clock, fn, answers=6000)  # about 0.8 s of 100 ms round trips
    assert gate.limit >= 1000  # +6 % per round trip, not +1


async def test_a_fixed_gate_never_moves() -> None:
    clock = Clock()
    gate = HookConcurrency.fixed(8)
    fn = Function(capacity=3)
    await simulate(gate, clock, fn, answers=500)
    assert fn.throttled > 0
    assert {limit for _, limit in fn.limits} == {8}
    assert not gate.adaptive


# -- the gate itself ---------------------------------------------------------------------


async def test_acquire_waits_for_a_slot_and_wakes_on_release() -> None:
    gate = HookConcurrency.fixed(2)
    await gate.acquire()
    await gate.acquire()
    got: list[int] = []

    async def third() -> None:
        await gate.acquire()
        got.append(gate.held)

    async with anyio.create_task_group() as tg:
        tg.start_soon(third)
        await anyio.wait_all_tasks_blocked()
        assert got == []  # full: the third chunk is not taken
        gate.release()
    assert got == [2]


async def test_growth_wakes_a_waiting_acquire() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=10, initial=1, clock=clock)
    await gate.acquire()
    call = gate.begin()
    woke: list[bool] = []

    async def second() -> None:
        await gate.acquire()
        woke.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.now += 0.1
        gate.succeeded(call)  # at full utilisation: one more slot, the waiter gets it
    assert woke == [True] and gate.limit == 2 and gate.held == 2


def test_quiet_for_counts_from_the_last_answer() -> None:
    clock = Clock()
    gate = HookConcurrency(maximum=4, clock=clock)
    clock.now = 5.0
    assert gate.quiet_for() == 5.0
    call = gate.begin()
    clock.now = 6.0
    gate.succeeded(call)
    clock.now = 8.5
    assert gate.quiet_for() == 2.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maximum": 0}, "'maximum' must be >= 1, got 0"),
        ({"maximum": 4, "minimum": 5}, "'minimum' must be between 1 and maximum (4), got 5"),
        ({"maximum": 4, "initial": 0}, "'initial' must be >= 1, got 0"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as info:
        HookConcurrency(**kwargs)
    assert str(info.value) == message


def test_initial_is_clipped_to_the_bound() -> None:
    assert HookConcurrency(maximum=4).limit == 4


# -- configuration -----------------------------------------------------------------------


def test_explicit_hook_concurrency_is_fixed_and_unset_is_adaptive() -> None:
    class Sized:
        concurrency = 64

    fixed = for_transport(5, Sized())
    assert not fixed.adaptive and fixed.limit == fixed.maximum == 5
    adaptive = for_transport(0, Sized())
    assert adaptive.adaptive and adaptive.limit == INITIAL and adaptive.maximum == 64


def test_pool_sizes() -> None:
    assert pool_size(DispatchOptions(hook_concurrency=7), "lambda") == 7
    assert pool_size(DispatchOptions(hook_concurrency_max=300), "webhook") == 300
    assert pool_size(DispatchOptions(), "python") == DEFAULT_MAXIMUM["python"] == 16
    assert pool_size(DispatchOptions(), "webhook") == default_maximum("webhook") <= 64
    assert INITIAL <= default_maximum("lambda") <= 1000


def test_settings(tmp_path: Path) -> None:
    assert make_settings(tmp_path).dispatch.hook_concurrency == 0  # adaptive
    options = make_settings(tmp_path, dispatch={"hook_concurrency_max": 200}).dispatch
    assert options.hook_concurrency_max == 200
    assert options.hook_concurrency_text == "adaptive, up to 200"
    fixed = make_settings(tmp_path, dispatch={"hook_concurrency": 16}).dispatch
    assert fixed.hook_concurrency_text == "16 (fixed)"
    with pytest.raises(ConfigError, match="not both"):
        make_settings(tmp_path, dispatch={"hook_concurrency": 8, "hook_concurrency_max": 64})
    with pytest.raises(ConfigError, match="must be > 0"):
        make_settings(tmp_path, dispatch={"hook_concurrency_max": 0})
