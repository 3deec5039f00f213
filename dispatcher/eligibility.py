"""Eligibility: which records may go to the hook, and why the others may not.

Checks run in this order, the first that applies decides: INVALID (unreadable record,
wrong types, unknown ChannelType, no Address), OPT_OUT (``OptOut=ALL``), INACTIVE
(``EndpointStatus=INACTIVE``), UNSUPPORTED_CHANNEL (the campaign has no message for the
ChannelType), DUPLICATE_ADDRESS (the same ChannelType+Address was already accepted
earlier in the run). Only accepted records claim their address, so an opted-out or
invalid twin never blocks a later, sendable one.
"""

from __future__ import annotations

from array import array
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, Protocol

from dispatcher.model import CHANNEL_TYPES, Outcome, Record, Status

_OBJECT_FIELDS = ("Demographic", "Location", "User", "Metrics")
_MASK64 = (1 << 64) - 1


class AddressSet:
    """A set of 64-bit address fingerprints in flat arrays: ~12 bytes per address.

    A Python ``set`` of 10 million keys costs ~700 MB; this costs ~120 MB. It is split
    in 256 open-addressing tables so that growing one never doubles the whole set's
    memory at once. Two different addresses share a fingerprint with probability about
    n^2 / 2^65 (3e-6 for 10 million addresses); that is the price of flat memory.
    """

    _PARTS = 256
    _INITIAL = 1024  # slots per part; a power of two

    def __init__(self) -> None:
        self._tables = [array("Q", bytes(8 * self._INITIAL)) for _ in range(self._PARTS)]
        self._counts = [0] * self._PARTS
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: object) -> bool:
        """Add ``key``; return False if it was already present."""
        h = hash(key) & _MASK64 or 1  # 0 marks an empty slot
        part = h & 0xFF
        table = self._tables[part]
        mask = len(table) - 1
        i = (h >> 8) & mask
        while True:
            slot = table[i]
            if slot == 0:
                break
            if slot == h:
                return False
            i = (i + 1) & mask
        table[i] = h
        self._len += 1
        self._counts[part] += 1
        if self._counts[part] * 4 > len(table) * 3:  # keep load <= 0.75
            self._grow(part)
        return True

    def _grow(self, part: int) -> None:
        old = self._tables[part]
        table = array("Q", bytes(16 * len(old)))
        mask = len(table) - 1
        for h in old:
            if h:
                i = (h >> 8) & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = h
        self._tables[part] = table


def structure_error(d: dict[str, Any]) -> str | None:
    """Why a definition is not a usable Pinpoint endpoint, or None."""
    ct = d.get("ChannelType")
    if ct is None:
        return "missing ChannelType"
    if not isinstance(ct, str) or ct not in CHANNEL_TYPES:
        return f"unknown ChannelType {ct!r}"
    addr = d.get("Address")
    if not isinstance(addr, str) or not addr.strip():
        return "missing Address" if addr in (None, "") else "Address must be a string"
    for key in ("OptOut", "EndpointStatus"):
        value = d.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} must be a string"
    for key in _OBJECT_FIELDS:
        value = d.get(key)
        if value is not None and not isinstance(value, dict):
            return f"{key} must be an object"
    attrs = d.get("Attributes")
    if attrs is not None and not _is_attribute_map(attrs):
        return "Attributes must map names to lists of strings"
    user = d.get("User")
    if user:
        ua = user.get("UserAttributes")
        if ua is not None and not _is_attribute_map(ua):
            return "User.UserAttributes must map names to lists of strings"
    return None


def _is_attribute_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, list) for v in value.values())


class Eligibility:
    """Decides, record by record and in segment order, what may go on to the hook."""

    def __init__(self, supported_channels: Collection[str], *, dedup: bool = True) -> None:
        self.supported = frozenset(supported_channels)
        # A fleet dedups through the shared ledger instead (Admission.claim_addresses).
        self.addresses = AddressSet() if dedup else None

    def check(self, record: Record) -> Outcome | None:
        """Return the record's terminal outcome, or None if it may proceed."""
        d = record.definition
        if record.error is not None or d is None:
            return Outcome.of(record, Status.INVALID, record.error or "unreadable record")
        error = structure_error(d)
        if error:
            return Outcome.of(record, Status.INVALID, error)
        if d.get("OptOut") == "ALL":
            return Outcome.of(record, Status.OPT_OUT, "endpoint opted out (OptOut=ALL)")
        if d.get("EndpointStatus") == "INACTIVE":
            return Outcome.of(record, Status.INACTIVE, "EndpointStatus is INACTIVE")
        ct = d["ChannelType"]
        if ct not in self.supported:
            return Outcome.of(
                record, Status.UNSUPPORTED_CHANNEL, f"the campaign has no message for {ct}"
            )
        if self.addresses is not None and not self.addresses.add(address_key(d)):
            return Outcome.of(record, Status.DUPLICATE_ADDRESS, duplicate_reason(ct))
        return None


def address_key(definition: dict[str, Any]) -> tuple[str, str]:
    """What makes two records the same destination: ChannelType and trimmed Address."""
    return definition["ChannelType"], definition["Address"].strip()


def duplicate_reason(channel: str) -> str:
    return f"{channel} address already targeted in this run"


class TreatmentAssigner(Protocol):
    def assign(self, endpoint_id: str) -> str | None:
        """The endpoint's TreatmentId, or None when it falls in the holdout."""


class QuietWindow(Protocol):
    def holds(self, definition: dict[str, Any], now: datetime) -> bool:
        """Whether the endpoint is in its quiet time at ``now``."""


class WavePlanner(Protocol):
    def place(self, record: Record) -> bool:
        """Put the record in its local-time wave; False without a valid time zone."""


NO_TIMEZONE_REASON = (
    "local-time campaign: the endpoint has no valid Demographic.Timezone (an IANA name "
    "such as America/New_York)"
)

CapCheck = Callable[[list[Record]], Awaitable[dict[str, Outcome]]]
"""Per-endpoint frequency caps for a batch: endpoint id -> DAILY_CAP / TOTAL_CAP outcome."""

AddressClaims = Callable[[list[tuple[str, int]]], Awaitable[list[bool]]]
"""Fleet duplicate detection: (address fingerprint, line) -> whether this line holds it."""


class Admission:
    """All the per-record decisions made before the hook, in Pinpoint's order.

    Eligibility (INVALID, OPT_OUT, INACTIVE, UNSUPPORTED_CHANNEL, DUPLICATE_ADDRESS),
    then the A/B holdout (HOLDOUT), quiet time (QUIET_TIME) and the per-endpoint caps
    (DAILY_CAP, TOTAL_CAP). Every record leaves with an outcome or as admitted.

    The planning pass of a local-time campaign passes ``plan``: a record that passed
    the holdout is placed in its wave (neither settled nor admitted: its wave's pass
    admits it, with quiet time and caps checked then, at send time) or, without a valid
    time zone, ends NO_TIMEZONE.
    """

    def __init__(
        self,
        eligibility: Eligibility,
        *,
        treatments: TreatmentAssigner | None = None,
        quiet: QuietWindow | None = None,
        caps: CapCheck | None = None,
        claim_addresses: AddressClaims | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        plan: WavePlanner | None = None,
    ) -> None:
        self.eligibility = eligibility
        self.treatments = treatments
        self.quiet = quiet
        self.caps = caps
        self.claim_addresses = claim_addresses
        self.clock = clock
        self.plan = plan

    async def __call__(
        self, records: list[Record], skip: Callable[[int], bool] | None = None
    ) -> tuple[list[Outcome], list[Record]]:
        """Settle or admit each record; ``skip`` names lines settled earlier (resume) or
        not selected (retry): their eligibility is replayed, in segment order, so that
        duplicate-address decisions come out exactly as in the first attempt."""
        settled: list[Outcome] = []
        admitted: list[Record] = []
        treatments, quiet, plan = self.treatments, self.quiet, self.plan
        now = self.clock() if quiet is not None and plan is None else None
        for record in records:
            if skip is not None and skip(record.line):
                self.eligibility.check(record)
                continue
            if treatments is not None and record.endpoint_id is not None:
                record.treatment = treatments.assign(record.endpoint_id)
            outcome = self.eligibility.check(record)
            if outcome is None and record.treatment is None and record.endpoint_id is not None:
                outcome = Outcome.of(record, Status.HOLDOUT, "in the campaign's holdout group")
            if outcome is None and plan is not None:
                if plan.place(record):
                    continue  # its wave's pass admits it
                outcome = Outcome.of(record, Status.NO_TIMEZONE, NO_TIMEZONE_REASON)
            if outcome is None and quiet is not None and now is not None:
                if quiet.holds(record.definition or {}, now):
                    outcome = Outcome.of(record, Status.QUIET_TIME, "in the endpoint's quiet time")
            if outcome is None:
                admitted.append(record)
            else:
                settled.append(outcome)
        if self.claim_addresses is not None and admitted:
            held = await self.claim_addresses(
                [("\x1f".join(address_key(r.definition or {})), r.line) for r in admitted]
            )
            settled.extend(
                Outcome.of(r, Status.DUPLICATE_ADDRESS, duplicate_reason(r.channel_type or ""))
                for r, ok in zip(admitted, held, strict=True)
                if not ok
            )
            admitted = [r for r, ok in zip(admitted, held, strict=True) if ok]
        if self.caps is not None and admitted:
            capped = await self.caps(admitted)
            if capped:
                # One outcome per *record*: two records may share an endpoint id.
                kept = []
                for r in admitted:
                    cap = capped.get(r.endpoint_id or "")
                    if cap is None:
                        kept.append(r)
                    else:
                        settled.append(Outcome.of(r, cap.status, cap.reason))
                admitted = kept
        return settled, admitted
