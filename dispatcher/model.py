"""The values that flow through the pipeline.

Endpoint definitions stay plain ``dict`` objects, exactly as decoded from the segment
(orjson): they are what hooks receive and return, and wrapping millions of them in
richer objects would cost more than it explains. The small classes here carry them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Definition = dict[str, Any]
"""An endpoint definition: Pinpoint's Endpoint shape without ``Id`` (the id is the key)."""


class Status(StrEnum):
    """Terminal outcome of one segment record. The names are a fixed interface."""

    SUCCESS = "SUCCESS"
    FILTERED = "FILTERED"
    OPT_OUT = "OPT_OUT"
    INACTIVE = "INACTIVE"
    UNSUPPORTED_CHANNEL = "UNSUPPORTED_CHANNEL"
    INVALID = "INVALID"
    DUPLICATE_ADDRESS = "DUPLICATE_ADDRESS"
    HOOK_FAILURE = "HOOK_FAILURE"
    TEMPORARY_FAILURE = "TEMPORARY_FAILURE"
    PERMANENT_FAILURE = "PERMANENT_FAILURE"
    THROTTLED = "THROTTLED"
    HOLDOUT = "HOLDOUT"
    QUIET_TIME = "QUIET_TIME"
    DAILY_CAP = "DAILY_CAP"
    TOTAL_CAP = "TOTAL_CAP"
    EXPIRED = "EXPIRED"
    NO_TIMEZONE = "NO_TIMEZONE"
    """A local-time campaign's endpoint without a valid ``Demographic.Timezone``."""


FAILURE_STATUSES = frozenset(
    {Status.HOOK_FAILURE, Status.TEMPORARY_FAILURE, Status.PERMANENT_FAILURE, Status.THROTTLED}
)
"""Outcomes that mean "meant to be sent, and was not": they decide the run's exit code."""

CHANNEL_TYPES = frozenset(
    {
        "PUSH", "GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM",
        "SMS", "VOICE", "EMAIL", "BAIDU", "CUSTOM", "IN_APP",
    }
)  # fmt: skip
"""Pinpoint's ChannelType enum (Endpoint resource)."""

PUSH_CHANNELS = frozenset(
    {"GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM", "BAIDU"}
)

OVERRIDE_CHANNELS = PUSH_CHANNELS | {"SMS"}
"""Channels for which a hook's TitleOverride / BodyOverride is honoured (never EMAIL)."""


class Record:
    """One record of the segment source, valid or not, and where it came from.

    ``line`` is 1-based in the source (the CSV header not counted) and identifies the
    record for the outcome log and the ledger.
    """

    __slots__ = ("definition", "endpoint_id", "error", "line", "treatment")

    def __init__(
        self,
        line: int,
        endpoint_id: str | None,
        definition: Definition | None,
        error: str | None = None,
    ) -> None:
        self.line = line
        self.endpoint_id = endpoint_id
        self.definition = definition
        self.error = error
        # TreatmentId: "0" until A/B assignment; None for a record without an id.
        self.treatment: str | None = "0" if endpoint_id is not None else None

    @property
    def channel_type(self) -> str | None:
        d = self.definition
        if d is None:
            return None
        ct = d.get("ChannelType")
        return ct if isinstance(ct, str) else None

    def __repr__(self) -> str:
        return f"Record(line={self.line}, id={self.endpoint_id!r}, error={self.error!r})"


@dataclass(slots=True)
class Outcome:
    """The terminal outcome of one record: one line of ``outcomes.jsonl``."""

    line: int
    endpoint_id: str | None
    status: Status
    reason: str | None = None
    channel_type: str | None = None
    treatment_id: str | None = None
    message_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "EndpointId": self.endpoint_id,
            "Line": self.line,
            "Status": self.status.value,
            "Reason": self.reason,
            "ChannelType": self.channel_type,
            "TreatmentId": self.treatment_id,
        }

    @classmethod
    def of(cls, record: Record, status: Status, reason: str | None = None) -> Outcome:
        return cls(
            record.line, record.endpoint_id, status, reason, record.channel_type, record.treatment
        )


@dataclass(slots=True)
class Summary:
    """What a run returns and writes to ``summary.json``."""

    run_id: str
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    hook_invocations: int = 0
    started_at: str = ""
    finished_at: str = ""
    ignored_hook_ids: int = 0
    top_failures: list[tuple[str, str, int]] = field(default_factory=list)
    """The most frequent (status, reason, count) among failures, most frequent first."""
    dry_run: bool = False
    empty_variables: list[str] = field(default_factory=list)
    """Dry runs: ``"PATH: empty in N of M messages"`` per variable that rendered empty."""
    skipped_in_doubt: int = 0
    """Retry: records it did not dispatch because their send is in doubt (maybe sent)."""
    read: int = 0
    """Records read by this attempt (resume and retry replay settled ones too)."""
    elapsed: float = 0.0
    """Seconds this attempt took (for the rate shown in the closing tally)."""
    occurrence: str | None = None
    """The scheduled occurrence this run sent (ISO 8601), when the campaign has a StartTime."""
    scanned: int = 0
    """Records read from the source, in the segment or not (``Total`` counts those in it,
    with a segment definition; without one every record is, and the two are equal)."""

    @property
    def failures(self) -> int:
        """Records that ended HOOK_FAILURE, TEMPORARY_FAILURE, PERMANENT_FAILURE or THROTTLED."""
        return sum(n for status, n in self.by_status.items() if status in FAILURE_STATUSES)

    def failed_beyond(self, count: int = 0, *, percent: float | None = None) -> bool:
        """Whether failures exceed ``count`` records, or ``percent`` % of Total if given."""
        limit = self.total * percent / 100 if percent is not None else count
        return self.failures > limit

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "RunId": self.run_id,
            "Total": self.total,
            "Scanned": self.scanned,
            "ByStatus": dict(sorted(self.by_status.items())),
            "Failures": self.failures,
            "TopFailures": [{"Status": st, "Reason": reason, "Count": n}
                            for st, reason, n in self.top_failures],
            "HookInvocations": self.hook_invocations,
            "IgnoredHookEndpoints": self.ignored_hook_ids,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.occurrence:
            data["Occurrence"] = self.occurrence
        if self.skipped_in_doubt:
            data["SkippedInDoubt"] = self.skipped_in_doubt
        if self.dry_run:
            data["DryRun"] = True
            data["EmptyVariables"] = self.empty_variables
        return data
