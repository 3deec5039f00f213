"""Segment readers: one Record per physical record, whatever the bytes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.segments import FileSource, detect_format, open_source


def read_all(path: Path, fmt: str | None = None, batch_size: int = 3) -> list[Record]:
    async def collect() -> list[Record]:
        out: list[Record] = []
        async for batch in FileSource(path, fmt, batch_size=batch_size).batches():
            assert 0 < len(batch) <= batch_size
            out.extend(batch)
        return out

    return anyio.run(collect)


def test_jsonl_records_errors_and_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(
        b'\xef\xbb\xbf{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n'
        b"\n"
        b'{"ChannelType": "EMAIL", "Address": "x@example.com"}\n'
        b"[1]\n"
        b'{"Id": "b", "Address": \n'
        b'{"Id": "\xff\xfe", "ChannelType": "SMS"}\n'
        b"   \n"
        b'{"Id": "c"}'
    )
    records = read_all(p)
    assert [r.line for r in records] == [1, 3, 4, 5, 6, 8]
    assert records[0].endpoint_id == "a" and records[0].error is None
    assert records[0].definition == {"ChannelType": "SMS", "Address": "+1"}
    assert records[1].endpoint_id and len(records[1].endpoint_id) == 32  # generated
    assert records[2].error == "expected a JSON object, got an array"
    assert records[3].error and records[3].error.startswith("malformed JSON")
    assert records[4].error and records[4].error.startswith("malformed JSON")  # not UTF-8
    assert records[5].endpoint_id == "c"


def test_generated_ids_are_stable_and_follow_the_address(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    a.write_text('{"ChannelType": "SMS", "Address": "+1", "Attributes": {"x": ["1"]}}\n')
    b = tmp_path / "b.jsonl"
    b.write_text('{"ChannelType": "SMS", "Address": "+1", "Attributes": {"x": ["2"]}}\n')
    assert read_all(a)[0].endpoint_id == read_all(b)[0].endpoint_id == read_all(a)[0].endpoint_id


def test_gzip_is_detected_from_content(tmp_path: Path) -> None:
    p = tmp_path / "export-part-0001.gz"
    p.write_bytes(gzip.compress(b'{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n' * 5))
    assert [r.endpoint_id for r in read_all(p)] == ["a"] * 5
    assert detect_format("x.csv.gz") == "csv" and detect_format("x.gz") == "jsonl"


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_bytes(b"")
    (tmp_path / "e.csv").write_bytes(b"")
    (tmp_path / "h.csv").write_bytes(b"ChannelType,Address\n")
    assert read_all(tmp_path / "e.jsonl") == []
    assert read_all(tmp_path / "e.csv") == []
    assert read_all(tmp_path / "h.csv") == []


def test_csv_dot_notation_multi_values_and_ragged_rows(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text(
        "\ufeffId,ChannelType,Address,Demographic.Platform,User.UserAttributes.FirstName,"
        "Attributes.Interest,Attributes.Interest,Metrics.score,Location.Latitude\n"
        "a,SMS,+1,ios,Ann,music,,7,47.6\n"
        'b,EMAIL,"b@example.com",,"Bo, Jr.",music,travel,,\n'
        "c,SMS,+3\n"
        "d,SMS,+4,ios,Di,x,y,not-a-number,1\n"
        ",GCM,tok,,,,,,\n",
        encoding="utf-8",
    )
    records = read_all(p, batch_size=2)
    assert [r.line for r in records] == [1, 2, 3, 4, 5]
    a, b, c, d, e = records
    assert a.definition == {
        "ChannelType": "SMS", "Address": "+1", "Demographic": {"Platform": "ios"},
        "User": {"UserAttributes": {"FirstName": ["Ann"]}}, "Attributes": {"Interest": ["music"]},
        "Metrics": {"score": 7.0}, "Location": {"Latitude": 47.6},
    }  # fmt: skip
    assert b.definition is not None
    assert b.definition["Attributes"] == {"Interest": ["music", "travel"]}
    assert b.definition["User"]["UserAttributes"]["FirstName"] == ["Bo, Jr."]
    assert "Demographic" not in b.definition  # an empty cell is no value
    assert c.error == "row has 3 cells, header has 9"
    assert d.error == "Metrics.score must be a number, got 'not-a-number'"
    assert e.endpoint_id and e.error is None


def test_csv_invalid_utf8_row_does_not_end_the_file(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_bytes(b"Id,ChannelType,Address\na,SMS,+1\nb,SMS,\xff\xfe\nc,SMS,+3\n")
    records = read_all(p)
    assert [(r.endpoint_id, r.error) for r in records] == [
        ("a", None),
        (None, "row is not valid UTF-8"),
        ("c", None),
    ]


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(str(tmp_path / "missing.jsonl"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
lines = st.one_of(
    json_values.map(json.dumps),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    st.just(""),
    st.just("   "),
).map(lambda s: s.replace("\n", " ").replace("\r", " "))


@given(st.lists(lines, max_size=30))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_jsonl_property_one_record_per_nonblank_line(tmp_path: Path, content: list[str]) -> None:
    p = tmp_path / "prop.jsonl"
    p.write_text("\n".join(content), encoding="utf-8")
    physical = p.read_bytes().split(b"\n")
    expected = [i for i, raw in enumerate(physical, 1) if raw.strip()]
    if physical and physical[0].startswith(b"\xef\xbb\xbf") and not physical[0][3:].strip():
        expected = expected[1:]
    records = read_all(p)
    assert [r.line for r in records] == expected
    for r in records:
        assert (r.error is None) == (r.endpoint_id is not None and r.definition is not None) or (
            r.error == "Id must be a non-empty string"
        )


# Pinpoint CSV values hold no line breaks, and the reader takes one physical line as
# one record (see dispatcher.segments.csv); quoted line breaks are tested in
# tests/segments/test_no_record_lost.py.
cells = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=6,
)


@given(st.lists(st.lists(cells, min_size=1, max_size=5), max_size=15))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_csv_property_every_row_is_one_record(tmp_path: Path, rows: list[list[str]]) -> None:
    import csv

    p = tmp_path / "prop.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ChannelType", "Address", "Attributes.a"])
        for row in rows:
            w.writerow(row)
    records = read_all(p)
    nonblank = rows  # csv.writer quotes a lone empty cell, so no written row is blank
    assert len(records) == len(nonblank)
    for row, rec in zip(nonblank, records, strict=True):
        if len(row) != 3:
            assert rec.error == f"row has {len(row)} cells, header has 3"
        else:
            assert rec.error is None and rec.definition is not None
            if row[2]:
                assert rec.definition["Attributes"]["a"] == [row[2]]
