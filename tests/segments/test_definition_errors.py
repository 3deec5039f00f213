"""Definitions that can't be evaluated: each is a ``ConfigError`` naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dispatcher.errors import ConfigError
from dispatcher.segments.definition import load_definition
from tests.segments.test_definition_support import load, segment, set_dim, write


@pytest.fixture(autouse=True)
def aws_env() -> None:
    """These tests need no AWS: replaces the directory's moto-backed fixture."""


GPS = {"Coordinates": {"Latitude": 47.6, "Longitude": -122.3}, "RangeInKilometers": 10}
G = "SegmentResponse.SegmentGroups.Groups"
D = "SegmentResponse.Dimensions"

BAD: list[tuple[str, Any, str, str]] = [
    # name, definition, key, message
    ("unknown dimension", segment({"Demographics": {}}), f"{D}.Demographics",
     "unknown dimension 'Demographics'; expected one of Attributes, Behavior, Demographic,"),
    ("unknown demographic", segment({"Demographic": {"Locale": set_dim(["en"])}}),
     f"{D}.Demographic.Locale", "unknown Demographic dimension 'Locale'"),
    ("bad DimensionType", segment({"Demographic": {"Make": set_dim(["x"], "INCLUDE")}}),
     f"{D}.Demographic.Make.DimensionType", "must be one of INCLUSIVE, EXCLUSIVE, got 'INCLUDE'"),
    ("Values not a list", segment({"Location": {"Country": {"Values": "US"}}}),
     f"{D}.Location.Country.Values", "must be an array, got a string"),
    ("empty Values", segment({"Location": {"Country": {"Values": []}}}),
     f"{D}.Location.Country.Values", "must be a non-empty array of strings"),
    ("a number among Values", segment({"Attributes": {"Age": {"Values": ["1", 2]}}}),
     f"{D}.Attributes.Age.Values[1]", "must be a string, got a number"),
    ("NOT_BETWEEN", segment({"Attributes": {"d": {"AttributeType": "NOT_BETWEEN",
                                                   "Values": ["a"]}}}),
     f"{D}.Attributes.d.AttributeType", "must be one of INCLUSIVE, EXCLUSIVE, CONTAINS, BEFORE,"),
    ("BETWEEN one value", segment({"UserAttributes": {"d": {"AttributeType": "BETWEEN",
                                                             "Values": ["2024-01-01"]}}}),
     f"{D}.UserAttributes.d.Values", "BETWEEN needs exactly two instants, got 1"),
    ("BETWEEN reversed", segment({"Attributes": {"d": {"AttributeType": "BETWEEN",
                                                        "Values": ["2024-02-01", "2024-01-01"]}}}),
     f"{D}.Attributes.d.Values", "BETWEEN needs the earlier instant first"),
    ("not a date", segment({"Attributes": {"signup date": {"AttributeType": "AFTER",
                                                            "Values": ["2024-01-01", "soon"]}}}),
     f"{D}.Attributes['signup date'].Values[1]", "AFTER needs ISO 8601 instants"),
    ("bad operator", segment({"Metrics": {"m": {"ComparisonOperator": ">", "Value": 1}}}),
     f"{D}.Metrics.m.ComparisonOperator", "must be one of GREATER_THAN, LESS_THAN,"),
    ("no operator", segment({"Metrics": {"m": {"Value": 1}}}),
     f"{D}.Metrics.m.ComparisonOperator", "is required; use one of GREATER_THAN"),
    ("metric value", segment({"Metrics": {"m": {"ComparisonOperator": "EQUAL", "Value": True}}}),
     f"{D}.Metrics.m.Value", "must be a number, got a boolean"),
    ("recency duration", segment({"Behavior": {"Recency": {"Duration": "DAY_90",
                                                            "RecencyType": "ACTIVE"}}}),
     f"{D}.Behavior.Recency.Duration", "must be one of HR_24, DAY_7, DAY_14, DAY_30, got 'DAY_90'"),
    ("unknown behavior", segment({"Behavior": {"Frequency": {}}}),
     f"{D}.Behavior.Frequency", "unknown Behavior dimension 'Frequency'"),
    ("range as text", segment(groups=[{}, {"Dimensions": [{"Location": {"GPSPoint": {
        **GPS, "RangeInKilometers": "10"}}}]}]),
     f"{G}[1].Dimensions[0].Location.GPSPoint.RangeInKilometers", "must be a number, got a string"),
    ("no range", segment({"Location": {"GPSPoint": {"Coordinates": GPS["Coordinates"]}}}),
     f"{D}.Location.GPSPoint.RangeInKilometers", "is required"),
    ("latitude", segment({"Location": {"GPSPoint": {**GPS, "Coordinates": {"Latitude": 91,
                                                                           "Longitude": 0}}}}),
     f"{D}.Location.GPSPoint.Coordinates.Latitude", "must be between -90 and 90, got 91"),
    ("no coordinates", segment({"Location": {"GPSPoint": {"RangeInKilometers": 3}}}),
     f"{D}.Location.GPSPoint.Coordinates", "is required"),
    ("bad Include", segment(groups=[], include="SOME"),
     "SegmentResponse.SegmentGroups.Include", "must be one of ALL, ANY, NONE, got 'SOME'"),
    ("bad group Type", segment(groups=[{"Type": "OR"}]), f"{G}[0].Type", "must be one of ALL,"),
    ("Groups not a list", segment(SegmentGroups={"Groups": {}}), f"{G}", "must be an array"),
    ("group key", segment(groups=[{"Dimension": []}]), f"{G}[0].Dimension", "unknown key"),
    ("source without Id", segment(groups=[{"SourceSegments": [{"Version": 1}]}]),
     f"{G}[0].SourceSegments[0].Id", "is required"),
    ("source Version", segment(groups=[{"SourceSegments": [{"Id": "x", "Version": "1"}]}]),
     f"{G}[0].SourceSegments[0].Version", "must be an integer, got a string"),
    ("unknown top key", segment(Dimension={}), "SegmentResponse.Dimension", "unknown key"),
    ("SegmentType", segment(SegmentType="STATIC"), "SegmentResponse.SegmentType",
     "must be one of DIMENSIONAL, IMPORT"),
    ("bare definition", {"Dimensions": {"Metrics": []}}, "Dimensions.Metrics",
     "must be an object, got an array"),
    ("not an object", {"SegmentResponse": []}, "SegmentResponse",
     "must be an object, got an array"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "document", "key", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_definitions_name_file_and_key(
    tmp_path: Path, name: str, document: Any, key: str, message: str
) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as info:
        load_definition(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert str(info.value).startswith(f"{path}: {key}: {message}")


def test_the_file_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, segment(groups=[{}, {"Dimensions": [{"Location": {"GPSPoint": {
        **GPS, "RangeInKilometers": "far"}}}]}]))  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_definition("segment.json")
    assert str(info.value) == (
        "segment.json: SegmentResponse.SegmentGroups.Groups[1].Dimensions[0]"
        ".Location.GPSPoint.RangeInKilometers: must be a number, got a string"
    )


@pytest.mark.parametrize(("text", "message"), [
    ("", "not valid JSON"), ('{"SegmentResponse": {', "not valid JSON"),
    ('{"SegmentsResponse": {"Item": []}}', "a list of segments (get-segments)"),
])  # fmt: skip
def test_unreadable_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_definition(path)
    assert info.value.file == str(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can't read the segment definition") as info:
        load_definition(tmp_path / "absent.json")
    assert info.value.file == str(tmp_path / "absent.json")


def test_device_type_is_accepted_with_a_warning(tmp_path: Path) -> None:
    definition = load(tmp_path, segment({"Demographic": {"DeviceType": set_dim(["tablet"])}}))
    assert len(definition.warnings) == 1
    assert "Demographic.DeviceType" in definition.warnings[0]
