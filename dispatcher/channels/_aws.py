"""What the AWS senders share: provider errors mapped to ``SendResult``, the option
reader, and bounded, paced fan-out of one batch."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, NoReturn

import aiohttp
import anyio
from botocore.exceptions import BotoCoreError, ClientError

from dispatcher.aws.errors import classify
from dispatcher.channels.base import Message, SenderContext, SendResult
from dispatcher.errors import ConfigError, SendError
from dispatcher.model import Status
from dispatcher.ratelimit import Limiter, Permit

PROVIDER_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError, ClientError, aiohttp.ClientError, OSError,
)  # fmt: skip
"""What a provider call may raise; ``failure_result`` maps each to a ``SendResult``.
(``TimeoutError`` is an ``OSError``.) Anything else is a bug and propagates."""

NOT_RETRIED = "not retried: the request was sent and may have been delivered (no duplicates)"


def failure_result(exc: BaseException) -> SendResult:
    """Map a provider exception (one of ``PROVIDER_ERRORS``) to a ``SendResult``.

    ``dispatcher.aws.classify`` reads it. Throttling -> THROTTLED, retryable (with the
    server's ``Retry-After``); a 5xx answer or a connection that failed before any answer
    -> TEMPORARY_FAILURE, retryable; a time-out after the request left -> TEMPORARY_FAILURE,
    not retryable (a send is not repeated when it may have been delivered); any other
    rejection -> PERMANENT_FAILURE with ``"Code: message"``. Raises ``SendError`` for
    missing or rejected credentials, which make the sender unusable.
    """
    fault = classify(exc)
    if fault is None:
        raise exc
    if fault.kind == "credentials":
        raise SendError(fault.code, fault.message) from exc
    detail = (fault.response or {}).get("Reason")  # e.g. DESTINATION_PHONE_NUMBER_OPTED_OUT
    reason = f"{fault.code}: {detail}: {fault.message}" if detail else str(fault)
    if fault.kind == "throttled":
        return SendResult(Status.THROTTLED, reason, retryable=True, retry_after=fault.retry_after)
    if fault.kind == "transient":
        if fault.status:
            reason = f"{reason} (HTTP {fault.status})"
        return SendResult(Status.TEMPORARY_FAILURE, reason, retryable=True,
                          retry_after=fault.retry_after)  # fmt: skip
    if fault.kind == "unknown_outcome":
        return SendResult(Status.TEMPORARY_FAILURE, f"{reason}; {NOT_RETRIED}")
    return SendResult(Status.PERMANENT_FAILURE, reason)


async def send_each(
    messages: Sequence[Message],
    send_one: Callable[[Message], Awaitable[SendResult]],
    in_flight: anyio.Semaphore,
    limiter_for: Callable[[Message], Limiter] | None = None,
) -> list[SendResult]:
    """Send a batch one call per message, concurrently, at most ``in_flight`` calls at once.

    A slot is taken *before* a task starts, so a batch never parks tasks on a semaphore;
    with ``limiter_for``, so is the call's permit from its message's limiter (after the
    slot: a permit is held from right before the call until its answer), and a throttled
    answer is reported to that limiter.
    """
    results: list[SendResult | None] = [None] * len(messages)
    owed: dict[int, Permit] = {}  # slot and permit taken, task not finished

    async def run(index: int, message: Message, permit: Permit, limiter: Limiter | None) -> None:
        try:
            with permit:
                result = await send_one(message)
            if limiter is not None and result.status is Status.THROTTLED:
                limiter.throttled(result.retry_after)
            results[index] = result
        finally:
            del owed[index]
            in_flight.release()

    async def start(index: int, message: Message) -> tuple[Permit, Limiter | None]:
        await in_flight.acquire()
        try:
            limiter = None if limiter_for is None else limiter_for(message)
            permit = _NO_PERMIT if limiter is None else await limiter.acquire(1)
        except BaseException:
            in_flight.release()
            raise
        owed[index] = permit
        return permit, limiter

    try:
        if len(messages) == 1:
            await run(0, messages[0], *await start(0, messages[0]))
            return results  # type: ignore[return-value]
        try:
            async with anyio.create_task_group() as tg:
                for index, message in enumerate(messages):
                    tg.start_soon(run, index, message, *await start(index, message))
        except* SendError as group:
            raise_first(group)
    finally:
        # A task cancelled before its first step never ran its own cleanup: an open
        # permit would hold its share of every ceiling for the rest of the run.
        for permit in owed.values():
            permit.done()
            in_flight.release()
    return results  # type: ignore[return-value]


_NO_PERMIT = Permit([])


def raise_first(group: BaseExceptionGroup[SendError]) -> NoReturn:
    """Re-raise a task group's ``SendError`` as itself: the sender is unusable, once."""
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    raise first


class Options:
    """Reads one channel's options table; every problem is a ``ConfigError`` with its key."""

    COMMON = frozenset({"endpoint_url", "region", "max_per_second", "max_batch"})

    def __init__(
        self, channel: str, options: Mapping[str, Any], ctx: SenderContext,
        allowed: Collection[str],
    ) -> None:  # fmt: skip
        self.channel = channel
        self.options = options
        self.file = ctx.config_file
        known = self.COMMON | set(allowed)
        for key in options:
            if key not in known:
                raise self.error(key, f"unknown option; expected one of {', '.join(sorted(known))}")

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=f"channels.{self.channel}.{key}")

    def string(self, key: str) -> str | None:
        value = self.options.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def strings(self, key: str) -> list[str] | None:
        value = self.options.get(key)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(v, str) and v.strip() for v in items)
        ):
            raise self.error(key, f"must be a string or a non-empty list of strings, got {value!r}")
        return list(items)

    def choice(self, key: str, choices: Collection[str]) -> str | None:
        value = self.string(key)
        if value is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(sorted(choices))}, got {value!r}")
        return value

    def integer(self, key: str, default: int | None, *, low: int, high: int) -> int | None:
        value = self.options.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"must be an integer from {low} to {high}, got {value!r}")
        return value

    def number(self, key: str, *, low: float) -> float | None:
        value = self.options.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= low)
        ):
            raise self.error(key, f"must be a number >= {low:g}, got {value!r}")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value = self.options.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def endpoint_url(self) -> str | None:
        value = self.string("endpoint_url")
        if value is not None and not value.startswith(("http://", "https://")):
            raise self.error("endpoint_url", f"must be an http:// or https:// URL, got {value!r}")
        return value

    def max_per_second(self) -> float | None:
        return self.number("max_per_second", low=1)

    def rates(self, key: str) -> dict[str, float]:
        """A table of name -> messages per second (each a number >= 1), e.g. per identity."""
        value = self.options.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not value:
            example = '{ "+12065550100" = 1 }'
            raise self.error(key, f"must be a table such as {example}, got {value!r}")
        out: dict[str, float] = {}
        for name, rate in value.items():
            where = f'{key}."{name}"'
            if not isinstance(name, str) or not name.strip():
                raise self.error(where, "must be a non-empty name")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not (
                    math.isfinite(rate) and rate >= 1):  # fmt: skip
                raise self.error(where, f"must be a number of messages per second >= 1, "
                                        f"got {rate!r}")  # fmt: skip
            out[name] = float(rate)
        return out
