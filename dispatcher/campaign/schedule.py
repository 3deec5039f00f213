"""A campaign's ``Schedule``: when it runs, how often, and at whose local time.

``Schedule`` as ``aws pinpoint get-campaign`` prints it: ``StartTime`` (``IMMEDIATE`` or
ISO 8601), ``EndTime``, ``Frequency`` (``ONCE``, ``HOURLY``, ``DAILY``, ``WEEKLY``,
``MONTHLY``; ``EVENT`` and ``IN_APP_EVENT`` are refused: no command runs them here),
``IsLocalTime``, ``Timezone`` (``UTC``, ``UTC+05:30``, ``UTC-04``...) and ``QuietTime``.

Occurrences. A one-time campaign has one, at ``StartTime``; a recurring one has one per
period from ``StartTime`` on, before ``EndTime``: every hour, day or week, or on the same
day of every month (the last day when a month is shorter), all at StartTime's time of
day in StartTime's own UTC offset. One ``dispatcher run`` sends one occurrence: the
latest that is due and not yet sent from the ledger.

Local time (``IsLocalTime``). Each endpoint gets the occurrence at its wall-clock time
in its own ``Demographic.Timezone`` (an IANA name): 09:00 in Tokyo, then 09:00 in
Berlin, then 09:00 in Los Angeles. The occurrence is named by that wall-clock time in
the schedule's ``Timezone`` (Pinpoint's "starting UTC offset"; StartTime's offset when
there is none), and it opens when the earliest time zone on Earth (UTC+14) reaches it:
the run starts then and sends in waves, earliest first (``WavePlan``). An endpoint whose
local time had already passed when the run planned its waves (a late run) is sent in
the first wave, late rather than never; one without a valid time zone is not sent
(NO_TIMEZONE, as Pinpoint skipped it).

EndTime is one instant for every endpoint, local time or not: the campaign ends for
everyone at once (a documented choice; Pinpoint's text does not settle it).
"""

from __future__ import annotations

import calendar
import re
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Protocol

import anyio

from dispatcher.campaign.zones import endpoint_zone_name, zone_of
from dispatcher.errors import ConfigError
from dispatcher.model import Record

__all__ = [
    "FREQUENCIES",
    "CampaignSchedule",
    "Clock",
    "SystemClock",
    "WavePlan",
    "parse_instant",
    "sleep_until",
    "utc_iso",
]

FREQUENCIES = ("ONCE", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "EVENT", "IN_APP_EVENT")
_PERIODS = {"HOURLY": timedelta(hours=1), "DAILY": timedelta(days=1),
            "WEEKLY": timedelta(weeks=1)}  # fmt: skip
_OFFSET = re.compile(r"^(?:UTC)?(?:(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?)?$")
_OPENING_LEAD = timedelta(hours=26)
"""How much earlier than its own time a local-time occurrence can open (UTC+14 vs -12)."""
EARLIEST_ZONE = timezone(timedelta(hours=14))
"""UTC+14 (Kiritimati): where a wall-clock time comes first."""


def parse_instant(value: str, default_zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 time as an aware datetime (no offset: in ``default_zone``)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=default_zone)


def utc_iso(when: datetime) -> str:
    """An instant as Pinpoint prints times: UTC, milliseconds, ``Z``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_offset(value: str) -> timezone | None:
    """Pinpoint's ``Timezone`` (``UTC``, ``UTC+05:30``, ``UTC-04``, ``+08``) as an offset."""
    match = _OFFSET.match(value.strip().upper())
    if match is None:
        return None
    if match["sign"] is None:
        return UTC
    hours, minutes = int(match["h"]), int(match["m"] or 0)
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if match["sign"] == "-" else delta)


def add_months(when: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the month's last day if it is shorter)."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class CampaignSchedule:
    """A validated ``Schedule``; ``start`` is None for ``IMMEDIATE`` (or no Schedule)."""

    start: datetime | None
    end: datetime | None
    frequency: str
    local_time: bool
    starting_zone: tzinfo

    @classmethod
    def parse(cls, schedule: Mapping[str, Any] | None, *, file: str | None = None,
              key: str = "campaign.Schedule") -> CampaignSchedule:  # fmt: skip
        """Validate a ``Schedule`` table; ConfigError naming the key otherwise."""
        schedule = schedule or {}

        def error(name: str, message: str) -> ConfigError:
            return ConfigError(message, file=file, key=f"{key}.{name}")

        frequency = str(schedule.get("Frequency") or "ONCE").upper()
        if frequency not in FREQUENCIES:
            raise error("Frequency", f"must be one of {', '.join(FREQUENCIES)}, got "
                                     f"{schedule.get('Frequency')!r}")  # fmt: skip
        if frequency in ("EVENT", "IN_APP_EVENT"):
            raise error("Frequency", f"{frequency} campaigns are triggered by events, which "
                        "this command does not receive: run the campaign from your event "
                        "pipeline with a segment of the triggering endpoints (see README)")
        zone_text = schedule.get("Timezone") or schedule.get("TimeZone")
        zone: tzinfo | None = UTC
        if zone_text:
            zone = parse_offset(str(zone_text))
            if zone is None:
                raise error("Timezone", f"must be a UTC offset such as UTC, UTC+05:30 or "
                                        f"UTC-04, got {zone_text!r}")  # fmt: skip
        assert zone is not None
        start = cls._time(schedule.get("StartTime"), zone, error, "StartTime", immediate=True)
        end = cls._time(schedule.get("EndTime"), zone, error, "EndTime")
        if start is not None and end is not None and end <= start:
            raise error("EndTime", "must be after StartTime")
        local = schedule.get("IsLocalTime")
        if local is not None and not isinstance(local, bool):
            raise error("IsLocalTime", f"must be true or false, got {local!r}")
        if local and start is None:
            raise error("StartTime", "a local-time campaign needs a StartTime (a wall-clock "
                        "time to send at in each endpoint's time zone), not IMMEDIATE")
        if frequency != "ONCE" and start is None:
            raise error("StartTime", f"a {frequency} campaign needs a StartTime, not IMMEDIATE")
        starting = zone if zone_text else (start.tzinfo if start is not None else UTC)
        assert starting is not None
        return cls(start, end, frequency, bool(local), starting)

    @staticmethod
    def _time(value: Any, zone: tzinfo, error: Any, name: str, *,
              immediate: bool = False) -> datetime | None:  # fmt: skip
        if value is None or value == "" or (immediate and value == "IMMEDIATE"):
            return None
        if isinstance(value, datetime):  # TOML has datetimes of its own
            return value if value.tzinfo is not None else value.replace(tzinfo=zone)
        try:
            return parse_instant(str(value), zone)
        except ValueError:
            hint = "IMMEDIATE or " if immediate else ""
            raise error(name, f"must be {hint}an ISO 8601 time such as "
                              f"2026-12-01T09:00:00-05:00, got {value!r}") from None  # fmt: skip

    @property
    def recurring(self) -> bool:
        return self.frequency not in ("ONCE",)

    def ended(self, now: datetime) -> bool:
        return self.end is not None and now >= self.end

    def occurrences(self, since: datetime | None = None) -> Iterator[datetime]:
        """The occurrences from StartTime on (or from a little before ``since``: computed,
        not counted up to, so a years-old HOURLY campaign costs nothing), before EndTime.
        A local-time campaign's are wall-clock times in its starting zone."""
        if self.start is None:
            return
        first = self.start
        if self.local_time:
            # The wall-clock time, at the starting offset (Pinpoint's Timezone).
            first = first.replace(tzinfo=None).replace(tzinfo=self.starting_zone)
        k = 0
        if since is not None and self.frequency != "ONCE":
            # An occurrence opens up to 26 h before its time (local time at UTC+14).
            k = max(0, self._index_before(first, since - _OPENING_LEAD) - 1)
        while True:
            try:
                when = self._nth(first, k)
            except (OverflowError, ValueError):
                return  # past year 9999
            if self.end is not None and when >= self.end:
                return
            yield when
            if self.frequency == "ONCE":
                return
            k += 1

    def _nth(self, first: datetime, k: int) -> datetime:
        if self.frequency == "MONTHLY":
            return add_months(first, k)
        return first + _PERIODS.get(self.frequency, timedelta(0)) * k

    def _index_before(self, first: datetime, when: datetime) -> int:
        """The index of an occurrence at or before ``when`` (a lower bound)."""
        if when <= first:
            return 0
        if self.frequency == "MONTHLY":
            return (when.year - first.year) * 12 + when.month - first.month - 1
        return int((when - first) / _PERIODS[self.frequency])

    def opens(self, occurrence: datetime) -> datetime:
        """When an occurrence may start: at once, or for a local-time campaign when its
        wall-clock time comes in the earliest time zone."""
        if not self.local_time:
            return occurrence
        wall = occurrence.astimezone(self.starting_zone).replace(tzinfo=None)
        return wall.replace(tzinfo=EARLIEST_ZONE)

    def first(self) -> datetime | None:
        return next(self.occurrences(), None)

    def after(self, occurrence: datetime) -> datetime | None:
        """The occurrence that follows ``occurrence`` (None: the schedule ends first)."""
        return next((o for o in self.occurrences(occurrence) if o > occurrence), None)

    def due(self, now: datetime) -> datetime | None:
        """The latest occurrence that has opened by ``now`` (None: none yet)."""
        latest = None
        for when in self.occurrences(now):
            if self.opens(when) > now:
                break
            latest = when
        return latest

    def upcoming(self, now: datetime, n: int) -> list[datetime]:
        """The next ``n`` occurrences that open after ``now``."""
        out: list[datetime] = []
        for when in self.occurrences(now):
            if len(out) == n:
                break
            if self.opens(when) > now:
                out.append(when)
        return out

    def recent(self, now: datetime, n: int) -> list[datetime]:
        """The last ``n`` occurrences that have opened by ``now``, oldest first."""
        period = _PERIODS.get(self.frequency, timedelta(days=31))
        out: list[datetime] = []
        for when in self.occurrences(now - period * n):
            if self.opens(when) > now:
                break
            out.append(when)
        return out[-n:] if n else []

    def local_due(self, occurrence: datetime, zone_name: object) -> datetime | None:
        """When an endpoint in ``zone_name`` gets ``occurrence`` (local-time campaigns):
        its wall-clock time in that zone; None for a missing or unknown time zone."""
        zone = zone_of(zone_name)
        if zone is None:
            return None
        wall = occurrence.astimezone(self.starting_zone).replace(tzinfo=None)
        when = wall.replace(tzinfo=zone)
        # A wall-clock time skipped by a DST change does not round-trip: send at the
        # first valid instant after it.
        if when.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
            when = (wall + timedelta(hours=1)).replace(tzinfo=zone)
        return when


class Clock(Protocol):
    """Where a run reads the time and sleeps (tests pass one they control)."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


async def sleep_until(
    when: datetime,
    clock: Clock,
    *,
    stop: anyio.Event | None = None,
    show: Callable[[float], None] | None = None,
    step: float = 1.0,
) -> bool:
    """Sleep until ``when``, calling ``show(seconds left)`` every ``step``; False when
    ``stop`` was set first (checked every step, so Ctrl-C ends a long wait at once)."""
    while True:
        left = (when - clock.now()).total_seconds()
        if left <= 0:
            return True
        if stop is not None and stop.is_set():
            return False
        if show is not None:
            show(left)
        await clock.sleep(min(left, step))


@dataclass(slots=True)
class Wave:
    """One send time of a local-time occurrence and who is in it."""

    due: datetime
    count: int = 0
    zones: tuple[str, ...] = ()


class WavePlan:
    """Which wave each endpoint of a local-time occurrence is sent in.

    Filled by the planning pass (``place``, per admitted record), then asked by each
    wave's pass (``skip_for``): a line is dispatched in exactly one wave. Costs 2 bytes
    per line of the segment, whatever the number of waves. ``immediate`` (``--now``)
    puts every endpoint with a valid time zone in one wave, at once.
    """

    __slots__ = ("_lines", "_waves", "_zones", "immediate", "occurrence", "schedule", "start")

    def __init__(self, schedule: CampaignSchedule, occurrence: datetime, start: datetime,
                 *, immediate: bool = False) -> None:  # fmt: skip
        self.schedule = schedule
        self.occurrence = occurrence
        self.start = start
        """When the plan was made: earlier local times are sent at once (late)."""
        self.immediate = immediate
        self._lines = array("H")
        self._waves: list[Wave] = []
        self._zones: dict[str | None, int | None] = {}

    def _wave_of(self, name: str | None) -> int | None:
        try:
            return self._zones[name]
        except KeyError:
            pass
        due = self.schedule.local_due(self.occurrence, name)
        index = None
        if due is not None:
            due = self.start if self.immediate else max(due, self.start)
            index = next((i for i, w in enumerate(self._waves) if w.due == due), None)
            if index is None:
                index = len(self._waves)
                self._waves.append(Wave(due))
            wave = self._waves[index]
            if len(wave.zones) < 3 and name is not None:
                wave.zones += (name,)
        if len(self._zones) < 4096:
            self._zones[name] = index
        return index

    def place(self, record: Record) -> bool:
        """Put the record in its wave; False when it has no valid time zone."""
        name = endpoint_zone_name(record.definition)
        index = self._wave_of(name if isinstance(name, str) else None)
        if index is None:
            return False
        lines = self._lines
        if record.line >= len(lines):
            lines.frombytes(bytes(2 * max(record.line + 1 - len(lines), len(lines), 1024)))
        lines[record.line] = index + 1
        self._waves[index].count += 1
        return True

    def waves(self) -> list[tuple[int, Wave]]:
        """(wave number, wave) for every wave with endpoints in it, earliest first."""
        return sorted(((i, w) for i, w in enumerate(self._waves) if w.count),
                      key=lambda iw: iw[1].due)  # fmt: skip

    def skip_for(self, index: int) -> Callable[[int], bool]:
        """A ``skip`` predicate that lets only wave ``index``'s lines through."""
        lines, mark = self._lines, index + 1

        def skip(line: int) -> bool:
            return line >= len(lines) or lines[line] != mark

        return skip
