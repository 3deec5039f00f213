"""Which occurrence of its schedule a run sends, and waiting until it may start.

The schedule's values (occurrences, when each opens, local send times) are in
``dispatcher.campaign.schedule``; this is the run's side: the occurrence a new run
sends, the ``Timing`` a resumed one continues with, and the countdown before a
StartTime that is still ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from dispatcher.campaign.schedule import Clock, parse_instant, sleep_until, utc_iso
from dispatcher.config import Settings
from dispatcher.errors import RunInterrupted
from dispatcher.progress import Notice, span

__all__ = ["UNSCHEDULED", "Timing", "occurrence_to_send"]

logger = logging.getLogger("dispatcher.run")


@dataclass(frozen=True, slots=True)
class Timing:
    """Which occurrence of the schedule a run sends, and whether it waits for nothing."""

    occurrence: datetime | None = None
    now: bool = False

    @property
    def key(self) -> str | None:
        """The occurrence as the ledger records it (``Occurrence``, ISO 8601 UTC)."""
        return utc_iso(self.occurrence) if self.occurrence is not None else None

    def extra(self) -> dict[str, Any]:
        return {"Occurrence": self.key, "Now": self.now} if self.key else {}

    @classmethod
    def of(cls, extra: Mapping[str, Any], now: bool) -> Timing:
        """What a run recorded: resume and retry continue the same occurrence."""
        key = extra.get("Occurrence")
        return cls(parse_instant(key) if key else None, bool(extra.get("Now")) or now)


UNSCHEDULED = Timing()
"""No occurrence: an IMMEDIATE one-time campaign (and previews)."""


async def occurrence_to_send(
    settings: Settings, clock: Clock, *, now: bool, stop: anyio.Event | None, show: bool
) -> datetime | None:
    """The occurrence a new run sends: the latest due, else (StartTime ahead) the first,
    after waiting for it unless ``now``. None for an IMMEDIATE one-time campaign."""
    schedule, campaign = settings.schedule, settings.campaign
    due = schedule.due(clock.now())
    first = schedule.first()
    if due is not None or first is None or now:
        return due or first
    opens = schedule.opens(first)
    logger.info("campaign %s starts at %s: waiting", campaign.id, utc_iso(opens))
    notice = Notice() if show else None

    def countdown(left: float) -> None:
        if notice is not None:
            notice.show(f"dispatcher: campaign {campaign.id} starts at {utc_iso(opens)}, in "
                        f"{span(left)} (Ctrl-C cancels; --now sends at once)")  # fmt: skip

    try:
        started = await sleep_until(opens, clock, stop=stop, show=countdown)
    finally:
        if notice is not None:
            notice.done()
    if not started:
        raise RunInterrupted("stopped while waiting for the campaign's StartTime: nothing "
                             "was sent", run_id="")  # fmt: skip
    return first
