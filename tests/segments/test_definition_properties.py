"""Properties: a definition and its logical negation partition any set of endpoints.

Negations: INCLUSIVE <-> EXCLUSIVE (Demographic, Country, Attributes), ACTIVE <->
INACTIVE (Recency), and, for whole groups, Include / Type / SourceType ANY <-> NONE.
Endpoints are drawn with the fields missing, mistyped, differently cased or holding
several values, where a choice about "absent" would break the partition.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.segments.definition import compile_definition, load_definition
from tests.segments.test_definition_support import NOW, segment

NEGATE = {"INCLUSIVE": "EXCLUSIVE", "EXCLUSIVE": "INCLUSIVE", "ACTIVE": "INACTIVE",
          "INACTIVE": "ACTIVE", "ANY": "NONE", "NONE": "ANY"}  # fmt: skip

WORDS = ["ios", "IOS", "android", "gold", "silver", "US", "us", "FR", ""]
maybe_word = st.one_of(st.sampled_from(WORDS), st.none(), st.integers(0, 3))
dates = st.sampled_from([
    "2026-11-15T11:00:00.000Z", "2026-11-01T00:00:00.000Z", "2026-09-01T00:00:00.000Z",
    "2026-11-14T12:00:00.000Z", "2026-11-14T11:59:59.999Z", "2026-11-14T13:00:00+01:00",
    "2026-11-10", "not a date",
])  # fmt: skip


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@st.composite
def endpoints(draw: st.DrawFn) -> dict[str, Any]:
    values = st.one_of(st.lists(maybe_word, max_size=3), maybe_word)
    return _drop_none({
        "ChannelType": draw(st.sampled_from(["EMAIL", "SMS", "sms", None])),
        "Demographic": draw(st.one_of(st.none(), st.builds(
            lambda p, m: _drop_none({"Platform": p, "Make": m}), maybe_word, maybe_word))),
        "Location": draw(st.one_of(st.none(), st.builds(
            lambda c: _drop_none({"Country": c}), maybe_word))),
        "Attributes": draw(st.one_of(st.none(), st.dictionaries(
            st.sampled_from(["Tier", "Other"]), values, max_size=2))),
        "User": draw(st.one_of(st.none(), st.builds(
            lambda a: {"UserAttributes": {"Tier": a}}, values))),
        "EffectiveDate": draw(st.one_of(st.none(), dates, st.integers())),
    })  # fmt: skip


@st.composite
def negatable(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dimensions object and its negation (one criterion, so NOT is exact)."""
    kind = draw(st.sampled_from(["Platform", "Make", "Channel", "Country", "Attributes",
                                 "UserAttributes", "Recency"]))  # fmt: skip
    how = draw(st.sampled_from(["INCLUSIVE", "EXCLUSIVE"]))
    values = draw(st.lists(st.sampled_from(WORDS[:-1]), min_size=1, max_size=3))
    duration = draw(st.sampled_from(["HR_24", "DAY_7", "DAY_14", "DAY_30"]))

    def build(h: str) -> dict[str, Any]:
        if kind == "Country":
            return {"Location": {"Country": {"DimensionType": h, "Values": values}}}
        if kind in ("Attributes", "UserAttributes"):
            return {kind: {"Tier": {"AttributeType": h, "Values": values}}}
        if kind == "Recency":
            recency = "ACTIVE" if h == "INCLUSIVE" else "INACTIVE"
            return {"Behavior": {"Recency": {"Duration": duration, "RecencyType": recency}}}
        return {"Demographic": {kind: {"DimensionType": h, "Values": values}}}

    return build(how), build(NEGATE[how])


def _compile(directory: Path, document: dict[str, Any], name: str = "segment.json") -> Any:
    path = directory / name
    path.write_text(json.dumps(document))
    return compile_definition(load_definition(path), now=NOW)


def _partition(a: Any, b: Any, records: list[dict[str, Any]]) -> None:
    for i, record in enumerate(records):
        assert a(record, f"ep-{i}") is not b(record, f"ep-{i}"), record


@pytest.fixture(autouse=True)
def aws_env() -> None:
    """These tests need no AWS: replaces the directory's moto-backed fixture."""


@settings(max_examples=80, deadline=None)
@given(pair=negatable(), records=st.lists(endpoints(), min_size=1, max_size=12))
def test_a_criterion_and_its_negation_partition(
    pair: tuple[dict[str, Any], dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        yes = _compile(Path(d), segment(pair[0]))
        no = _compile(Path(d), segment(pair[1]))
        _partition(yes, no, records)


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.lists(negatable(), min_size=0, max_size=3), min_size=1, max_size=3),
    how=st.sampled_from(["ANY", "NONE"]),
    records=st.lists(endpoints(), min_size=1, max_size=12),
)
def test_include_and_type_any_vs_none_partition(
    groups: list[list[tuple[dict[str, Any], dict[str, Any]]]], how: str,
    records: list[dict[str, Any]],
) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        # Include over groups:
        as_groups = [{"Type": "ALL", "Dimensions": [p[0] for p in g]} for g in groups]
        yes = _compile(Path(d), segment(groups=as_groups, include=how))
        no = _compile(Path(d), segment(groups=as_groups, include=NEGATE[how]))
        _partition(yes, no, records)
        # Type over the dimensions of one group (an empty list imposes nothing, whatever
        # the Type: a group of base segments alone selects them; see the groups tests):
        dims = [p[0] for g in groups for p in g]
        if not dims:
            return
        yes = _compile(Path(d), segment(groups=[{"Type": how, "Dimensions": dims}]))
        no = _compile(Path(d), segment(groups=[{"Type": NEGATE[how], "Dimensions": dims}]))
        _partition(yes, no, records)


@settings(max_examples=60, deadline=None)
@given(
    bases=st.lists(negatable(), min_size=1, max_size=3),
    how=st.sampled_from(["ANY", "NONE"]),
    records=st.lists(endpoints(), min_size=1, max_size=12),
)
def test_source_type_any_vs_none_partition(
    bases: list[tuple[dict[str, Any], dict[str, Any]]], how: str, records: list[dict[str, Any]]
) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        refs = []
        for i, (dims, _) in enumerate(bases):
            (Path(d) / f"base{i}.json").write_text(json.dumps(segment(dims, seg_id=f"b{i}")))
            refs.append({"Id": f"b{i}"})
        yes = _compile(Path(d), segment(groups=[{"SourceType": how, "SourceSegments": refs}]))
        no = _compile(
            Path(d), segment(groups=[{"SourceType": NEGATE[how], "SourceSegments": refs}])
        )
        _partition(yes, no, records)


@settings(max_examples=60, deadline=None)
@given(pair=negatable(), records=st.lists(endpoints(), min_size=1, max_size=12))
def test_a_source_segment_means_its_own_definition(
    pair: tuple[dict[str, Any], dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    """Referring to a base segment selects exactly what the base selects on its own."""
    with tempfile.TemporaryDirectory() as d:
        base = _compile(Path(d), segment(pair[0], seg_id="base"), "base.json")
        via = _compile(Path(d), segment(groups=[{"SourceSegments": [{"Id": "base"}]}]))
        for i, record in enumerate(records):
            assert base(record, f"ep-{i}") is via(record, f"ep-{i}")


# -- any decoded JSON record: evaluation never raises ------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), dates,
    st.sampled_from(["ios", "gold", "US", "shoe", "2024-05-01"]),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


def _object(keys: list[str], values: st.SearchStrategy[Any] = json_value) -> st.SearchStrategy[Any]:
    return st.one_of(json_value, st.dictionaries(st.sampled_from(keys), values, max_size=len(keys)))


wild_records = st.dictionaries(
    st.sampled_from(["ChannelType", "Demographic", "Location", "Attributes", "User", "Metrics",
                     "EffectiveDate"]),
    st.one_of(
        json_value,
        _object(["Platform", "Make", "DeviceType"]),
        _object(["Country", "Latitude", "Longitude"], st.one_of(json_value, st.floats())),
        _object(["Tier", "Date"]),
        _object(["UserId", "UserAttributes"], _object(["Tier", "Date"])),
        _object(["visits"]),
    ),
)  # fmt: skip

EVERY_CRITERION = [
    {"Demographic": {"Platform": {"Values": ["ios"]}, "Channel": {"Values": ["SMS"]}}},
    {"Demographic": {"DeviceType": {"DimensionType": "EXCLUSIVE", "Values": ["tablet"]}}},
    {"Location": {"Country": {"DimensionType": "EXCLUSIVE", "Values": ["US"]}}},
    {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 1.0, "Longitude": 2.0},
                               "RangeInKilometers": 20000.0}}},
    *({kind: {"Tier": {"AttributeType": t, "Values": v}}}
      for kind in ("Attributes", "UserAttributes")
      for t, v in [("INCLUSIVE", ["gold"]), ("EXCLUSIVE", ["gold"]), ("CONTAINS", ["o"])]),
    *({kind: {"Date": {"AttributeType": t, "Values": v}}}
      for kind in ("Attributes", "UserAttributes")
      for t, v in [("BEFORE", ["2025-01-01"]), ("AFTER", ["2000-01-01"]), ("ON", ["2024-05-01"]),
                   ("BETWEEN", ["2000-01-01", "2030-01-01"])]),
    {"Metrics": {"visits": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 0.0}}},
    {"Behavior": {"Recency": {"Duration": "DAY_30", "RecencyType": "ACTIVE"}}},
]  # fmt: skip


@pytest.fixture(scope="module")
def every_criterion(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    directory = tmp_path_factory.mktemp("criteria")
    (directory / "vip.ids").write_text("ep-1\n")
    compiled = [_compile(directory, segment(dims)) for dims in EVERY_CRITERION]
    members = {"SourceSegments": [{"Id": "vip"}]}
    return [*compiled, _compile(directory, segment(groups=[members]), "imported.json")]


@settings(max_examples=150, deadline=None)
@given(record=wild_records)
def test_evaluation_never_raises(every_criterion: list[Any], record: dict[str, Any]) -> None:
    for matches in every_criterion:
        assert isinstance(matches(record, "ep-1"), bool)
