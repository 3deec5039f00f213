"""Segment definitions, criterion by criterion: each dimension type and operator over
matching and non-matching endpoints, read from real ``get-segment`` files."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.segments.test_definition_support import (
    NOW,
    attr_dim,
    compiled,
    endpoint,
    segment,
    set_dim,
)


@pytest.fixture(autouse=True)
def aws_env() -> None:
    """These tests need no AWS: replaces the directory's moto-backed fixture."""


# -- Demographic and Location.Country -----------------------------------------------

DEMOGRAPHIC = [
    # criterion, where the endpoint keeps it, a value, another value
    ("AppVersion", ("Demographic", "AppVersion"), "2.1.0", "2.0.9"),
    ("Channel", (None, "ChannelType"), "SMS", "EMAIL"),
    ("DeviceType", ("Demographic", "DeviceType"), "tablet", "phone"),
    ("Make", ("Demographic", "Make"), "Apple", "Google"),
    ("Model", ("Demographic", "Model"), "iPhone15,2", "Pixel 8"),
    ("Platform", ("Demographic", "Platform"), "ios", "android"),
]


def _with(where: tuple[str | None, str], value: str) -> dict[str, Any]:
    parent, field = where
    if parent is None:
        return endpoint(**{field: value})
    return endpoint(**{parent: {field: value}})


def _without(where: tuple[str | None, str]) -> dict[str, Any]:
    parent, field = where
    record = endpoint()
    record.pop(field, None)
    if parent is not None:
        record[parent] = {"Other": "x"}
    return record


@pytest.mark.parametrize(("name", "where", "value", "other"), DEMOGRAPHIC)
def test_demographic_inclusive_and_exclusive(
    tmp_path: Path, name: str, where: tuple[str | None, str], value: str, other: str
) -> None:
    inclusive = compiled(tmp_path, segment({"Demographic": {name: set_dim([value, "zzz"])}}))
    exclusive = compiled(tmp_path, segment({"Demographic": {name: set_dim([value], "EXCLUSIVE")}}))
    assert inclusive(_with(where, value), "e1")
    assert inclusive(_with(where, value.swapcase()), "e1"), "case is ignored"
    assert not inclusive(_with(where, other), "e1")
    assert not inclusive(_without(where), "e1"), "a missing field is in no set"
    assert not exclusive(_with(where, value), "e1")
    assert not exclusive(_with(where, value.upper()), "e1")
    assert exclusive(_with(where, other), "e1")
    assert exclusive(_without(where), "e1"), "EXCLUSIVE keeps endpoints without the field"


def test_dimension_type_defaults_to_inclusive(tmp_path: Path) -> None:
    matches = compiled(tmp_path, segment({"Demographic": {"Platform": set_dim(["ios"], None)}}))
    assert matches(endpoint(Demographic={"Platform": "iOS"}), "e")
    assert not matches(endpoint(Demographic={"Platform": "android"}), "e")


def test_wrong_typed_fields_count_as_missing(tmp_path: Path) -> None:
    matches = compiled(tmp_path, segment({"Demographic": {"Make": set_dim(["1"])}}))
    assert not matches(endpoint(Demographic={"Make": 1}), "e")
    assert not matches(endpoint(Demographic="Apple"), "e")
    assert not matches(endpoint(Demographic=None), "e")


def test_country(tmp_path: Path) -> None:
    inc = compiled(tmp_path, segment({"Location": {"Country": set_dim(["US", "ca"])}}))
    exc = compiled(tmp_path, segment({"Location": {"Country": set_dim(["US"], "EXCLUSIVE")}}))
    us, fr = endpoint(Location={"Country": "us"}), endpoint(Location={"Country": "FR"})
    assert inc(us, "e") and inc(endpoint(Location={"Country": "CA"}), "e")
    assert not inc(fr, "e") and not inc(endpoint(), "e")
    assert not exc(us, "e") and exc(fr, "e") and exc(endpoint(), "e")


# -- GPSPoint -----------------------------------------------------------------------

CITIES = {
    "Seattle": (47.6062, -122.3321), "Portland": (45.5152, -122.6784),
    "London": (51.5074, -0.1278), "Paris": (48.8566, 2.3522),
    "New York": (40.7128, -74.0060), "Los Angeles": (34.0522, -118.2437),
    "Sydney": (-33.8688, 151.2093), "Melbourne": (-37.8136, 144.9631),
}  # fmt: skip
# Great-circle distances on the mean-radius sphere (haversine), in km.
PAIRS = [
    ("Seattle", "Portland", 233.8), ("London", "Paris", 343.6),
    ("New York", "Los Angeles", 3935.7), ("Sydney", "Melbourne", 713.8),
]  # fmt: skip


def _gps(lat: float, lon: float, km: float) -> dict[str, Any]:
    point = {"Coordinates": {"Latitude": lat, "Longitude": lon}, "RangeInKilometers": km}
    return {"Location": {"GPSPoint": point}}


@pytest.mark.parametrize(("a", "b", "km"), PAIRS)
def test_gps_against_known_city_pairs(tmp_path: Path, a: str, b: str, km: float) -> None:
    (lat, lon), (blat, blon) = CITIES[a], CITIES[b]
    there = endpoint(Location={"Latitude": blat, "Longitude": blon})
    # Within 0.5% of the known distance on either side, both directions.
    assert compiled(tmp_path, segment(_gps(lat, lon, km * 1.005)))(there, "e")
    assert not compiled(tmp_path, segment(_gps(lat, lon, km * 0.995)))(there, "e")
    back = endpoint(Location={"Latitude": lat, "Longitude": lon})
    assert compiled(tmp_path, segment(_gps(blat, blon, km * 1.005)))(back, "e")
    assert not compiled(tmp_path, segment(_gps(blat, blon, km * 0.995)))(back, "e")


def test_gps_across_the_antimeridian_and_at_the_point(tmp_path: Path) -> None:
    matches = compiled(tmp_path, segment(_gps(0.0, 179.9, 25)))  # 0.2 degrees: ~22.2 km
    assert matches(endpoint(Location={"Latitude": 0.0, "Longitude": -179.9}), "e")
    assert not compiled(tmp_path, segment(_gps(0.0, 179.9, 20)))(
        endpoint(Location={"Latitude": 0.0, "Longitude": -179.9}), "e")  # fmt: skip
    zero = compiled(tmp_path, segment(_gps(47.6, -122.3, 0)))
    assert zero(endpoint(Location={"Latitude": 47.6, "Longitude": -122.3}), "e")


def test_gps_needs_coordinates(tmp_path: Path) -> None:
    matches = compiled(
        tmp_path, segment(_gps(47.6, -122.3, 20100))
    )  # half the circumference: 20015 km
    antipode = endpoint(Location={"Latitude": -47.6, "Longitude": 57.7})
    assert matches(antipode, "e")
    assert not compiled(tmp_path, segment(_gps(47.6, -122.3, 20000)))(antipode, "e")
    assert matches(endpoint(Location={"Latitude": "47.6", "Longitude": "-122.3"}), "e")
    assert not matches(endpoint(), "e")
    assert not matches(endpoint(Location={"Latitude": 47.6}), "e")
    assert not matches(endpoint(Location={"Latitude": "north", "Longitude": 1.0}), "e")
    assert not matches(endpoint(Location={"Latitude": True, "Longitude": 1.0}), "e")
    for lat, lon in [(91.0, 0.0), (0.0, 180.5), (float("nan"), 0.0), (0.0, float("inf"))]:
        # Out of range (a CSV cell can read "inf"): no usable coordinates.
        assert not matches(endpoint(Location={"Latitude": lat, "Longitude": lon}), "e")


# -- Attributes and UserAttributes --------------------------------------------------


def _attrs(user: bool, name: str, values: Any) -> dict[str, Any]:
    if user:
        return endpoint(User={"UserId": "u1", "UserAttributes": {name: values}})
    return endpoint(Attributes={name: values})


def _attr_segment(user: bool, name: str, dim: dict[str, Any]) -> dict[str, Any]:
    return segment({"UserAttributes" if user else "Attributes": {name: dim}})


@pytest.fixture(params=[False, True], ids=["Attributes", "UserAttributes"])
def user(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_attribute_inclusive_and_exclusive(tmp_path: Path, user: bool) -> None:
    inc = compiled(tmp_path, _attr_segment(user, "Tier", attr_dim("INCLUSIVE", ["gold", "vip"])))
    exc = compiled(tmp_path, _attr_segment(user, "Tier", attr_dim("EXCLUSIVE", ["gold"])))
    assert inc(_attrs(user, "Tier", ["silver", "vip"]), "e"), "any value matches"
    assert inc(_attrs(user, "Tier", "gold"), "e"), "a bare string is one value"
    assert not inc(_attrs(user, "Tier", ["Gold"]), "e"), "attributes are case-sensitive"
    assert not inc(_attrs(user, "Tier", []), "e")
    assert not inc(_attrs(user, "Other", ["gold"]), "e")
    assert not inc(_attrs(user, "Tier", [["gold"], "silver"]), "e")
    assert inc(_attrs(user, "Tier", [{"x": 1}, "gold"]), "e"), "unhashable items skipped"
    assert not exc(_attrs(user, "Tier", ["silver", "gold"]), "e")
    assert exc(_attrs(user, "Tier", ["silver"]), "e")
    assert exc(_attrs(user, "Other", ["gold"]), "e"), "EXCLUSIVE keeps a missing attribute"
    assert exc(endpoint(), "e")


def test_attribute_type_defaults_to_inclusive(tmp_path: Path) -> None:
    matches = compiled(tmp_path, segment({"Attributes": {"Tier": {"Values": ["gold"]}}}))
    assert matches(endpoint(Attributes={"Tier": ["gold"]}), "e")
    assert not matches(endpoint(Attributes={"Tier": ["silver"]}), "e")


def test_attribute_contains(tmp_path: Path, user: bool) -> None:
    matches = compiled(
        tmp_path, _attr_segment(user, "Interests", attr_dim("CONTAINS", ["shoe", "hat"]))
    )
    assert matches(_attrs(user, "Interests", ["running shoes"]), "e")
    assert matches(_attrs(user, "Interests", ["music", "hats"]), "e")
    assert not matches(_attrs(user, "Interests", ["Shoes"]), "e"), "CONTAINS is case-sensitive"
    assert not matches(_attrs(user, "Interests", ["music"]), "e")
    assert not matches(endpoint(), "e")


DATE_CASES = [
    # type, criterion values, endpoint value, matches
    ("BEFORE", ["2024-05-01T00:00:00Z"], "2024-04-30T23:59:59Z", True),
    ("BEFORE", ["2024-05-01T00:00:00Z"], "2024-05-01T00:00:00Z", False),
    ("BEFORE", ["2024-05-01"], "2024-05-01T01:00:00+02:00", True),  # 23:00 UTC the day before
    ("BEFORE", ["2024-05-01T00:00:00Z"], "2024-04-30", True),  # a date alone: midnight UTC
    ("AFTER", ["2024-05-01T00:00:00Z"], "2024-05-01T00:00:00.001Z", True),
    ("AFTER", ["2024-05-01T00:00:00Z"], "2024-05-01T00:00:00Z", False),
    ("AFTER", ["2024-05-01T12:00:00-04:00"], "2024-05-01T15:00:00Z", False),  # 16:00Z
    ("AFTER", ["2024-05-01T12:00:00"], "2024-05-01T12:00:01Z", True),  # no offset: UTC
    ("ON", ["2024-05-01T12:00:00Z"], "2024-05-01T00:00:00Z", True),
    ("ON", ["2024-05-01"], "2024-05-01T23:59:59.999Z", True),
    ("ON", ["2024-05-01"], "2024-05-02T00:00:00Z", False),
    ("ON", ["2024-05-01"], "2024-05-01T23:30:00-05:00", False),  # 04:30Z on the 2nd
    ("ON", ["2024-05-01", "2024-06-01"], "2024-06-01T08:00:00Z", True),
    ("BETWEEN", ["2024-05-01T00:00:00Z", "2024-05-31T23:59:59Z"], "2024-05-15T10:00:00Z", True),
    ("BETWEEN", ["2024-05-01T00:00:00Z", "2024-05-31T00:00:00Z"], "2024-05-01T00:00:00Z", True),
    ("BETWEEN", ["2024-05-01T00:00:00Z", "2024-05-31T00:00:00Z"], "2024-05-31T00:00:00Z", True),
    ("BETWEEN", ["2024-05-01T00:00:00Z", "2024-05-31T00:00:00Z"], "2024-06-01T00:00:00Z", False),
    ("BETWEEN", ["2024-05-01T00:00:00Z", "2024-05-31T00:00:00Z"], "2024-04-30T23:59:59Z", False),
    ("BEFORE", ["2024-05-01T00:00:00Z"], "last tuesday", False),
    ("AFTER", ["2024-05-01T00:00:00Z"], "", False),
]


@pytest.mark.parametrize(("kind", "values", "value", "expected"), DATE_CASES)
def test_attribute_dates(
    tmp_path: Path, user: bool, kind: str, values: list[str], value: str, expected: bool
) -> None:
    matches = compiled(tmp_path, _attr_segment(user, "Date", attr_dim(kind, values)))
    assert matches(_attrs(user, "Date", [value]), "e") is expected
    # Any of the endpoint's values: an unreadable or non-matching one beside it changes nothing.
    far = "1900-01-01T00:00:00Z" if kind in ("AFTER", "ON") else "2999-01-01"
    assert matches(_attrs(user, "Date", ["garbage", value, far]), "e") is expected
    assert not matches(endpoint(), "e")


# -- Metrics ------------------------------------------------------------------------

METRIC_CASES = [
    ("GREATER_THAN", {2.0: False, 3.0: False, 3.5: True}),
    ("LESS_THAN", {2.0: True, 3.0: False, 3.5: False}),
    ("GREATER_THAN_OR_EQUAL", {2.0: False, 3.0: True, 3.5: True}),
    ("LESS_THAN_OR_EQUAL", {2.0: True, 3.0: True, 3.5: False}),
    ("EQUAL", {2.0: False, 3.0: True, 3.5: False}),
]


@pytest.mark.parametrize(("operator", "cases"), METRIC_CASES)
def test_metrics(tmp_path: Path, operator: str, cases: dict[float, bool]) -> None:
    dim = {"ComparisonOperator": operator, "Value": 3}
    matches = compiled(tmp_path, segment({"Metrics": {"visits": dim}}))
    for value, expected in cases.items():
        assert matches(endpoint(Metrics={"visits": value}), "e") is expected, value
    assert matches(endpoint(Metrics={"visits": 3}), "e") is cases[3.0], "an int metric"
    for missing in (endpoint(), endpoint(Metrics={}), endpoint(Metrics={"visits": "3"}),
                    endpoint(Metrics={"visits": True}), endpoint(Metrics=[3])):  # fmt: skip
        assert not matches(missing, "e"), "no metric satisfies no operator"


# -- Behavior.Recency ---------------------------------------------------------------

RECENCY = [("HR_24", 1), ("DAY_7", 7), ("DAY_14", 14), ("DAY_30", 30)]


@pytest.mark.parametrize(("duration", "days"), RECENCY)
def test_recency_against_effective_date(tmp_path: Path, duration: str, days: int) -> None:
    def at(when: datetime) -> dict[str, Any]:
        text = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return endpoint(EffectiveDate=text)

    def recency(kind: str) -> dict[str, Any]:
        return segment({"Behavior": {"Recency": {"Duration": duration, "RecencyType": kind}}})

    edge = NOW - timedelta(days=days)
    active = compiled(tmp_path, recency("ACTIVE"))
    inactive = compiled(tmp_path, recency("INACTIVE"))
    pacific = timezone(timedelta(hours=-7))
    later = (edge + timedelta(minutes=1)).astimezone(pacific)
    cases = [
        (at(edge), True),  # exactly at the window's start: active
        (at(edge - timedelta(milliseconds=1)), False),
        (at(edge + timedelta(hours=1)), True),
        (at(NOW + timedelta(days=3)), True),  # a future date counts as active
        # Other ISO 8601 forms than Pinpoint's own are parsed:
        (endpoint(EffectiveDate=(edge - timedelta(minutes=1)).isoformat()), False),
        (endpoint(EffectiveDate=later.isoformat()), True),
        (endpoint(EffectiveDate=(edge - timedelta(microseconds=1)).isoformat()), False),
        (endpoint(), False),  # no EffectiveDate: not known to be active
        (endpoint(EffectiveDate="yesterday"), False),
        (endpoint(EffectiveDate=12345), False),
    ]
    for record, is_active in cases:
        assert active(record, "e") is is_active, record.get("EffectiveDate")
        assert inactive(record, "e") is not is_active, record.get("EffectiveDate")


def test_recency_with_a_now_between_milliseconds(tmp_path: Path) -> None:
    doc = segment({"Behavior": {"Recency": {"Duration": "HR_24", "RecencyType": "ACTIVE"}}})
    now = NOW + timedelta(microseconds=1500)  # the window starts 1.5 ms past a second
    matches = compiled(tmp_path, doc, now=now)
    assert not matches(endpoint(EffectiveDate="2026-11-14T12:00:00.001Z"), "e")
    assert matches(endpoint(EffectiveDate="2026-11-14T12:00:00.002Z"), "e")


def test_recency_uses_the_given_now(tmp_path: Path) -> None:
    doc = segment({"Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "ACTIVE"}}})
    record = endpoint(EffectiveDate="2026-11-10T00:00:00.000Z")
    assert compiled(tmp_path, doc, now=NOW)(record, "e")
    assert not compiled(tmp_path, doc, now=NOW + timedelta(days=5))(record, "e")
    with pytest.raises(ValueError, match="timezone-aware"):
        compiled(tmp_path, doc, now=NOW.replace(tzinfo=None))


# -- one dimensions object: AND ----------------------------------------------------


def test_criteria_of_one_dimensions_object_all_hold(tmp_path: Path) -> None:
    matches = compiled(tmp_path, segment({
        "Demographic": {"Platform": set_dim(["ios"]), "Channel": set_dim(["APNS"])},
        "Location": {"Country": set_dim(["US"])},
        "Attributes": {"Tier": attr_dim("INCLUSIVE", ["gold"])},
        "Metrics": {"visits": {"ComparisonOperator": "GREATER_THAN", "Value": 1.0}},
    }))  # fmt: skip
    good = endpoint(ChannelType="APNS", Demographic={"Platform": "ios"}, Location={"Country": "US"},
                    Attributes={"Tier": ["gold"]}, Metrics={"visits": 2})  # fmt: skip
    assert matches(good, "e")
    for field, bad in [("ChannelType", "GCM"), ("Demographic", {"Platform": "android"}),
                       ("Location", {"Country": "FR"}), ("Attributes", {"Tier": ["x"]}),
                       ("Metrics", {"visits": 0})]:  # fmt: skip
        assert not matches({**good, field: bad}, "e"), field


def test_an_empty_definition_matches_every_endpoint(tmp_path: Path) -> None:
    for doc in (segment(), segment({}), segment(groups=[]), segment(groups=[{}]),
                segment(groups=[{"Dimensions": [{}], "Type": "ANY"}]), {}):  # fmt: skip
        matches = compiled(tmp_path, doc)
        assert matches(endpoint(), "e") and matches({}, "x")
