"""One retry policy for AWS calls that are safe to repeat (reads, idempotent writes).

``call(operation, **request)`` makes the call, and again after a jittered exponential
backoff (or the service's ``Retry-After``) when ``classify`` says another attempt is
safe and may succeed; the last failure is re-raised as it was, for the caller to map to
its own error. botocore's own retries are off (``AwsClients``), so attempts are exact.

Calls that are not safe to repeat keep their own loops, because what may be retried
depends on more than the error: a hook invocation (``dispatcher.hooks.invoke``: a throttle
is not an attempt; the 15 s deadline spans all attempts) and a provider send
(``dispatcher.delivery``: retried only when the provider surely did not send, under the
ledger's claim). Every loop waits ``backoff_delay``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from dispatcher.aws.errors import classify

__all__ = ["backoff_delay", "call", "retrying"]

T = TypeVar("T")


def backoff_delay(n: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """The wait before retry ``n`` (1-based): the service's Retry-After when it gave one
    (capped), else full jitter over ``base * 2**(n-1)`` capped at ``cap``, so that the
    retries of many callers spread out instead of arriving together."""
    if retry_after is not None:
        return max(0.0, min(retry_after, cap))
    return random.uniform(0.0, min(cap, base * 2 ** (n - 1)))


class _Wait:
    """The service's Retry-After when it gave one (capped), else jittered exponential."""

    def __init__(self, base: float, max_wait: float) -> None:
        self._expo = wait_random_exponential(multiplier=base, max=max_wait)
        self._max = max_wait

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        fault = classify(exc) if exc is not None else None
        if fault is not None and fault.retry_after is not None:
            return min(fault.retry_after, self._max)
        return float(self._expo(state))


def retrying(
    *, attempts: int = 5, base: float = 0.05, max_wait: float = 5.0, idempotent: bool = True,
    extra: Callable[[BaseException], bool] | None = None,
) -> AsyncRetrying:  # fmt: skip
    """The policy as a tenacity ``AsyncRetrying`` (``extra``: more exceptions to retry)."""

    def should_retry(exc: BaseException) -> bool:
        fault = classify(exc)
        if fault is not None:
            return fault.retryable(idempotent=idempotent)
        return extra is not None and extra(exc)

    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=_Wait(base, max_wait),
        retry=retry_if_exception(should_retry),
        sleep=anyio.sleep,
        reraise=True,
    )


async def call(
    operation: Callable[..., Awaitable[T]], /, *args: Any, attempts: int = 5,
    base: float = 0.05, max_wait: float = 5.0, idempotent: bool = True, **kwargs: Any,
) -> T:  # fmt: skip
    """``await operation(*args, **kwargs)`` under the policy; the last failure re-raised."""
    async for attempt in retrying(attempts=attempts, base=base, max_wait=max_wait,
                                  idempotent=idempotent):  # fmt: skip
        with attempt:
            return await operation(*args, **kwargs)
    raise AssertionError("unreachable")  # pragma: no cover
