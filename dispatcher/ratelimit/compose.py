"""One way to compose limiters (``all_of``), and the empty one (``NoLimit``)."""

from __future__ import annotations

from collections.abc import Iterable

from dispatcher.ratelimit.local import Limiter, Permit

__all__ = ["NoLimit", "all_of", "limiters_of"]

_UNLIMITED = 1 << 30


class _AllOf:
    """Several limiters acting as one: a start is granted by each, in order, and done in all."""

    __slots__ = ("limiters",)

    def __init__(self, limiters: tuple[Limiter, ...]) -> None:
        self.limiters = limiters

    def __repr__(self) -> str:
        return f"all_of({', '.join(map(repr, self.limiters))})"

    @property
    def max_grant(self) -> int:
        return min(limiter.max_grant for limiter in self.limiters)

    async def acquire(self, n: int = 1) -> Permit:
        permits: list[Permit] = []
        try:
            for limiter in self.limiters:
                # An earlier limiter's permit stays open while a later one makes us wait:
                # the start may come at any point of that wait, so it counts in both.
                permits.append(await limiter.acquire(n))
        except BaseException:
            Permit.joined(permits).done()
            raise
        return Permit.joined(permits)

    def throttled(self, retry_after: float | None = None) -> None:
        """Slow down the first (narrowest) limiter only: one provider's throttling (or one
        origination number's) must not slow the others sharing the wider ceilings."""
        self.limiters[0].throttled(retry_after)


def all_of(*limiters: Limiter) -> Limiter:
    """Compose limiters, narrowest first: ``all_of(per_identity, per_sender, campaign)``.

    A start must fit under every ceiling and counts in each. Always list shared limiters
    in the same order (narrowest scope first): limiters waited on in two orders could
    each hold open permits the other is waiting for.
    """
    flat: list[Limiter] = []
    for limiter in limiters:
        if isinstance(limiter, _AllOf):
            flat.extend(limiter.limiters)
        elif not isinstance(limiter, NoLimit):
            flat.append(limiter)
    if not flat:
        return NoLimit()
    return flat[0] if len(flat) == 1 else _AllOf(tuple(flat))


class NoLimit:
    """The limiter of a route with no rate limit (or whose sender paces itself)."""

    max_grant = _UNLIMITED

    def __repr__(self) -> str:
        return "NoLimit()"

    async def acquire(self, n: int = 1) -> Permit:
        return Permit([])

    def throttled(self, retry_after: float | None = None) -> None:
        return None


def limiters_of(limiter: Limiter) -> Iterable[Limiter]:
    """The limiters a composed limiter consists of, narrowest first (for tests and repr)."""
    return limiter.limiters if isinstance(limiter, _AllOf) else (limiter,)
