"""The invoke policy: Pinpoint's hook budget, enforced the same way for every transport.

Per chunk: at most ``attempts`` invocation attempts (3) inside one ``deadline`` (15 s)
that covers them all; each attempt is also cut at ``attempt_timeout`` so that a hung
attempt can still be retried. Exceptions and time-outs are retried with exponential
backoff and full jitter (or the server's Retry-After, if it fits in the time left); a
non-retryable error or an undecodable result fails the chunk at once.

A throttled answer (HTTP 429: Lambda's ``TooManyRequestsException``, a webhook's 429) is
not an attempt. The service refused the call before the function ran, so the function
has used none of its budget: the throttled call and the backoff after it count neither
toward ``attempts`` nor against ``deadline`` (the deadline's clock stops while the
chunk waits for capacity, exactly as it does while a chunk waits for a free slot), and
the hook concurrency (``dispatcher.hooks.concurrency``) is cut so fewer calls are
throttled. A throttled chunk waits until the function takes it; it gives up only when
the function has answered no call at all for ``throttle_patience`` seconds (it is not
running anything: e.g. its reserved concurrency is 0), and then ends HOOK_FAILURE.

The loop is written out rather than left to tenacity because its attempt counter and
stop conditions cannot tell a throttled call from an attempt. anyio cancel scopes own
the time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from dispatcher.config.model import DispatchOptions
from dispatcher.errors import HookAttemptError, HookError
from dispatcher.hooks.base import MAX_SYNC_PAYLOAD, HookTransport
from dispatcher.hooks.concurrency import Call, HookConcurrency

LATE_GRACE = 1.0
"""Seconds an answer may arrive past its attempt's time-out before it is refused."""

MIN_ATTEMPT = 0.05
"""No attempt is started with less time than this left in the deadline."""

# How an attempt ended, as the concurrency gate hears it.
_OK, _FAILED, _THROTTLED, _SLOW_DOWN = "ok", "failed", "throttled", "slow down"


_PINPOINT = DispatchOptions()


@dataclass(frozen=True, slots=True)
class InvokePolicy:
    """How long and how often one chunk's hook may be tried."""

    # Pinpoint's 15 s / 3 attempts, stated once: in the config's defaults.
    deadline: float = _PINPOINT.hook_deadline
    attempts: int = _PINPOINT.hook_attempts
    attempt_timeout: float = _PINPOINT.hook_attempt_timeout
    backoff_base: float = 0.2
    backoff_max: float = 2.0
    throttle_patience: float = 300.0
    """Throttled chunks give up once the function has answered nothing for this long."""


def _nothing() -> None:
    return None


def _always() -> bool:
    return True


def _backoff(policy: InvokePolicy, n: int, retry_after: float | None) -> float:
    """The wait before retry ``n`` (1-based): the server's Retry-After if it gave one,
    else full jitter over an exponential ceiling (so retries of many chunks spread out)."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return random.uniform(0.0, min(policy.backoff_max, policy.backoff_base * 2 ** (n - 1)))


async def invoke_with_policy(
    transport: HookTransport,
    event: bytes,
    policy: InvokePolicy,
    *,
    on_attempt: Callable[[], None] = _nothing,
    on_throttle: Callable[[], None] = _nothing,
    gate: HookConcurrency | None = None,
    keep_waiting: Callable[[], bool] = _always,
) -> Any:
    """Invoke ``transport`` under ``policy``; return the decoded result or raise HookError.

    ``on_attempt`` is called once per attempt made (a throttled call is none), for
    ``HookInvocations``; ``on_throttle`` once per throttled answer. ``gate``, if given,
    hears about every call: latency, throttles, successes (it adapts the concurrency).
    ``keep_waiting`` is asked before each retry of a throttled call: False (the run is
    stopping, the campaign expired) ends the wait. A chunk that ends throttled raises a
    ``HookAttemptError`` with ``throttled`` set: the function never ran it.
    """
    if len(event) > MAX_SYNC_PAYLOAD:
        raise HookAttemptError(
            f"event is {len(event)} bytes, over Lambda's {MAX_SYNC_PAYLOAD}-byte synchronous "
            "payload limit; not sent",
            retryable=False,
            function=transport.name,
        )
    return await _Invocation(
        transport, event, policy, on_attempt, on_throttle, gate, keep_waiting
    ).run()


class _Invocation:
    """One chunk's event under the policy: the attempts, the throttles, the clock."""

    __slots__ = (
        "deadline", "event", "gate", "gave_up_throttled", "guard", "keep_waiting", "made",
        "on_attempt", "on_throttle", "policy", "throttled_for", "throttles", "transport",
    )  # fmt: skip

    def __init__(
        self,
        transport: HookTransport,
        event: bytes,
        policy: InvokePolicy,
        on_attempt: Callable[[], None],
        on_throttle: Callable[[], None],
        gate: HookConcurrency | None,
        keep_waiting: Callable[[], bool],
    ) -> None:
        self.transport = transport
        self.event = event
        self.policy = policy
        self.on_attempt = on_attempt
        self.on_throttle = on_throttle
        self.gate = gate
        self.deadline = time.monotonic() + policy.deadline
        self.guard = anyio.CancelScope(deadline=self.deadline + LATE_GRACE)
        self.made = 0
        self.throttles = 0
        self.throttled_for = 0.0
        self.gave_up_throttled = False
        self.keep_waiting = keep_waiting

    async def run(self) -> Any:
        name = self.transport.name
        with self.guard:  # belt and braces over the attempts' own time-outs
            try:
                return await self._attempts()
            except HookError as exc:
                # No timing in the reason: equal failures must read the same, so they group.
                made = f"after {self.made} attempt{'s' * (self.made != 1)}"
                if self.gave_up_throttled:
                    made = (f"the function answered no call for "
                            f"{self.policy.throttle_patience:g} s; {made}")  # fmt: skip
                reason = f"{exc.reason} ({made})"
                if isinstance(exc, HookAttemptError):
                    raise HookAttemptError(
                        reason,
                        retryable=exc.retryable,
                        retry_after=exc.retry_after,
                        function=name,
                        throttled=exc.throttled,
                    ) from exc
                raise type(exc)(reason, function=name) from exc
        raise HookAttemptError(
            f"deadline of {self.policy.deadline:g} s exceeded after {self.made} attempt(s)",
            retryable=False,
            function=name,
        )

    async def _attempts(self) -> Any:
        while True:
            began = time.monotonic()
            try:
                return await self._attempt(began)
            except HookAttemptError as exc:
                wait = self._wait_or_raise(exc, began)
            await anyio.sleep(wait)

    def _wait_or_raise(self, exc: HookAttemptError, began: float) -> float:
        """How long to wait before the next try; re-raises ``exc`` when there is none."""
        policy, now = self.policy, time.monotonic()
        if exc.throttled:
            self.throttles += 1
            self.on_throttle()
            quiet = self.gate.quiet_for() if self.gate is not None else self.throttled_for
            if quiet >= policy.throttle_patience:
                self.gave_up_throttled = True
                raise exc
            if not self.keep_waiting():
                raise exc
            wait = min(_backoff(policy, self.throttles, exc.retry_after), policy.throttle_patience)
            # Not an attempt: the function never ran. Its deadline's clock stops for what
            # the throttle cost (the refused call and the wait), as a patient client's
            # would: Pinpoint's 15 s is the function's budget, not a queue's.
            cost = now - began + wait
            self.throttled_for += cost
            self.deadline += cost
            self.guard.deadline = self.deadline + LATE_GRACE
            return wait
        if not exc.retryable or self.made >= policy.attempts:
            raise exc
        wait = _backoff(policy, self.made, exc.retry_after)
        if self.deadline - now - wait <= MIN_ATTEMPT:
            raise exc  # the wait would leave no time for another attempt
        return wait

    async def _attempt(self, began: float) -> Any:
        transport, gate = self.transport, self.gate
        budget = min(self.policy.attempt_timeout, self.deadline - began)
        call = gate.begin() if gate is not None else None
        outcome = _FAILED
        try:
            with anyio.move_on_after(budget) as scope:
                result = await transport.invoke(self.event)
            if not scope.cancelled_caught:
                outcome = _OK
        except HookAttemptError as exc:
            if exc.throttled:
                outcome = _THROTTLED
            elif exc.retryable and exc.retry_after is not None:
                outcome = _SLOW_DOWN  # e.g. 503 + Retry-After: may have run, so an attempt
            raise
        finally:
            self._report(call, outcome)
        if outcome == _FAILED:
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
                f"work, or serve it with dispatcher lambda serve)",
                retryable=False,
                function=transport.name,
            )
        return result

    def _report(self, call: Call | None, outcome: str) -> None:
        if outcome != _THROTTLED:
            self.made += 1
            self.on_attempt()
        if call is None or self.gate is None:
            return
        if outcome == _OK:
            self.gate.succeeded(call)
        elif outcome == _FAILED:
            self.gate.failed(call)
        else:  # throttled, or told to slow down
            self.gate.throttled(call)
