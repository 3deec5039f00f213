"""``SegmentDimensions`` objects read from JSON into ``Dimensions`` values.

Unknown keys are errors everywhere (a misspelt dimension would otherwise widen the
segment silently); ``DimensionType`` and ``AttributeType`` default to INCLUSIVE, as in
Pinpoint's API where both are optional.
"""

from __future__ import annotations

from dispatcher.segments.definition._instants import parse_instant
from dispatcher.segments.definition._model import (
    ATTRIBUTE_TYPES,
    DATE_TYPES,
    DEMOGRAPHIC_FIELDS,
    DURATIONS,
    OPERATORS,
    RECENCY_TYPES,
    SET_TYPES,
    AttributeCriterion,
    Dimensions,
    GpsCriterion,
    MetricCriterion,
    RecencyCriterion,
    SetCriterion,
)
from dispatcher.segments.definition._node import Node

DIMENSION_KEYS = ("Attributes", "Behavior", "Demographic", "Location", "Metrics", "UserAttributes")


def read_dimensions(node: Node, warnings: list[str]) -> Dimensions:
    """One ``SegmentDimensions`` object (absent: no criteria)."""
    if not node.present():
        return Dimensions()
    node.only(DIMENSION_KEYS, "dimension")
    sets: list[SetCriterion] = []
    demographic = node.member("Demographic")
    if demographic.present():
        demographic.only(DEMOGRAPHIC_FIELDS, "Demographic dimension")
        for name, item in demographic.items():
            parent, field = DEMOGRAPHIC_FIELDS[name]
            sets.append(read_set(item, parent, field))
            if name == "DeviceType":
                warnings.append(
                    f"{item.file}: {item.key}: Pinpoint endpoints carry no "
                    "Demographic.DeviceType; only records with one can match"
                )
    gps = None
    location = node.member("Location")
    if location.present():
        location.only(("Country", "GPSPoint"), "Location dimension")
        country = location.member("Country")
        if country.present():
            sets.append(read_set(country, "Location", "Country"))
        point = location.member("GPSPoint")
        if point.present():
            gps = read_gps(point)
    attributes = [read_attribute(item, False, name) for name, item in _map(node, "Attributes")]
    attributes += [read_attribute(item, True, name) for name, item in _map(node, "UserAttributes")]
    metrics = [read_metric(item, name) for name, item in _map(node, "Metrics")]
    recency = None
    behavior = node.member("Behavior")
    if behavior.present():
        behavior.only(("Recency",), "Behavior dimension")
        if behavior.member("Recency").present():
            recency = read_recency(behavior.member("Recency"))
    return Dimensions(sets=tuple(sets), attributes=tuple(attributes), metrics=tuple(metrics),
                      gps=gps, recency=recency)  # fmt: skip


def _map(node: Node, name: str) -> list[tuple[str, Node]]:
    child = node.member(name)
    return list(child.items()) if child.present() else []


def read_set(node: Node, parent: str | None, field: str) -> SetCriterion:
    node.only(("DimensionType", "Values"))
    kind = node.member("DimensionType").word(SET_TYPES, "INCLUSIVE")
    values = node.member("Values").strings()
    # Matching ignores case: channel, platform and make names differ only in case
    # between SDKs and consoles ("android"/"Android", "APNS"/"apns").
    folded = frozenset(v.casefold() for v in values)
    return SetCriterion(parent, field, kind == "INCLUSIVE", folded)


def read_attribute(node: Node, user: bool, name: str) -> AttributeCriterion:
    node.only(("AttributeType", "Values"))
    kind = node.member("AttributeType").word(ATTRIBUTE_TYPES, "INCLUSIVE")
    values_node = node.member("Values")
    values = values_node.strings()
    if kind not in DATE_TYPES:
        return AttributeCriterion(user, name, kind, values)
    instants: list[float] = []
    for item in values_node.elements():
        seconds = parse_instant(item.string())
        if seconds is None:
            raise item.error(f"{kind} needs ISO 8601 instants "
                             f"(e.g. 2024-05-01T00:00:00Z), got {item.value!r}")  # fmt: skip
        instants.append(seconds)
    if kind == "BETWEEN":
        if len(instants) != 2:
            raise values_node.error(f"BETWEEN needs exactly two instants, got {len(instants)}")
        if instants[0] > instants[1]:
            raise values_node.error("BETWEEN needs the earlier instant first")
    return AttributeCriterion(user, name, kind, values, tuple(instants))


def read_metric(node: Node, name: str) -> MetricCriterion:
    node.only(("ComparisonOperator", "Value"))
    operator = node.member("ComparisonOperator").word(OPERATORS)
    return MetricCriterion(name, operator, node.member("Value").number())


def read_gps(node: Node) -> GpsCriterion:
    node.only(("Coordinates", "RangeInKilometers"))
    coordinates = node.member("Coordinates")
    if not coordinates.present():
        raise coordinates.error("is required (Latitude and Longitude)")
    coordinates.only(("Latitude", "Longitude"))
    latitude = _within(coordinates.member("Latitude"), 90.0)
    longitude = _within(coordinates.member("Longitude"), 180.0)
    range_node = node.member("RangeInKilometers")
    if not range_node.present():
        # Pinpoint's model makes it optional but names no default: a point without a
        # range is almost certainly a mistake, so say so rather than guess.
        raise range_node.error("is required: the distance from Coordinates to include")
    range_km = range_node.number()
    if range_km < 0:
        raise range_node.error(f"must be >= 0, got {range_km:g}")
    return GpsCriterion(latitude, longitude, range_km)


def _within(node: Node, limit: float) -> float:
    value = node.number()
    if not -limit <= value <= limit:
        raise node.error(f"must be between {-limit:g} and {limit:g}, got {value:g}")
    return value


def read_recency(node: Node) -> RecencyCriterion:
    node.only(("Duration", "RecencyType"))
    duration = node.member("Duration").word(tuple(DURATIONS))
    kind = node.member("RecencyType").word(RECENCY_TYPES)
    return RecencyCriterion(kind == "ACTIVE", DURATIONS[duration])


__all__ = ["DIMENSION_KEYS", "read_dimensions"]
