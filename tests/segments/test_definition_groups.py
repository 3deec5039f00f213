"""SegmentGroups at both levels, base segments from sibling files (dimensional and
imported), and ``DefinedSource`` over a real export file."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.segments import open_source
from dispatcher.segments.definition import DefinedSource, compile_definition, load_definition
from tests.segments.test_definition_support import (
    NOW,
    compiled,
    endpoint,
    load,
    segment,
    set_dim,
    write,
)


@pytest.fixture(autouse=True)
def aws_env() -> None:
    """These tests need no AWS: replaces the directory's moto-backed fixture."""


IOS = {"Demographic": {"Platform": set_dim(["ios"])}}
US = {"Location": {"Country": set_dim(["US"])}}
GOLD = {"Attributes": {"Tier": {"AttributeType": "INCLUSIVE", "Values": ["gold"]}}}


def ep(platform: str = "android", country: str = "FR", tier: str = "silver") -> dict[str, Any]:
    return endpoint(Demographic={"Platform": platform}, Location={"Country": country},
                    Attributes={"Tier": [tier]})  # fmt: skip


ALL_EIGHT = [ep(p, c, t) for p in ("ios", "android") for c in ("US", "FR") for t in ("gold", "x")]


def _truth(record: dict[str, Any]) -> tuple[bool, bool, bool]:
    return (record["Demographic"]["Platform"] == "ios", record["Location"]["Country"] == "US",
            record["Attributes"]["Tier"] == ["gold"])  # fmt: skip


@pytest.mark.parametrize(("how", "rule"), [
    ("ALL", lambda a, b, c: a and b and c), ("ANY", lambda a, b, c: a or b or c),
    ("NONE", lambda a, b, c: not (a or b or c)),
])  # fmt: skip
def test_group_type_combines_its_dimensions(tmp_path: Path, how: str, rule: Any) -> None:
    matches = compiled(tmp_path, segment(groups=[{"Type": how, "Dimensions": [IOS, US, GOLD]}]))
    for record in ALL_EIGHT:
        assert matches(record, "e") is rule(*_truth(record)), (how, _truth(record))


@pytest.mark.parametrize(("include", "rule"), [
    ("ALL", lambda a, bc: a and bc), ("ANY", lambda a, bc: a or bc),
    ("NONE", lambda a, bc: not (a or bc)),
])  # fmt: skip
def test_include_combines_groups(tmp_path: Path, include: str, rule: Any) -> None:
    groups = [{"Dimensions": [IOS]}, {"Type": "ANY", "Dimensions": [US, GOLD]}]
    matches = compiled(tmp_path, segment(groups=groups, include=include))
    for record in ALL_EIGHT:
        a, b, c = _truth(record)
        assert matches(record, "e") is rule(a, b or c), (include, a, b, c)


@pytest.mark.parametrize("how", ["ALL", "ANY", "NONE"])
def test_an_empty_list_imposes_nothing_whatever_its_combiner(tmp_path: Path, how: str) -> None:
    _base(tmp_path, "ios-users", IOS)
    only_sources = {"Type": how, "SourceSegments": _refs("ios-users"), "Dimensions": []}
    matches = compiled(tmp_path, segment(groups=[only_sources]))
    assert matches(ep("ios"), "e") and not matches(ep("android"), "e")
    only_dims = {"SourceType": how, "SourceSegments": [], "Dimensions": [IOS]}
    matches = compiled(tmp_path, segment(groups=[only_dims]))
    assert matches(ep("ios"), "e") and not matches(ep("android"), "e")
    for doc in (segment(groups=[], include=how), segment(groups=[{"Type": how}])):
        assert compiled(tmp_path, doc)(ep(), "e")


def test_defaults_include_all_type_all(tmp_path: Path) -> None:
    matches = compiled(
        tmp_path, segment(groups=[{"Dimensions": [IOS, US]}, {"Dimensions": [GOLD]}])
    )
    for record in ALL_EIGHT:
        assert matches(record, "e") is all(_truth(record))


def test_top_level_dimensions_and_groups_both_hold(tmp_path: Path) -> None:
    matches = compiled(tmp_path, segment(IOS, groups=[{"Type": "ANY", "Dimensions": [US, GOLD]}]))
    for record in ALL_EIGHT:
        a, b, c = _truth(record)
        assert matches(record, "e") is (a and (b or c))


# -- base segments ------------------------------------------------------------------


def _base(directory: Path, seg_id: str, dims: dict[str, Any], version: int | None = 1,
          name: str | None = None, **extra: Any) -> None:  # fmt: skip
    write(directory, segment(dims, seg_id=seg_id, version=version, **extra),
          name or f"{seg_id}-v{version}.json")  # fmt: skip


def _refs(*ids: str) -> list[dict[str, Any]]:
    return [{"Id": i} for i in ids]


@pytest.mark.parametrize(("how", "rule"), [
    ("ALL", lambda a, b: a and b), ("ANY", lambda a, b: a or b),
    ("NONE", lambda a, b: not (a or b)),
])  # fmt: skip
def test_source_type_over_sibling_definitions(tmp_path: Path, how: str, rule: Any) -> None:
    _base(tmp_path, "ios-users", IOS)
    _base(tmp_path, "us-users", US)
    group = {"SourceType": how, "SourceSegments": _refs("ios-users", "us-users"),
             "Dimensions": [GOLD]}  # fmt: skip
    matches = compiled(tmp_path, segment(groups=[group]))
    for record in ALL_EIGHT:
        a, b, c = _truth(record)
        assert matches(record, "e") is (rule(a, b) and c), (how, a, b, c)


def test_source_type_defaults_to_any(tmp_path: Path) -> None:
    _base(tmp_path, "ios-users", IOS)
    _base(tmp_path, "us-users", US)
    matches = compiled(
        tmp_path, segment(groups=[{"SourceSegments": _refs("ios-users", "us-users")}])
    )
    for record in ALL_EIGHT:
        a, b, _ = _truth(record)
        assert matches(record, "e") is (a or b)


def test_source_version_rule(tmp_path: Path) -> None:
    _base(tmp_path, "base", IOS, version=1)
    _base(tmp_path, "base", US, version=2)
    ios_fr, android_us = ep("ios", "FR"), ep("android", "US")
    pinned = load(tmp_path, segment(groups=[{"SourceSegments": [{"Id": "base", "Version": 1}]}]))
    assert pinned.warnings == ()
    matches = compile_definition(pinned, now=NOW)
    assert matches(ios_fr, "e") and not matches(android_us, "e")
    latest = compiled(tmp_path, segment(groups=[{"SourceSegments": [{"Id": "base"}]}]))
    assert latest(android_us, "e") and not latest(ios_fr, "e"), "no Version: the highest"
    missing = load(tmp_path, segment(groups=[{"SourceSegments": [{"Id": "base", "Version": 7}]}]))
    assert compile_definition(missing, now=NOW)(android_us, "e"), (
        "an absent version: the highest, with a warning"
    )
    assert len(missing.warnings) == 1 and "version 7 not found" in missing.warnings[0]
    assert "base-v2.json (version 2)" in missing.warnings[0]
    assert missing.files == (str(tmp_path / "segment.json"), str(tmp_path / "base-v2.json"))


def test_source_errors(tmp_path: Path) -> None:
    _base(tmp_path, "twin", IOS, name="a.json")
    _base(tmp_path, "twin", US, name="b.json")
    (tmp_path / "notes.json").write_text("{not json")  # not a candidate, never an error
    with pytest.raises(ConfigError) as info:
        load(tmp_path, segment(groups=[{"SourceSegments": _refs("twin")}]))
    assert info.value.key == "SegmentResponse.SegmentGroups.Groups[0].SourceSegments[0].Id"
    assert "ambiguous: a.json, b.json" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, segment(groups=[{}, {"SourceSegments": _refs("nope")}]))
    key = "SegmentResponse.SegmentGroups.Groups[1].SourceSegments[0].Id"
    assert str(info.value).startswith(
        f"{tmp_path / 'segment.json'}: {key}: source segment 'nope' not found"
    )


def test_source_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, segment(seg_id="a", groups=[{"SourceSegments": _refs("b")}]), "a.json")
    write(tmp_path, segment(seg_id="b", groups=[{"SourceSegments": _refs("a")}]), "b.json")
    with pytest.raises(ConfigError, match=r"cycle: a\.json -> b\.json -> a\.json") as info:
        load_definition(tmp_path / "a.json")
    assert info.value.file == str(tmp_path / "b.json")


def test_nested_and_shared_sources_and_their_errors(tmp_path: Path) -> None:
    _base(tmp_path, "ios", IOS)
    write(
        tmp_path, segment(US, seg_id="us-ios", groups=[{"SourceSegments": _refs("ios")}]), "m.json"
    )
    matches = compiled(tmp_path, segment(groups=[
        {"SourceSegments": _refs("us-ios")}, {"SourceSegments": _refs("ios")},
    ]))  # fmt: skip
    for record in ALL_EIGHT:
        a, b, _ = _truth(record)
        assert matches(record, "e") is (a and b)
    write(tmp_path, segment({"Bogus": {}}, seg_id="broken"), "broken.json")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, segment(groups=[{"SourceSegments": _refs("broken")}]))
    assert info.value.file == str(tmp_path / "broken.json"), "the error names the source's file"
    assert info.value.key == "SegmentResponse.Dimensions.Bogus"


# -- imported base segments --------------------------------------------------------


def _imported(directory: Path, seg_id: str, **import_def: Any) -> None:
    body = {"Format": "CSV", "S3Url": f"s3://bucket/imports/{seg_id}.csv", "RoleArn": "arn:r",
            "Size": 3, **import_def}  # fmt: skip
    write(directory, segment(seg_id=seg_id, SegmentType="IMPORT", ImportDefinition=body),
          f"{seg_id}.json")  # fmt: skip


@pytest.mark.parametrize("form", ["ids", "txt", "csv", "jsonl", "ids.gz", "s3name"])
def test_imported_base_segment_from_an_id_file(tmp_path: Path, form: str) -> None:
    if form == "s3name":  # the import file itself, named as in ImportDefinition.S3Url
        _imported(tmp_path, "vip", S3Url="s3://bucket/imports/2026-vip.jsonl", Format="JSON")
    else:
        _imported(tmp_path, "vip")
    rows = [("ep-1", ""), ("", "user-7"), ("ep-3", "user-9")]
    if form in ("ids", "txt", "ids.gz"):
        text = "ep-1\n\n  ep-3  \r\n"
    elif form == "csv":
        text = "\ufeffChannelType,Id,Address,User.UserId\n" + "".join(
            f"EMAIL,{i},x@example.com,{u}\n" for i, u in rows)  # fmt: skip
    else:
        text = "".join(
            json.dumps({"Id": i} if i else {"User": {"UserId": u}}) + "\n" for i, u in rows
        )
    name = {"s3name": "2026-vip.jsonl"}.get(form, f"vip.{form}")
    data = text.encode()
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    group = {
        "SourceSegments": [{"Id": "vip"}],
        "Dimensions": [{"Demographic": {"Channel": set_dim(["EMAIL"])}}],
    }
    matches = compiled(tmp_path, segment(groups=[group]))
    assert matches(endpoint(), "ep-1") and matches(endpoint(), "ep-3")
    assert not matches(endpoint(), "ep-2")
    assert not matches(endpoint(ChannelType="SMS"), "ep-1"), "the group's dimensions still apply"
    with_user = endpoint(User={"UserId": "user-7"})
    assert matches(with_user, "ep-99") is (form in ("csv", "jsonl", "s3name")), (
        "a user id: all its endpoints"
    )
    assert not matches(endpoint(User={"UserId": "user-9"}), "ep-98"), (
        "a row's Id wins over its user"
    )


def test_an_id_file_without_a_definition_file_is_an_imported_segment(tmp_path: Path) -> None:
    (tmp_path / "list-42.ids").write_text("a\nb\n")
    matches = compiled(tmp_path, segment(groups=[{"SourceSegments": _refs("list-42")}]))
    assert matches({}, "a") and not matches({}, "c")


def test_an_imported_segment_at_the_top(tmp_path: Path) -> None:
    _imported(tmp_path, "seed")
    (tmp_path / "seed.csv").write_text("Id\nep-1\nep-2\n")
    definition = load_definition(tmp_path / "seed.json")
    assert definition.segment_type == "IMPORT" and definition.imported is not None
    assert definition.files == (str(tmp_path / "seed.json"), str(tmp_path / "seed.csv"))
    assert len(definition.imported) == 2
    matches = compile_definition(definition, now=NOW)
    assert matches({}, "ep-2") and not matches({}, "ep-3")


def test_imported_segment_errors(tmp_path: Path) -> None:
    _imported(tmp_path, "lost")
    with pytest.raises(
        ConfigError, match=r"members were not found: put its endpoint ids in"
    ) as info:
        load_definition(tmp_path / "lost.json")
    assert info.value.key == "SegmentResponse.ImportDefinition"
    (tmp_path / "lost.csv").write_text("Id,User.UserId\nep-1,\n,\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, segment(groups=[{"SourceSegments": _refs("lost")}]))
    assert info.value.file == str(tmp_path / "lost.csv") and info.value.key == "line 3"
    assert "neither an Id nor a User.UserId" in str(info.value)
    assert "lost.json: SegmentResponse.ImportDefinition" in str(info.value), "and what led there"
    (tmp_path / "lost.csv").write_text("Email,Name\nx,y\n")
    with pytest.raises(ConfigError, match=r"neither an Id nor a User\.UserId column"):
        load_definition(tmp_path / "lost.json")


# -- DefinedSource ------------------------------------------------------------------


@pytest.mark.anyio
async def test_defined_source_keeps_the_segment_and_the_unreadable(tmp_path: Path) -> None:
    lines = []
    for i in range(1, 3001):
        if i % 1000 == 500:
            lines.append("{broken json")
        elif i == 2000:
            lines.append("")  # blank: not a record, but it keeps its number
        else:
            record = ep("ios" if i % 3 == 0 else "android")
            lines.append(json.dumps({"Id": f"ep-{i}", **record}))
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(lines) + "\n")
    matches = compiled(tmp_path, segment(IOS))
    source = DefinedSource(open_source(str(export)), matches, batch_size=100)
    assert source.name == open_source(str(export)).name
    got = []
    async for batch in source.batches():
        assert 0 < len(batch) <= 100
        got.extend(batch)
    expected = [i for i in range(1, 3001) if (i % 3 == 0 and i != 2000) or i % 1000 == 500]
    assert [r.line for r in got] == expected, "kept records keep their physical line"
    assert all((r.error is not None) is (r.line % 1000 == 500) for r in got)
    assert all(r.endpoint_id == f"ep-{r.line}" for r in got if r.error is None)
    assert source.scanned == 2999 and source.counts.kept == len(expected)
    resumed = DefinedSource(open_source(str(export)), matches)
    tail = [r.line async for batch in resumed.batches(start_line=2500) for r in batch]
    assert tail == [i for i in expected if i >= 2500]
    assert resumed.scanned == 501


def _export(directory: Path, ios_lines: set[int], n: int = 10_000) -> Path:
    export = directory / "export.jsonl"
    lines = (
        json.dumps({"Id": f"ep-{i}", **ep("ios" if i in ios_lines else "android")}) + "\n"
        for i in range(1, n + 1)
    )
    export.write_text("".join(lines))
    return export


@pytest.mark.anyio
async def test_small_catches_gather_into_batches(tmp_path: Path) -> None:
    export = _export(tmp_path, set(range(1, 10_001, 100)))  # 10 or 11 per 1024 read
    source = DefinedSource(open_source(str(export)), compiled(tmp_path, segment(IOS)),
                           batch_size=160)  # fmt: skip
    sizes, lines = [], []
    async for batch in source.batches():
        sizes.append(len(batch))
        lines.extend(r.line for r in batch)
    assert lines == list(range(1, 10_001, 100)), "in order, none lost"
    assert all(20 <= n <= 160 for n in sizes[:-1]), sizes  # at least an eighth of a batch


@pytest.mark.anyio
async def test_a_selective_segment_is_not_held_back(tmp_path: Path) -> None:
    export = _export(tmp_path, {5, 9000})
    source = DefinedSource(open_source(str(export)), compiled(tmp_path, segment(IOS)),
                           batch_size=64)  # fmt: skip
    seen_at = []
    async for batch in source.batches():
        seen_at.append((source.scanned, [r.line for r in batch]))
    assert [lines for _, lines in seen_at] == [[5], [9000]]
    # 64 batches' worth read (4096 records) without enough to fill one: it goes out.
    assert seen_at[0][0] < 9000, "the first record went out before the scan reached the second"


@pytest.mark.anyio
async def test_stopping_early_closes_the_source(tmp_path: Path) -> None:
    closed = []

    class Source:
        name = "fake"

        async def batches(self, *, start_line: int = 1) -> AsyncIterator[list[Record]]:
            try:
                for n in range(start_line, 100_000, 1000):
                    yield [Record(n + i, f"ep-{n + i}", ep("ios")) for i in range(1000)]
            finally:
                closed.append(True)

    source = DefinedSource(Source(), compiled(tmp_path, segment(IOS)))
    batches = source.batches()
    async for _ in batches:
        break
    await batches.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
