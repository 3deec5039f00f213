"""The campaign's ``Limits`` applied per endpoint: ``MaximumDuration`` (``Expiry``) and the
``Daily`` / ``Total`` caps (``cap_check``).

MaximumDuration: an endpoint not sent within ``MaximumDuration`` seconds after the run's
start ends ``EXPIRED``.

Caps: a cap of 0 or unset means no cap. ``Daily`` counts every campaign of the project
that sent to the endpoint in the last 24 hours (a rolling window); ``Total`` counts this
campaign's sends to the endpoint over all its runs. An endpoint whose count has reached
the cap ends ``TOTAL_CAP`` (checked first: it will not pass in a later run either) or
``DAILY_CAP``. ``Session`` has no meaning without app sessions and is ignored. (The
campaign's Limits over the project's, field by field: ``Settings.limits``.)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from dispatcher.config.model import Limits
from dispatcher.model import Outcome, Record, Status

__all__ = ["DAILY_WINDOW", "Expiry", "cap_check", "cap_status"]


DAILY_WINDOW = timedelta(hours=24)
"""The Daily cap's window: ask the ledger for sends ``since = now - DAILY_WINDOW``."""


class Expiry:
    """``MaximumDuration``: past ``start + maximum_duration`` an unsent endpoint is EXPIRED.

    ``start`` is either a ``time.monotonic()`` reading (a run that starts now) or an aware
    datetime (a resumed run keeps its original start); ``expired(now)`` takes the same
    kind. With no MaximumDuration nothing ever expires.
    """

    __slots__ = ("deadline", "maximum_duration", "start")

    def __init__(self, start: datetime | float, maximum_duration: int | None) -> None:
        if isinstance(start, datetime) and (start.tzinfo is None or start.utcoffset() is None):
            raise ValueError("Expiry needs an aware datetime or a monotonic reading")
        self.start = start
        self.maximum_duration = maximum_duration or None
        self.deadline: datetime | float | None
        if self.maximum_duration is None:
            self.deadline = None
        elif isinstance(start, datetime):
            self.deadline = start + timedelta(seconds=self.maximum_duration)
        else:
            self.deadline = start + self.maximum_duration

    def expired(self, now: datetime | float | None = None) -> bool:
        """True once ``now`` is past the deadline (the deadline instant itself is in time).

        Without ``now``, the clock of ``start``: so ``expiry.expired`` is a ready
        ``Callable[[], bool]`` (``Stages.expired``).
        """
        deadline = self.deadline
        if deadline is None:
            return False
        if now is None:
            now = datetime.now(UTC) if isinstance(deadline, datetime) else time.monotonic()
        if isinstance(deadline, datetime) != isinstance(now, datetime):
            raise TypeError("Expiry.expired: compare a datetime with a datetime, a monotonic "
                            "reading with a monotonic reading")  # fmt: skip
        return now > deadline  # type: ignore[operator]

    def __repr__(self) -> str:
        return f"Expiry(maximum_duration={self.maximum_duration})"


def cap_status(limits: Limits, daily_count: int, total_count: int) -> Status | None:
    """TOTAL_CAP or DAILY_CAP if one more message would exceed a cap, else None.

    ``daily_count``: messages any campaign of the project sent to the endpoint in the
    last 24 h; ``total_count``: messages this campaign sent to it over all runs.
    """
    if limits.total and total_count >= limits.total:
        return Status.TOTAL_CAP
    if limits.daily and daily_count >= limits.daily:
        return Status.DAILY_CAP
    return None


History = Callable[..., Awaitable[Mapping[str, tuple[int, int]]]]
"""The ledger's ``history(endpoint_ids, *, campaign_id, since)``: per endpoint, (sends
since ``since`` (epoch seconds) in any campaign of the project, sends ever in this
campaign)."""


def cap_check(
    history: History,
    limits: Limits,
    *,
    campaign_id: str,
    clock: Callable[[], float] = time.time,
) -> Callable[[list[Record]], Awaitable[dict[str, Outcome]]]:
    """A batch cap check (``eligibility.CapCheck``): endpoint id -> DAILY_CAP / TOTAL_CAP.

    One history query per batch; with neither cap set it asks nothing. Counts are what
    the ledger holds when the batch is checked: sends still in flight are not in them.
    """

    async def check(records: list[Record]) -> dict[str, Outcome]:
        if not (limits.daily or limits.total):
            return {}
        ids: Sequence[str] = [r.endpoint_id for r in records if r.endpoint_id is not None]
        if not ids:
            return {}
        since = clock() - DAILY_WINDOW.total_seconds()
        counts = await history(ids, campaign_id=campaign_id, since=since)
        capped: dict[str, Outcome] = {}
        for record in records:
            eid = record.endpoint_id
            if eid is None or eid in capped:
                continue
            daily, total = counts.get(eid, (0, 0))
            status = cap_status(limits, daily, total)
            if status is Status.TOTAL_CAP:
                reason = (
                    f"the campaign already sent {total} message(s) here (Total cap {limits.total})"
                )
            elif status is Status.DAILY_CAP:
                reason = f"{daily} message(s) in the last 24 h (Daily cap {limits.daily})"
            else:
                continue
            capped[eid] = Outcome.of(record, status, reason)
        return capped

    return check
