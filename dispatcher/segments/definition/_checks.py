"""One criterion -> one closure ``check(definition, endpoint_id) -> bool``.

These run once per record over exports of tens of millions of endpoints, so each is
written for speed: values fetched with ``dict.get`` and ``type(...) is``, criteria
pre-folded into sets and floats at load, no allocation on the common paths. Fields of
the wrong type count as absent; nothing here raises on any decoded JSON record.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from dispatcher.segments.definition._instants import InstantReader, canonical, utc_day
from dispatcher.segments.definition._model import (
    AttributeCriterion,
    GpsCriterion,
    MetricCriterion,
    Predicate,
    RecencyCriterion,
    SetCriterion,
)

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
_MEMO_LIMIT = 4096
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "GREATER_THAN": operator.gt, "LESS_THAN": operator.lt, "GREATER_THAN_OR_EQUAL": operator.ge,
    "LESS_THAN_OR_EQUAL": operator.le, "EQUAL": operator.eq,
}  # fmt: skip


def set_check(c: SetCriterion) -> Predicate:
    """A Demographic field or Location.Country, case-insensitive; a missing value is in
    no set, so EXCLUSIVE keeps it."""
    values, parent, field, inclusive = c.values, c.parent, c.field, c.inclusive
    # Raw value -> in the set. These fields take few distinct values (makes, platforms,
    # versions), so a memo saves the casefold; it stops growing at a bound. Missing and
    # non-string values are remembered too (as not in the set).
    memo: dict[Any, bool] = {}

    def learn(v: Any) -> bool:
        found = type(v) is str and v.casefold() in values
        if len(memo) < _MEMO_LIMIT:
            memo[v] = found
        return found

    # Fields are fetched without type checks: a missing or non-object parent raises
    # AttributeError, an unhashable value TypeError. In Python 3.11 a try costs nothing
    # until it raises, and well-formed records never do; type() calls cost on every one.
    if parent is None:

        def check_top(d: dict[str, Any], _e: str) -> bool:
            v = d.get(field)
            try:
                return memo[v] is inclusive
            except KeyError:
                return learn(v) is inclusive
            except TypeError:  # a list or an object where a string belongs
                return not inclusive

        return check_top

    def check(d: dict[str, Any], _e: str) -> bool:
        obj: Any = d.get(parent)
        try:
            v = obj.get(field)
        except AttributeError:  # no such object, or not an object
            return not inclusive
        try:
            return memo[v] is inclusive
        except KeyError:
            return learn(v) is inclusive
        except TypeError:
            return not inclusive

    return check


def _getter(c: AttributeCriterion) -> Callable[[dict[str, Any]], Any]:
    name = c.name
    if c.user:

        def user_values(d: dict[str, Any]) -> Any:
            user = d.get("User")
            if type(user) is dict:
                attrs = user.get("UserAttributes")
                if type(attrs) is dict:
                    return attrs.get(name)
            return None

        return user_values

    def values(d: dict[str, Any]) -> Any:
        attrs = d.get("Attributes")
        return attrs.get(name) if type(attrs) is dict else None

    return values


def _strings(values: Any) -> Iterator[str]:
    """An attribute's values: a list of strings (a bare string is one value)."""
    if type(values) is str:
        yield values
    elif type(values) is list:
        for v in values:
            if type(v) is str:
                yield v


def attribute_check(c: AttributeCriterion) -> Predicate:
    """An attribute criterion: true when **any** of the endpoint's values satisfies it
    (EXCLUSIVE: when none is excluded, so a missing attribute is kept)."""
    if c.type in ("INCLUSIVE", "EXCLUSIVE"):
        return _membership(c)
    get = _getter(c)
    if c.type == "CONTAINS":
        needles = c.values

        def contains(d: dict[str, Any], _e: str) -> bool:
            return any(n in v for v in _strings(get(d)) for n in needles)

        return contains
    return _dates(c, get)


def _membership(c: AttributeCriterion) -> Predicate:
    # The commonest attribute criterion: values fetched inline, as set_check does.
    name, values, inclusive = c.name, frozenset(c.values), c.type == "INCLUSIVE"

    def decide(found: Any) -> bool:
        if type(found) is list:
            try:
                return values.isdisjoint(found) is not inclusive
            except TypeError:  # an unhashable item (a nested list or object): skip those
                return values.isdisjoint(_strings(found)) is not inclusive
        if type(found) is str:
            return (found in values) is inclusive
        return not inclusive

    if c.user:

        def user_check(d: dict[str, Any], _e: str) -> bool:
            user: Any = d.get("User")
            try:
                found = user.get("UserAttributes").get(name)
            except AttributeError:
                return not inclusive
            return decide(found)

        return user_check

    def check(d: dict[str, Any], _e: str) -> bool:
        attrs: Any = d.get("Attributes")
        try:
            found = attrs.get(name)
        except AttributeError:
            return not inclusive
        if type(found) is list:
            try:
                return values.isdisjoint(found) is not inclusive
            except TypeError:
                return decide(found)
        return decide(found)

    return check


def _dates(c: AttributeCriterion, get: Callable[[dict[str, Any]], Any]) -> Predicate:
    read = InstantReader()

    def instants(d: dict[str, Any]) -> Iterator[float]:
        for v in _strings(get(d)):
            seconds = read(v)
            if seconds is not None:
                yield seconds

    if c.type == "BEFORE":
        latest = max(c.instants)  # before any of the values: before the latest

        def before(d: dict[str, Any], _e: str) -> bool:
            return any(s < latest for s in instants(d))

        return before
    if c.type == "AFTER":
        earliest = min(c.instants)

        def after(d: dict[str, Any], _e: str) -> bool:
            return any(s > earliest for s in instants(d))

        return after
    if c.type == "ON":
        days = frozenset(utc_day(s) for s in c.instants)

        def on(d: dict[str, Any], _e: str) -> bool:
            return any(utc_day(s) in days for s in instants(d))

        return on
    low, high = c.instants

    def between(d: dict[str, Any], _e: str) -> bool:
        return any(low <= s <= high for s in instants(d))

    return between


def metric_check(c: MetricCriterion) -> Predicate:
    """A metric compared with the criterion's value; a missing or non-numeric metric
    satisfies no operator."""
    name, value, compare = c.name, c.value, _OPERATORS[c.operator]

    def check(d: dict[str, Any], _e: str) -> bool:
        metrics: Any = d.get("Metrics")
        try:
            v = metrics.get(name)
        except AttributeError:
            return False
        t = type(v)
        return (t is float or t is int) and compare(v, value)

    return check


def _coordinate(v: Any) -> float | None:
    if type(v) is float or type(v) is int:
        return float(v)
    if type(v) is str:
        try:
            return float(v)
        except ValueError:
            return None
    return None


def gps_check(c: GpsCriterion) -> Predicate:
    """Within ``RangeInKilometers`` (inclusive) of the point, by great-circle distance
    (haversine on a sphere of the Earth's mean radius). No coordinates: no match."""
    lat_deg, lat0, lon0 = c.latitude, math.radians(c.latitude), math.radians(c.longitude)
    cos0 = math.cos(lat0)
    # The great-circle distance is at least the latitude difference along a meridian:
    # an exact, cheap rejection of most far points before any trigonometry.
    max_dlat = math.degrees(c.range_km / EARTH_RADIUS_KM) + 1e-9
    half_chord = math.sin(min(c.range_km / EARTH_RADIUS_KM, math.pi) / 2) ** 2
    radians, sin, cos = math.radians, math.sin, math.cos

    def check(d: dict[str, Any], _e: str) -> bool:
        location: Any = d.get("Location")
        try:
            lat = location.get("Latitude")
        except AttributeError:
            return False
        if type(lat) is not float:  # a float is what readers make: the fast path
            lat = _coordinate(lat)
            if lat is None:
                return False
        lon = location.get("Longitude")
        if type(lon) is not float:
            lon = _coordinate(lon)
            if lon is None:
                return False
        # Out-of-range coordinates (NaN and infinities too) are no coordinates.
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            return False
        if abs(lat - lat_deg) > max_dlat:
            return False
        phi = radians(lat)
        a = sin((phi - lat0) / 2) ** 2 + cos0 * cos(phi) * sin((radians(lon) - lon0) / 2) ** 2
        # Compare haversines instead of distances: monotonic on [0, pi], no asin.
        return a <= half_chord * (1 + 1e-12)

    return check


def recency_check(c: RecencyCriterion, now: datetime) -> Predicate:
    """ACTIVE: ``EffectiveDate`` at or after ``now`` minus the duration (a future date
    counts as active); INACTIVE: anything else, a missing or unreadable date included."""
    threshold = now - timedelta(seconds=c.seconds)
    seconds = threshold.timestamp()
    # Pinpoint writes EffectiveDate with milliseconds; rounding the threshold up to the
    # next millisecond keeps ">=" exact when comparing such dates as text.
    rest = threshold.microsecond % 1000
    text = canonical(threshold + timedelta(microseconds=1000 - rest if rest else 0))
    want_active = c.active
    read = InstantReader()

    def check(d: dict[str, Any], _e: str) -> bool:
        v = d.get("EffectiveDate")
        if type(v) is not str:
            return not want_active
        if len(v) == 24 and v[23] == "Z" and v[19] == "." and v[10] == "T":
            return (v >= text) is want_active  # Pinpoint's own form sorts as text
        at = read(v)
        return (at is not None and at >= seconds) is want_active

    return check


__all__ = [
    "EARTH_RADIUS_KM",
    "Predicate",
    "attribute_check",
    "gps_check",
    "metric_check",
    "recency_check",
    "set_check",
]
