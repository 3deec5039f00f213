"""Quiet time (``Schedule.QuietTime`` over ``[project] QuietTime``).

Applied in the endpoint's ``Demographic.Timezone`` (an IANA name, via zoneinfo and the
``tzdata`` package). An endpoint without a valid time zone is never held: Pinpoint's
rule. Times are compared at minute resolution, both ends included, as Pinpoint words it
("later than or equal to Start", "earlier than or equal to End"): with Start 22:00 and
End 07:00 an endpoint is held from 22:00:00 to 07:00:59 local time, and receives
messages again from 07:01:00. A window with Start > End crosses midnight; Start == End
holds for that one minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from dispatcher.campaign.zones import zone_of
from dispatcher.config.model import Campaign, Project, Settings
from dispatcher.errors import ConfigError
from dispatcher.model import Definition

__all__ = ["QuietTime"]


_ZONE_CACHE_MAX = 4096
"""Bound on remembered Timezone strings (valid names are ~600; the rest is garbage)."""


def _minute_of_day(value: str) -> int | None:
    hh, sep, mm = value.partition(":")
    if not (sep and len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()):
        return None
    h, m = int(hh), int(mm)
    return h * 60 + m if h <= 23 and m <= 59 else None


class QuietTime:
    """A quiet-time window, asked per endpoint: ``holds(definition, now)``.

    Per-endpoint cost is two dict lookups: the verdict is cached per time zone for the
    current UTC minute (every zone in use today has a whole-minute offset, so the local
    minute is the same for the whole UTC minute).
    """

    __slots__ = ("_minute", "_verdicts", "end", "start")

    def __init__(self, start: str, end: str) -> None:
        s, e = _minute_of_day(start), _minute_of_day(end)
        if s is None or e is None:
            bad = start if s is None else end
            raise ValueError(f"quiet time must be HH:MM (24-hour), got {bad!r}")
        self.start, self.end = s, e
        self._verdicts: dict[str, bool] = {}
        self._minute = -1

    @classmethod
    def resolve(
        cls, campaign: Campaign, project: Project, file: str | None = None
    ) -> QuietTime | None:
        """The campaign's ``Schedule.QuietTime`` if it sets one, else the project default.

        A campaign QuietTime with neither Start nor End (``{}`` or empty strings in
        get-campaign output) does not switch the project default off.
        """
        schedule = campaign.schedule or {}
        qt = schedule.get("QuietTime") if isinstance(schedule, Mapping) else None
        key = "campaign.Schedule.QuietTime"
        if qt is not None and not isinstance(qt, Mapping):
            raise ConfigError(f"expected a table, got {type(qt).__name__}", file=file, key=key)
        if qt and (qt.get("Start") or qt.get("End")):
            for name in ("Start", "End"):
                value = qt.get(name)
                if not isinstance(value, str) or _minute_of_day(value) is None:
                    raise ConfigError(
                        f"must be HH:MM (24-hour), got {value!r}", file=file, key=f"{key}.{name}"
                    )
            return cls(qt["Start"], qt["End"])
        if project.quiet_time:
            return cls(project.quiet_time["Start"], project.quiet_time["End"])
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> QuietTime | None:
        return cls.resolve(settings.campaign, settings.project, settings.file)

    def zone(self, name: str) -> ZoneInfo | None:
        """The ZoneInfo for a Timezone string, or None if it is not a valid IANA name."""
        return zone_of(name)

    def covers(self, minute_of_day: int) -> bool:
        """Whether a local minute of the day (0..1439) is inside the window."""
        if self.start <= self.end:
            return self.start <= minute_of_day <= self.end
        return minute_of_day >= self.start or minute_of_day <= self.end

    def holds(self, definition: Definition, now: datetime) -> bool:
        """Whether the endpoint is in its quiet time at ``now`` (an aware datetime)."""
        demographic = definition.get("Demographic")
        if not isinstance(demographic, dict):
            return False
        name = demographic.get("Timezone")
        if not isinstance(name, str) or not name:
            return False
        if now.tzinfo is None:
            raise ValueError("QuietTime.holds needs an aware datetime (e.g. datetime.now(UTC))")
        minute = int(now.timestamp() // 60)
        if minute != self._minute:
            self._verdicts.clear()
            self._minute = minute
        verdict = self._verdicts.get(name)
        if verdict is None:
            zone = self.zone(name)
            if zone is None:
                verdict = False
            else:
                local = now.astimezone(zone)
                verdict = self.covers(local.hour * 60 + local.minute)
            if len(self._verdicts) < _ZONE_CACHE_MAX:
                self._verdicts[name] = verdict
        return verdict

    def __repr__(self) -> str:
        s, e = divmod(self.start, 60), divmod(self.end, 60)
        return f"QuietTime({s[0]:02d}:{s[1]:02d}-{e[0]:02d}:{e[1]:02d})"
