"""How a run builds its ceilings and hands them to the senders that pace themselves.

A run has ceilings at three depths, composed narrowest first (``all_of``):

1. a sender's *keyed* ceilings, for some of its requests: one SMS origination identity
   (``[channels.SMS.origination_rates]``), the SES account's ``MaxSendRate``;
2. the sender's own ceiling (``max_per_second``, a provider quota), with its own
   throttling feedback;
3. the campaign's ``MessagesPerSecond``, one for every treatment and channel.

Each ceiling is made by a ``CeilingFactory`` from a *name* and a rate: in one process
``local_ceilings`` makes a plain ``RateLimiter``; across processes or a fleet
``SharedCeilings`` (``dispatcher.ratelimit.shared``) makes one that holds a lease of the
rate, so the ceiling is shared, never multiplied. Names are the same in every process of
a run (they come from the configuration), which is what makes them shared.

A sender that paces itself (``dispatcher.channels.base.PacedSender``) gets a ``Pacing``:
the limiter of depths 2-3 for every request, and ``ceiling(name, rate)`` for depth 1. It
takes each request's permit right before the request, after its client exists, and
reports throttling to the same limiter.
"""

from __future__ import annotations

from typing import Protocol

from dispatcher.ratelimit.compose import all_of
from dispatcher.ratelimit.local import Limiter, RateLimiter

__all__ = ["CAMPAIGN", "CeilingFactory", "Pacing", "local_ceilings"]

CAMPAIGN = "campaign"
"""The name of the campaign's ``MessagesPerSecond`` ceiling."""


class CeilingFactory(Protocol):
    """Makes the limiter for the ceiling called ``name`` (messages per second ``rate``)."""

    def __call__(self, name: str, rate: float) -> Limiter: ...


def local_ceilings(name: str, rate: float) -> Limiter:
    """One process's ceilings: a ``RateLimiter`` each."""
    return RateLimiter(rate)


class Pacing:
    """The limiters a self-pacing sender takes each provider request's permit from.

    ``limiter`` covers every request (the sender's own ceiling under the campaign's);
    ``ceiling(name, rate)`` is a narrower ceiling for some requests, composed with it.
    """

    def __init__(self, limiter: Limiter, factory: CeilingFactory = local_ceilings) -> None:
        self.limiter = limiter
        self._factory = factory
        self._keyed: dict[str, Limiter] = {}

    def __repr__(self) -> str:
        return f"Pacing({self.limiter!r}, keyed={sorted(self._keyed)})"

    def ceiling(self, name: str, rate: float) -> Limiter:
        """The limiter for requests under the ceiling ``name`` as well (made once per name).

        ``name`` must say what the ceiling belongs to, the same in every process (e.g.
        ``"SMS/origination/+12065550100"``); the first rate given for a name is kept.
        """
        limiter = self._keyed.get(name)
        if limiter is None:
            limiter = self._keyed[name] = all_of(self._factory(name, rate), self.limiter)
        return limiter
