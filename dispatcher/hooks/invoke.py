"""The invoke policy: Pinpoint's hook budget, enforced the same way for every transport.

Per chunk: at most ``attempts`` invocation attempts (3) inside one ``deadline`` (15 s)
that covers them all; each attempt is also cut at ``attempt_timeout`` so that a hung
attempt can still be retried. Exceptions and time-outs are retried with exponential
backoff and jitter (or the server's Retry-After, if it fits in the time left); a
non-retryable error or an undecodable result fails the chunk at once. tenacity owns the
retry loop; anyio cancel scopes own the time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from dispatcher.errors import HookAttemptError, HookError
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD, HookTransport

LATE_GRACE = 1.0
"""Seconds an answer may arrive past its attempt's time-out before it is refused."""


@dataclass(frozen=True, slots=True)
class InvokePolicy:
    """How long and how often one chunk's hook may be tried."""

    deadline: float = 15.0
    attempts: int = 3
    attempt_timeout: float = 10.0
    backoff_base: float = 0.2
    backoff_max: float = 2.0


class stop_when(stop_base):
    """Stop when a predicate of the retry state holds."""

    def __init__(self, predicate: Callable[[RetryCallState], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate(retry_state)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, HookAttemptError) and exc.retryable


class _Wait:
    """Backoff between attempts: the server's Retry-After if given, else jittered expo."""

    def __init__(self, policy: InvokePolicy) -> None:
        self._expo = wait_random_exponential(multiplier=policy.backoff_base, max=policy.backoff_max)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, HookAttemptError) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        return float(self._expo(state))


async def invoke_with_policy(
    transport: HookTransport,
    event: bytes,
    policy: InvokePolicy,
    *,
    on_attempt: Callable[[], None] = lambda: None,
) -> Any:
    """Invoke ``transport`` under ``policy``; return the decoded result or raise HookError.

    ``on_attempt`` is called once per attempt actually made, for ``HookInvocations``.
    """
    if len(event) > MAX_SYNC_PAYLOAD:
        raise HookAttemptError(
            f"event is {len(event)} bytes, over Lambda's {MAX_SYNC_PAYLOAD}-byte synchronous "
            "payload limit; not sent",
            retryable=False,
            function=transport.name,
        )
    started = time.monotonic()
    deadline = started + policy.deadline
    made = 0

    async def attempt() -> Any:
        nonlocal made
        made += 1
        on_attempt()
        began = time.monotonic()
        budget = min(policy.attempt_timeout, deadline - began)
        with anyio.move_on_after(budget) as scope:
            result = await transport.invoke(event)
        if scope.cancelled_caught:
            raise HookAttemptError(
                f"attempt timed out after {budget:.1f} s", retryable=True, function=transport.name
            )
        held = time.monotonic() - began
        if held > budget + LATE_GRACE:
            # The time-out could not fire: something held the event loop (an async def
            # hook that blocks). Its answer came past the deadline, so it does not count.
            raise HookAttemptError(
                f"the event loop was blocked for {held:.1f} s, past the {budget:.1f} s attempt "
                f"time-out (an async def hook must not block: use a def hook for blocking "
                f"work, or isolation = \"process\")",
                retryable=False,
                function=transport.name,
            )
        return result

    def out_of_time(state: RetryCallState) -> bool:
        # Stop when the next wait would not leave time for another attempt.
        left = deadline - time.monotonic()
        upcoming = state.upcoming_sleep if state.upcoming_sleep else 0.0
        return left - upcoming <= 0.05

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_when(out_of_time),
        wait=_Wait(policy),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
    try:
        with anyio.fail_after(policy.deadline + 1):  # belt and braces over attempt budgets
            return await retrying(attempt)
    except HookError as exc:
        # No timing in the reason: equal failures must read the same, so they group.
        raise type(exc)(
            f"{exc.reason} (after {made} attempt{'s' * (made != 1)})", function=transport.name
        ) from exc
    except TimeoutError as exc:
        raise HookAttemptError(
            f"deadline of {policy.deadline:g} s exceeded after {made} attempt(s)",
            retryable=False,
            function=transport.name,
        ) from exc
