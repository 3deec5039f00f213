"""One ceiling shared by many processes or machines: a lease of the rate per member.

``--processes N`` and a fleet of workers send one campaign from several event loops. Each
loop's ``RateLimiter`` enforces what it is allowed; the members share the ceiling by
holding **leases** of it in a store they all reach (the run's SQLite ledger file, or
its DynamoDB table):

* a lease is ``(share, ceiling, expires)`` per member and ceiling name; the shares of
  the live members always sum to at most the ceiling. A member's limiter allows its
  share and nothing after ``expires - stop_early`` (its own clock), so a member that
  cannot renew stops sending before anyone may take its share over.
* every ``poll_every`` seconds a member reads the ceiling's record, and every
  ``renew_every`` (or sooner, to grow into room or to shrink) updates its lease in one
  atomic read-modify-write (``LeaseStore.update``): it drops members whose lease ended
  more than ``skew`` seconds ago, extends its own by ``ttl``, and computes the fair share
  of every live member (the ceiling split evenly, in whole messages). Below its fair
  share it takes what the others leave free; above it (a member joined) it first lowers
  its own limiter, waits until its in-flight requests and its last second of sends fit
  the smaller share (``RateLimiter.drained``), and only then writes the smaller share: a
  share is never in use by two members in one window.
* a member that leaves lowers its rate to 0, drains and deletes its lease; a member
  that dies gives its share back when the lease ends: others reclaim it ``skew``
  seconds after ``expires``, i.e. at most ``ttl + skew + poll_every`` after its last
  renewal.

Costs, per member and ceiling, one store write per ``renew_every`` (plus one per join,
leave or growth) and one read per ``poll_every``, independent of the send rate.

Assumptions: members' clocks agree within ``skew`` (leases hold wall-clock times); a
request granted before a member's lease ran out is done within ``stop_early - 1 s``
of it (else the member's last second may overlap its successor's first).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from dispatcher.errors import LeaseError
from dispatcher.ratelimit.local import RateLimiter

__all__ = ["Lease", "LeaseError", "LeaseStore", "SharedCeilings", "fair_shares", "plan"]

log = logging.getLogger("dispatcher.ratelimit")


@dataclass(frozen=True, slots=True)
class Lease:
    """One member's part of one ceiling."""

    share: int
    """Messages per second the member may send."""
    ceiling: float
    """The ceiling as this member was configured (members should agree; the lowest wins)."""
    expires: float
    """Wall-clock time (``time.time()``) at which the lease ends unless renewed."""


Leases = dict[str, Lease]
"""Member id -> lease, for one ceiling."""


class LeaseStore(Protocol):
    """Where the members of a ceiling keep their leases (see ``sqlite`` and ``dynamodb``)."""

    writes: int
    """Updates written so far (the cost: DynamoDB writes)."""

    async def read(self, key: str) -> Leases:
        """The leases of ``key`` as stored now (a consistent read; raises ``LeaseError``)."""
        ...

    async def update(self, key: str, change: Callable[[Leases], Leases]) -> Leases:
        """Atomically replace the leases of ``key`` with ``change(current)``; return them.

        ``change`` may run more than once (an optimistic store retries on a conflict) and
        must not mutate its argument. Raises ``LeaseError`` when the store fails.
        """
        ...

    async def aclose(self) -> None: ...


def fair_shares(ceiling: float, members: Iterable[str]) -> dict[str, int]:
    """The ceiling split evenly in whole messages per second; the remainder goes to the
    first members in id order (every member computes the same split)."""
    ordered = sorted(members)
    if not ordered:
        return {}
    base, extra = divmod(int(ceiling), len(ordered))
    return {m: base + (1 if i < extra else 0) for i, m in enumerate(ordered)}


def live(leases: Mapping[str, Lease], now: float, skew: float) -> Leases:
    """The leases no one may reclaim yet."""
    return {m: lease for m, lease in leases.items() if lease.expires + skew > now}


def target_of(leases: Mapping[str, Lease], member: str) -> int:
    """``member``'s fair share among ``leases`` under the lowest configured ceiling."""
    if not leases:
        return 0
    ceiling = min(lease.ceiling for lease in leases.values())
    return fair_shares(ceiling, leases).get(member, 0)


def plan(
    leases: Mapping[str, Lease], *, member: str, ceiling: float, now: float, ttl: float,
    skew: float, shrink_to: int | None = None,
) -> Leases:  # fmt: skip
    """The leases after ``member`` renews at ``now``: the dead dropped, its lease extended,
    grown toward its fair share as far as the others leave room, or (``shrink_to``)
    lowered to at most that. Never grows a share past the room left."""
    current = live(leases, now, skew)
    mine = current.get(member)
    share = 0 if mine is None else mine.share
    current[member] = Lease(share, float(ceiling), now + ttl)
    if shrink_to is not None:
        share = min(share, shrink_to)
    else:
        limit = int(min(lease.ceiling for lease in current.values()))
        others = sum(lease.share for m, lease in current.items() if m != member)
        room = max(0, limit - others)
        # Only grows: a smaller share is written only after draining (``shrink_to``).
        share = max(share, min(target_of(current, member), room))
    current[member] = Lease(share, float(ceiling), now + ttl)
    return current


def new_member_id() -> str:
    """``host:pid:random``: unique per process and run, readable in the store."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SharedCeilings:
    """A ``CeilingFactory`` whose ceilings are shared through a ``LeaseStore``.

    ``async with SharedCeilings(store, scope=run_id) as ceilings:`` then pass
    ``ceilings`` wherever a factory goes (``routes.build_routes``). Each ceiling's limiter
    starts at rate 0 and follows this member's lease, kept by a task of its own; on exit
    the leases are given back (bounded by ``release_timeout``; a lease not given back
    just ends). ``scope`` names what the members share (the run id): the store key of a
    ceiling is ``scope/name``.

    Settings: the defaults suit a fleet on DynamoDB (a write per 2.5 s per ceiling, a
    dead worker's share back within ~11 s); for ``--processes`` on one machine's SQLite
    file, ``ttl=4, renew_every=0.5, skew=0.5`` (one clock, a local file).
    """

    def __init__(
        self,
        store: LeaseStore,
        *,
        scope: str,
        member: str | None = None,
        ttl: float = 10.0,
        renew_every: float | None = None,
        poll_every: float = 0.25,
        skew: float = 1.0,
        stop_early: float = 2.0,
        release_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        renew = ttl / 4 if renew_every is None else renew_every
        if not ttl > stop_early + 2 * renew:
            raise ValueError(
                f"'ttl' ({ttl:g} s) must exceed stop_early + 2 * renew_every "
                f"({stop_early:g} + 2 * {renew:g} s): a lease must survive a missed renewal"
            )
        if not stop_early > 1.0:
            raise ValueError(f"'stop_early' must be > 1 second (one window), got {stop_early!r}")
        self.store = store
        self.scope = scope
        self.member = member or new_member_id()
        self.ttl = ttl
        self.renew_every = renew
        self.poll_every = min(poll_every, renew)
        self.skew = skew
        self.stop_early = stop_early
        self.release_timeout = release_timeout
        self._clock = clock
        self._limiters: dict[str, RateLimiter] = {}
        self._tg: TaskGroup | None = None

    def __repr__(self) -> str:
        shares = {name: limiter.rate for name, limiter in self._limiters.items()}
        return f"SharedCeilings(scope={self.scope!r}, member={self.member!r}, shares={shares})"

    async def __aenter__(self) -> SharedCeilings:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(kind, exc, tb)
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self._release_all()

    def __call__(self, name: str, rate: float) -> RateLimiter:
        """The shared limiter of ceiling ``name`` (``rate`` per second over all members)."""
        limiter = self._limiters.get(name)
        if limiter is None:
            if self._tg is None:
                raise RuntimeError("use SharedCeilings inside 'async with'")
            limiter = self._limiters[name] = RateLimiter(rate, initial_rate=0)
            self._tg.start_soon(self._keep, f"{self.scope}/{name}", limiter)
        return limiter

    # -- one lease -----------------------------------------------------------------------

    def _change(self, ceiling: float, shrink_to: int | None = None) -> Callable[[Leases], Leases]:
        def change(leases: Leases) -> Leases:
            return plan(leases, member=self.member, ceiling=ceiling, now=self._clock(),
                        ttl=self.ttl, skew=self.skew, shrink_to=shrink_to)  # fmt: skip

        return change

    def _allow(self, limiter: RateLimiter, lease: Lease, rate: float | None = None) -> None:
        """Let the limiter use ``rate`` (default the lease's share) until the lease ends,
        less ``stop_early``, translated from wall-clock to the limiter's clock."""
        until = time.monotonic() + (lease.expires - self.stop_early - self._clock())
        limiter.set_rate(lease.share if rate is None else rate, until=until)

    async def _update(
        self, key: str, change: Callable[[Leases], Leases] | None = None
    ) -> Leases | None:
        """Write ``change`` (None: only read); None when the store failed."""
        try:
            with anyio.fail_after(self.renew_every):
                if change is None:
                    return await self.store.read(key)
                return await self.store.update(key, change)
        except (LeaseError, TimeoutError) as exc:
            log.warning(
                "rate lease %s: %s (sending stops when the lease ends)",
                key,
                str(exc) or type(exc).__name__,
            )
            return None

    def _must_write(self, leases: Leases, lease: Lease, ceiling: float) -> bool:
        """After a read: write when the lease is due for renewal, was dropped by others,
        or can grow into room another member left."""
        now = self._clock()
        mine = leases.get(self.member)
        if mine is None or lease.expires - now <= self.ttl - self.renew_every:
            return True
        grown = plan(leases, member=self.member, ceiling=ceiling, now=now, ttl=self.ttl,
                     skew=self.skew)  # fmt: skip
        return grown[self.member].share > mine.share

    async def _keep(self, key: str, limiter: RateLimiter) -> None:
        """Hold this member's lease of ``key`` and keep ``limiter`` at its share.

        Looks at the leases every ``poll_every`` (a read), and writes only to renew
        (every ``renew_every``), to grow into room, or to shrink: the cost in writes does
        not depend on how quickly a member notices a change.
        """
        ceiling = limiter.ceiling
        lease: Lease | None = None  # ours, as last written
        while True:
            leases = None if lease is None else await self._update(key)
            if lease is None or leases is None or self._must_write(leases, lease, ceiling):
                leases = await self._update(key, self._change(ceiling))
            if leases is None:
                await anyio.sleep(self.poll_every)
                continue
            lease = leases[self.member]
            target = target_of(live(leases, self._clock(), self.skew), self.member)
            if target < lease.share:
                lease = await self._shrink(key, limiter, lease, target)
            # Never more than the fair share, even while the store still says more.
            self._allow(limiter, lease, min(lease.share, target))
            await anyio.sleep(self.poll_every)

    async def _shrink(self, key: str, limiter: RateLimiter, lease: Lease, target: int) -> Lease:
        """Hand back what exceeds ``target``: stop using it, let it drain, then write it."""
        self._allow(limiter, lease, target)  # new grants already obey the smaller share
        while True:
            with anyio.move_on_after(self.renew_every):
                await limiter.drained(target)
                break
            # In-flight requests still hold the larger share: keep the lease alive meanwhile.
            leases = await self._update(key, self._change(limiter.ceiling, lease.share))
            if leases is not None:
                lease = leases[self.member]
                self._allow(limiter, lease, min(target, lease.share))
        leases = await self._update(key, self._change(limiter.ceiling, target))
        return lease if leases is None else leases[self.member]

    async def _release_all(self) -> None:
        """Give every lease back: stop, drain (bounded), delete this member's lease."""
        for limiter in self._limiters.values():
            limiter.set_rate(0)
        with anyio.move_on_after(self.release_timeout):
            for limiter in self._limiters.values():
                await limiter.drained(0)
            for name in self._limiters:
                await self._update(f"{self.scope}/{name}", self._leave)
        self._limiters.clear()

    def _leave(self, leases: Leases) -> Leases:
        return {m: lease for m, lease in live(leases, self._clock(), self.skew).items()
                if m != self.member}  # fmt: skip
