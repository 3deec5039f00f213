"""Campaign semantics applied per endpoint: A/B treatments and holdout, quiet time,
MaximumDuration, and the Daily / Total caps.

Each rule is a small value object built once per run from the settings and asked once
per endpoint, so everything here is cheap on the hot path (millions of endpoints).

A/B treatments and holdout (``HoldoutPercent``, ``TreatmentName``, ``AdditionalTreatments``)
    An endpoint's place is a bucket 0..9999 taken from a BLAKE2b hash of the campaign id
    and the endpoint id: the same endpoint lands in the same place on every run, in every
    process, on every machine (Python's ``hash()`` is salted per process and is never
    used). Buckets are laid out as ``[holdout | treatment 1 | ... | treatment n | main]``:
    the holdout takes ``HoldoutPercent`` % of the segment, each additional treatment its
    ``SizePercent`` % *of the whole segment*, and the main treatment (TreatmentId "0") the
    rest, so ``HoldoutPercent + sum(SizePercent)`` may not exceed 100. TreatmentIds are
    "1".."4" by position in ``AdditionalTreatments`` (Pinpoint allows four); a
    treatment's own ``Id`` is accepted and ignored. A treatment without a
    ``MessageConfiguration`` inherits the campaign's; one with its own uses it *as a
    whole* (no message-by-message merge) and must have a message for every channel the
    campaign sends. A treatment's ``Schedule`` is accepted and ignored (a run has one
    schedule, the campaign's). A treatment's ``TemplateConfiguration`` is merged into its
    messages when the config is read (``dispatcher.templates``).

Quiet time (``Schedule.QuietTime`` over ``[project] QuietTime``)
    Applied in the endpoint's ``Demographic.Timezone`` (an IANA name, via zoneinfo and the
    ``tzdata`` package). An endpoint without a valid time zone is never held: Pinpoint's
    rule. Times are compared at minute resolution, both ends included, as Pinpoint words
    it ("later than or equal to Start", "earlier than or equal to End"): with Start 22:00
    and End 07:00 an endpoint is held from 22:00:00 to 07:00:59 local time, and receives
    messages again from 07:01:00. A window with Start > End crosses midnight; Start ==
    End holds for that one minute.

MaximumDuration
    An endpoint not sent within ``MaximumDuration`` seconds after the run's start ends
    ``EXPIRED`` (``Expiry``).

Limits: Daily and Total caps
    The campaign's ``Limits`` override the project's *field by field*: a field the
    campaign leaves unset (absent or 0) comes from ``[project] Limits``. A cap of 0 or
    unset means no cap. ``Daily`` counts every campaign of the project that sent to the
    endpoint in the last 24 hours (a rolling window); ``Total`` counts this campaign's
    sends to the endpoint over all its runs. An endpoint whose count has reached the cap
    ends ``TOTAL_CAP`` (checked first: it will not pass in a later run either) or
    ``DAILY_CAP``. ``Session`` has no meaning without app sessions and is ignored.
    ``cap_check`` turns the ledger's send history into a batch check for the pipeline.
"""

from __future__ import annotations

import hashlib
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatcher.config import MESSAGE_KEYS, Campaign, Limits, Project, Settings
from dispatcher.errors import ConfigError
from dispatcher.model import Definition, Outcome, Record, Status

__all__ = [
    "BUCKETS",
    "DAILY_WINDOW",
    "MAX_ADDITIONAL_TREATMENTS",
    "Expiry",
    "QuietTime",
    "Treatment",
    "Treatments",
    "bucket",
    "cap_check",
    "cap_status",
    "effective_limits",
]

BUCKETS = 10_000
"""Assignment resolution: 0.01 % of the segment per bucket."""

MAX_ADDITIONAL_TREATMENTS = 4
"""Pinpoint allows up to four additional treatments (TreatmentIds "1".."4")."""

DAILY_WINDOW = timedelta(hours=24)
"""The Daily cap's window: ask the ledger for sends ``since = now - DAILY_WINDOW``."""

TREATMENT_KEYS = frozenset(
    {"Id", "SizePercent", "MessageConfiguration", "Schedule", "TemplateConfiguration",
     "TreatmentName", "TreatmentDescription", "CustomDeliveryConfiguration", "State"}
)  # fmt: skip
"""Keys of an AdditionalTreatments item (``State`` is read-only get-campaign output)."""


# --------------------------------------------------------------------------------------
# A/B treatments and holdout
# --------------------------------------------------------------------------------------


def _campaign_prefix(campaign_id: str) -> bytes:
    return campaign_id.encode("utf-8", "surrogatepass") + b"\x00"


def bucket(campaign_id: str, endpoint_id: str) -> int:
    """The endpoint's stable bucket 0..BUCKETS-1 for this campaign.

    ``int(BLAKE2b-64(utf8(campaign_id) + b"\\x00" + utf8(endpoint_id)), big-endian) % 10000``:
    reproducible anywhere (e.g. to find an endpoint's treatment in SQL or another language).
    """
    digest = hashlib.blake2b(
        _campaign_prefix(campaign_id) + endpoint_id.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Treatment:
    """One treatment of the campaign: "0" is the campaign's own, "1".."4" additional."""

    id: str
    size_percent: int
    message_configuration: Mapping[str, Any]
    name: str | None = None
    description: str | None = None
    custom_delivery: Mapping[str, Any] | None = None


class Treatments:
    """Assigns endpoints to the holdout or a treatment; holds each treatment's messages."""

    __slots__ = ("_campaign", "_hasher", "_targets", "_uppers", "campaign_id",
                 "holdout_percent", "treatments")  # fmt: skip

    def __init__(
        self, campaign: Campaign, holdout_percent: int, treatments: list[Treatment]
    ) -> None:
        self._campaign = campaign
        self.campaign_id = campaign.id
        self.holdout_percent = holdout_percent
        self.treatments = {t.id: t for t in treatments}
        # Upper bucket bound (exclusive) of each segment of the layout, in order.
        bounds: list[tuple[int, str | None]] = [(holdout_percent * BUCKETS // 100, None)]
        edge = bounds[0][0]
        for t in treatments:
            if t.id == "0":
                continue
            edge += t.size_percent * BUCKETS // 100
            bounds.append((edge, t.id))
        bounds.append((BUCKETS, "0"))
        self._uppers = [upper for upper, _ in bounds]
        self._targets = [target for _, target in bounds]
        # ``bucket()``'s hash with the campaign part absorbed once; copied per endpoint.
        self._hasher = hashlib.blake2b(_campaign_prefix(campaign.id), digest_size=8)

    @property
    def is_split(self) -> bool:
        """Whether any endpoint can land outside the main treatment."""
        return bool(self.holdout_percent) or len(self.treatments) > 1

    @classmethod
    def from_campaign(
        cls, campaign: Campaign, file: str | None = None, *, key_prefix: str = "campaign"
    ) -> Treatments:
        """Validate the campaign's holdout and treatments; errors name ``key_prefix.Key``."""

        def error(key: str, message: str) -> ConfigError:
            return ConfigError(message, file=file, key=f"{key_prefix}.{key}" if key_prefix else key)

        holdout = campaign.holdout_percent
        if not 0 <= holdout <= 100:
            raise error("HoldoutPercent", f"must be between 0 and 100, got {holdout}")
        items = campaign.additional_treatments
        if len(items) > MAX_ADDITIONAL_TREATMENTS:
            raise error(
                "AdditionalTreatments",
                f"at most {MAX_ADDITIONAL_TREATMENTS} additional treatments, got {len(items)}",
            )
        parsed: list[Treatment] = []
        total = holdout
        for i, item in enumerate(items):
            parsed.append(_treatment(campaign, item, i, error))
            total += parsed[-1].size_percent
            if total > 100:
                raise error(
                    f"AdditionalTreatments[{i}].SizePercent",
                    f"HoldoutPercent ({holdout}) plus the SizePercent of treatments 1..{i + 1} "
                    f"is {total}, over 100",
                )
        main = Treatment(
            "0", 100 - total, campaign.message_configuration, campaign.treatment_name,
            None, campaign.custom_delivery,
        )  # fmt: skip
        return cls(campaign, holdout, [main, *parsed])

    @classmethod
    def from_settings(cls, settings: Settings) -> Treatments:
        return cls.from_campaign(settings.campaign, settings.file)

    @property
    def ids(self) -> list[str]:
        """TreatmentIds in use, "0" first."""
        return sorted(self.treatments)

    def assign(self, endpoint_id: str) -> str | None:
        """The endpoint's TreatmentId, or None if it is in the holdout."""
        h = self._hasher.copy()
        h.update(endpoint_id.encode("utf-8", "surrogatepass"))
        b = int.from_bytes(h.digest(), "big") % BUCKETS
        # The first segment whose (exclusive) upper bound is above the bucket.
        return self._targets[bisect_right(self._uppers, b)]

    def assign_record(self, record: Record) -> Outcome | None:
        """Pipeline form of ``assign``: set ``record.treatment``; HOLDOUT is an outcome."""
        if record.endpoint_id is None:
            return None
        treatment = self.assign(record.endpoint_id)
        record.treatment = treatment
        if treatment is None:
            return Outcome.of(
                record, Status.HOLDOUT, f"in the campaign's {self.holdout_percent}% holdout"
            )
        return None

    def message_configurations(self) -> dict[str, Mapping[str, Any]]:
        """TreatmentId -> the campaign MessageConfiguration that treatment sends."""
        return {tid: t.message_configuration for tid, t in sorted(self.treatments.items())}

    def campaign_for(self, treatment_id: str) -> Campaign:
        """The campaign as this treatment sends it (its messages and custom delivery)."""
        t = self.treatments[treatment_id]
        if treatment_id == "0":
            return self._campaign
        return replace(
            self._campaign,
            message_configuration=t.message_configuration,
            treatment_name=t.name,
            custom_delivery=t.custom_delivery,
        )

    def message_for(self, treatment_id: str, channel: str) -> Mapping[str, Any] | None:
        """The treatment's message object for a ChannelType (``Campaign.message_for``)."""
        return self.campaign_for(treatment_id).message_for(channel)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t.id}={t.size_percent}%" for t in self.treatments.values())
        return f"Treatments(holdout={self.holdout_percent}%, {sizes})"


def _treatment(campaign: Campaign, item: Any, i: int, error: Any) -> Treatment:
    where = f"AdditionalTreatments[{i}]"
    if not isinstance(item, Mapping):
        raise error(where, f"expected a table, got {type(item).__name__}")
    for key in item:
        if key not in TREATMENT_KEYS:
            raise error(
                f"{where}.{key}", f"unknown key; use one of {', '.join(sorted(TREATMENT_KEYS))}"
            )
    size = item.get("SizePercent")
    if isinstance(size, bool) or not isinstance(size, int):
        raise error(f"{where}.SizePercent", "is required: an integer percentage of the segment")
    if not 0 <= size <= 100:
        raise error(f"{where}.SizePercent", f"must be between 0 and 100, got {size}")
    for key in ("TreatmentName", "TreatmentDescription", "Id"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise error(f"{where}.{key}", f"expected a string, got {type(value).__name__}")
    for key in ("Schedule", "CustomDeliveryConfiguration", "TemplateConfiguration"):
        value = item.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise error(f"{where}.{key}", f"expected a table, got {type(value).__name__}")
    mc = item.get("MessageConfiguration")
    if mc:
        if not isinstance(mc, Mapping):
            raise error(
                f"{where}.MessageConfiguration", f"expected a table, got {type(mc).__name__}"
            )
        for key, message in mc.items():
            if key not in MESSAGE_KEYS:
                raise error(f"{where}.MessageConfiguration.{key}", "unknown message key")
            if not isinstance(message, Mapping):
                raise error(f"{where}.MessageConfiguration.{key}", "expected a table")
        custom = item.get("CustomDeliveryConfiguration") or campaign.custom_delivery
        mine = replace(campaign, message_configuration=mc, custom_delivery=custom).channels
        missing = sorted(campaign.channels - mine)
        if missing:
            raise error(
                f"{where}.MessageConfiguration",
                f"has no message for {', '.join(missing)}, which the campaign sends; give one "
                "or leave MessageConfiguration out to inherit the campaign's",
            )
        messages: Mapping[str, Any] = dict(mc)
    else:
        messages = campaign.message_configuration
    return Treatment(
        str(i + 1), size, messages, item.get("TreatmentName"), item.get("TreatmentDescription"),
        item.get("CustomDeliveryConfiguration") or campaign.custom_delivery,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Quiet time
# --------------------------------------------------------------------------------------

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

    __slots__ = ("_minute", "_verdicts", "_zones", "end", "start")

    def __init__(self, start: str, end: str) -> None:
        s, e = _minute_of_day(start), _minute_of_day(end)
        if s is None or e is None:
            bad = start if s is None else end
            raise ValueError(f"quiet time must be HH:MM (24-hour), got {bad!r}")
        self.start, self.end = s, e
        self._zones: dict[str, ZoneInfo | None] = {}
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
        try:
            return self._zones[name]
        except KeyError:
            pass
        try:
            zone: ZoneInfo | None = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
            zone = None
        if len(self._zones) < _ZONE_CACHE_MAX:
            self._zones[name] = zone
        return zone

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


# --------------------------------------------------------------------------------------
# MaximumDuration
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Limits: Daily and Total caps
# --------------------------------------------------------------------------------------


def effective_limits(campaign: Limits, project: Limits) -> Limits:
    """Campaign Limits over project Limits, field by field (unset or 0 inherits)."""
    return Limits(
        daily=campaign.daily or project.daily,
        total=campaign.total or project.total,
        session=campaign.session or project.session,
        messages_per_second=campaign.messages_per_second or project.messages_per_second,
        maximum_duration=campaign.maximum_duration or project.maximum_duration,
    )


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
