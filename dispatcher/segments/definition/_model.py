"""A segment definition once read and checked: small frozen values, no raw JSON left.

Everything a predicate needs is decided here at load time (dates parsed, values
case-folded where matching ignores case, source segments resolved), so compiling is
infallible and evaluation never parses the definition again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Predicate: TypeAlias = Callable[[dict[str, Any], str], bool]

SET_TYPES = ("INCLUSIVE", "EXCLUSIVE")
ATTRIBUTE_TYPES = ("INCLUSIVE", "EXCLUSIVE", "CONTAINS", "BEFORE", "AFTER", "ON", "BETWEEN")
DATE_TYPES = frozenset({"BEFORE", "AFTER", "ON", "BETWEEN"})
OPERATORS = ("GREATER_THAN", "LESS_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL", "EQUAL")
DURATIONS = {"HR_24": 86_400, "DAY_7": 7 * 86_400, "DAY_14": 14 * 86_400, "DAY_30": 30 * 86_400}
RECENCY_TYPES = ("ACTIVE", "INACTIVE")
COMBINE = ("ALL", "ANY", "NONE")
SEGMENT_TYPES = ("DIMENSIONAL", "IMPORT")

# Demographic criteria and the endpoint field each reads: (object or None, field).
DEMOGRAPHIC_FIELDS: dict[str, tuple[str | None, str]] = {
    "AppVersion": ("Demographic", "AppVersion"),
    "Channel": (None, "ChannelType"),
    "DeviceType": ("Demographic", "DeviceType"),
    "Make": ("Demographic", "Make"),
    "Model": ("Demographic", "Model"),
    "Platform": ("Demographic", "Platform"),
}


@dataclass(frozen=True, slots=True)
class SetCriterion:
    """``Demographic.*`` or ``Location.Country``: the field's value, case-folded, is
    (INCLUSIVE) or is not (EXCLUSIVE) one of ``values`` (already case-folded)."""

    parent: str | None
    field: str
    inclusive: bool
    values: frozenset[str]


@dataclass(frozen=True, slots=True)
class AttributeCriterion:
    """``Attributes.NAME`` or ``User.UserAttributes.NAME``.

    ``values`` are the criterion's strings; ``instants`` are the same values as POSIX
    seconds (UTC) for the date types, parsed once at load.
    """

    user: bool
    name: str
    type: str
    values: tuple[str, ...]
    instants: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricCriterion:
    name: str
    operator: str
    value: float


@dataclass(frozen=True, slots=True)
class GpsCriterion:
    latitude: float
    longitude: float
    range_km: float


@dataclass(frozen=True, slots=True)
class RecencyCriterion:
    active: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class Dimensions:
    """One ``SegmentDimensions`` object: all of its criteria must hold (AND)."""

    sets: tuple[SetCriterion, ...] = ()
    attributes: tuple[AttributeCriterion, ...] = ()
    metrics: tuple[MetricCriterion, ...] = ()
    gps: GpsCriterion | None = None
    recency: RecencyCriterion | None = None

    @property
    def empty(self) -> bool:
        return not (self.sets or self.attributes or self.metrics or self.gps or self.recency)


@dataclass(frozen=True, slots=True)
class ImportedIds:
    """The members of an imported segment: endpoint ids, and user ids standing for every
    endpoint of that user."""

    path: str
    endpoint_ids: frozenset[str]
    user_ids: frozenset[str]

    def __len__(self) -> int:
        return len(self.endpoint_ids) + len(self.user_ids)


@dataclass(frozen=True, slots=True)
class Group:
    """One of ``SegmentGroups.Groups``: its base segments combined by ``source_type``,
    AND its dimension objects combined by ``type``."""

    type: str
    source_type: str
    sources: tuple[SegmentDefinition, ...]
    dimensions: tuple[Dimensions, ...]


@dataclass(frozen=True, slots=True, eq=False)
class SegmentDefinition:
    """A Pinpoint segment as ``aws pinpoint get-segment`` describes it, checked.

    Compile it once with ``compile(now=...)`` into a predicate over endpoint records.
    ``warnings`` are facts an operator should see (a substituted source-segment
    version, a criterion standard endpoints can't satisfy), one line each.
    """

    path: str
    id: str | None
    name: str | None
    version: int | None
    segment_type: str
    dimensions: Dimensions
    include: str = "ALL"
    groups: tuple[Group, ...] = ()
    imported: ImportedIds | None = None
    warnings: tuple[str, ...] = field(default=())
    files: tuple[str, ...] = field(default=())
    """Every file this definition was read from (its own, its base segments', id
    files), for a run to fingerprint: a changed file means a different segment."""

    def __repr__(self) -> str:
        return (f"SegmentDefinition(path={self.path!r}, id={self.id!r}, "
                f"version={self.version!r}, type={self.segment_type})")  # fmt: skip


__all__ = [
    "ATTRIBUTE_TYPES",
    "COMBINE",
    "DATE_TYPES",
    "DEMOGRAPHIC_FIELDS",
    "DURATIONS",
    "OPERATORS",
    "RECENCY_TYPES",
    "SEGMENT_TYPES",
    "SET_TYPES",
    "AttributeCriterion",
    "Dimensions",
    "GpsCriterion",
    "Group",
    "ImportedIds",
    "MetricCriterion",
    "RecencyCriterion",
    "SegmentDefinition",
    "SetCriterion",
]
