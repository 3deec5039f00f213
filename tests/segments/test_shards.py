"""Shard planning: every shard read alone, in order, gives exactly the S3Source's records."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, SegmentError
from dispatcher.segments import FileSource
from dispatcher.segments.s3 import S3Source
from dispatcher.segments.shards import Shard, ShardSource, plan_shards
from tests.conftest import endpoint
from tests.segments.conftest import as_tuples, collect, put
from tests.segments.s3_proxy import S3Proxy

pytestmark = pytest.mark.anyio

_prefixes = itertools.count()


async def read_shards(shards: list[Shard], clients: AwsClients, **kwargs: Any) -> list[Any]:
    """Every shard's records, each shard sent through its JSON form first (as via SQS)."""
    out = []
    for shard in shards:
        wire = orjson.dumps(shard.to_json())
        received = Shard.from_json(wire)
        assert received == shard
        records = await collect(ShardSource(received, clients, **kwargs))
        check_lines(shard, records)
        out.extend(records)
    return out


def line_count(data: bytes, fmt: str) -> int:
    """Lines an object adds to the global count, counted the local readers' way."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if fmt == "jsonl":
        return len(io.BytesIO(data).readlines())
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape",
                            newline="")  # fmt: skip
    return max(len(text.readlines()) - 1, 0)


def check_plan(shards: list[Shard], target: int) -> None:
    """Shards are small enough, numbered in order, and never overlap: within an object
    their byte ranges follow each other, and their line spans never overlap."""
    assert [s.index for s in shards] == list(range(len(shards)))
    for s in shards:
        assert 1 <= s.records <= target
        assert s.start < s.end
        assert s.first_line <= s.last_line
    assert all(a.last_line < b.first_line for a, b in itertools.pairwise(shards))
    for _, group in itertools.groupby(shards, key=lambda s: s.key):
        parts = list(group)
        assert all(a.end == b.start for a, b in itertools.pairwise(parts))


def check_lines(shard: Shard, records: list[Any]) -> None:
    """A shard's records lie within its line span and the last one is on last_line."""
    assert all(shard.first_line <= r.line <= shard.last_line for r in records)
    if records:
        assert records[-1].line == shard.last_line


# -- generated segments ------------------------------------------------------------------------

ODD_LINES = [
    b"",
    b"   ",
    b"\t",
    b'{"Id": ',
    b"[1, 2]",
    b'"x"',
    b'{"Id": "\xff\xfe"}',
    b'{"Id": ""}',
    b'{"Id": 7}',
]
"""Blank lines and lines that are not endpoints."""
JSON_LINES = st.one_of(
    st.builds(lambda i: json.dumps(endpoint(i)).encode(), st.integers(0, 30)),
    st.builds(
        lambda i: json.dumps({"ChannelType": "SMS", "Address": f"+1{i}"}).encode(),
        st.integers(0, 5),
    ),
    st.sampled_from(ODD_LINES),
)
CELLS = st.text(alphabet='ab,"\n\r \u00e9;', max_size=5)  # line breaks: one bad record per line
COLUMNS = ["Id", "ChannelType", "Address", "Attributes.Tier", "Attributes.Tier", "Metrics.score",
           "User.UserId"]  # fmt: skip


@st.composite
def jsonl_object(draw: st.DrawFn, bom: bool) -> bytes:
    lines = draw(st.lists(JSON_LINES, max_size=10))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = newline.join(lines)
    if draw(st.booleans()) and lines:
        data += newline
    return (b"\xef\xbb\xbf" if bom else b"") + data


@st.composite
def csv_object(draw: st.DrawFn, bom: bool) -> bytes:
    # Distinct positions, so the repeated Attributes.Tier column (a list) can come twice.
    columns = st.lists(st.sampled_from(range(len(COLUMNS))), min_size=1, max_size=4, unique=True)
    header = [COLUMNS[i] for i in draw(columns)]
    terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(header)
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row", "row", "row", "short", "blank", "number"]))
        if kind == "blank":
            out.write(terminator)
        elif kind == "short":
            writer.writerow(draw(st.lists(CELLS, max_size=len(header) + 1)))
        else:
            row = draw(st.lists(CELLS, min_size=len(header), max_size=len(header)))
            if kind == "number":
                row = [draw(st.sampled_from(["1.5", "x", ""])) for _ in header]
            writer.writerow(row)
    text = out.getvalue()
    if draw(st.integers(0, 9)) == 0:
        text += '"unclosed,' + terminator + "a,b" + terminator  # a bad line, then a record
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        data += b"\xff\xfe,x" + terminator.encode()
    return (b"\xef\xbb\xbf" if bom else b"") + data


@st.composite
def segments(draw: st.DrawFn) -> list[tuple[str, bytes, str]]:
    """1-3 objects ``(name, stored bytes, format)``: JSON lines and CSV, plain and gzip."""
    objects = []
    for i in range(draw(st.integers(1, 3))):
        fmt = draw(st.sampled_from(["jsonl", "csv"]))
        bom = i == 0 and draw(st.booleans())
        data = draw(csv_object(bom) if fmt == "csv" else jsonl_object(bom))
        gz = draw(st.booleans())
        name = f"part-{i:04d}.{fmt}" + (".gz" if gz else "")
        objects.append((name, gzip.compress(data) if gz else data, fmt))
    return objects


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    objects=segments(),
    target=st.integers(1, 5),
    chunk_size=st.sampled_from([1, 3, 16, 1 << 20]),
)
async def test_shards_concatenated_are_the_source_and_the_source_is_the_local_readers(
    clients: AwsClients, s3: Any, bucket: str, tmp_path: Path,
    objects: list[tuple[str, bytes, str]], target: int, chunk_size: int,
) -> None:  # fmt: skip
    prefix = f"gen-{next(_prefixes)}/"
    for name, data, _ in objects:
        await put(s3, bucket, prefix + name, data)
    url = f"s3://{bucket}/{prefix}"

    source = await collect(S3Source(url, clients, chunk_size=chunk_size, batch_size=5))

    # The source is the local readers' output, object after object, Line made global.
    expected: list[Any] = []
    offset = 0
    for name, data, fmt in objects:
        path = tmp_path / name
        path.write_bytes(data)
        local = await collect(FileSource(path))
        expected += [
            (r.line + offset, *t[1:]) for r, t in zip(local, as_tuples(local), strict=True)
        ]
        offset += line_count(data, fmt)
    assert as_tuples(source) == expected

    # Every shard read alone, in plan order, gives the same records.
    for size in (target, 1_000_000):
        shards = await plan_shards(url, clients, target_records=size, chunk_size=chunk_size)
        check_plan(shards, size)
        assert sum(s.records for s in shards) == len(source)
        got = await read_shards(shards, clients, chunk_size=chunk_size, batch_size=4)
        assert as_tuples(got) == as_tuples(source)


# -- properties of particular plans -----------------------------------------------------------


def jsonl(ids: range, blank_every: int = 0) -> bytes:
    lines = []
    for i in ids:
        lines.append(json.dumps(endpoint(i)).encode())
        if blank_every and i % blank_every == 0:
            lines.append(b"")
    return b"\n".join(lines) + b"\n"


async def test_plain_shards_are_byte_ranges_read_with_one_ranged_get_each(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str
) -> None:
    data = b"\xef\xbb\xbf" + jsonl(range(10), blank_every=3)
    await put(s3, bucket, "seg.jsonl", data)
    shards = await plan_shards(f"s3://{bucket}/seg.jsonl", clients, target_records=4)

    assert (shards[0].start, shards[0].records, shards[0].gzip) == (0, 4, False)
    assert [s.records for s in shards] == [4, 4, 2]
    assert shards[-1].end == len(data)
    assert [s.first_line for s in shards] == [1, 6, 12]  # shard 2 starts with blank line 6
    assert [s.last_line for s in shards] == [5, 11, 13]  # 6 lines for 4 records
    proxy.requests.clear()
    records = await read_shards(shards, clients)
    assert proxy.ranges("seg.jsonl") == [f"bytes={s.start}-{s.end - 1}" for s in shards]
    assert [r.endpoint_id for r in records] == [f"ep-{i}" for i in range(10)]
    assert records[0].line == 1 and records[-1].line == 13


async def test_csv_shards_carry_the_header_and_gzip_shards_inflated_ranges(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    header = b"\xef\xbb\xbfId,Address,Attributes.Tier,Attributes.Tier\r\n"
    rows = b"".join(f'c{i},+1{i},"a,{i}","b""{i}"\r\n'.encode() for i in range(7))
    await put(s3, bucket, "p/a.csv.gz", header + rows, gz=True)
    await put(s3, bucket, "p/b.csv", header + rows)
    shards = await plan_shards(f"s3://{bucket}/p/", clients, target_records=3)

    assert [(s.key, s.gzip, s.records, s.first_line, s.last_line) for s in shards] == [
        ("p/a.csv.gz", True, 3, 1, 3), ("p/a.csv.gz", True, 3, 4, 6),
        ("p/a.csv.gz", True, 1, 7, 7), ("p/b.csv", False, 3, 8, 10),
        ("p/b.csv", False, 3, 11, 13), ("p/b.csv", False, 1, 14, 14),
    ]  # fmt: skip
    assert all(s.header == header for s in shards)
    assert shards[0].start == len(header) and shards[2].end == len(header + rows)
    wire = shards[4].to_json()
    assert wire["Header"] == header.decode()
    assert len(orjson.dumps(wire)) < 400

    alone = await collect(ShardSource(Shard.from_json(orjson.dumps(wire)), clients))
    assert [(r.line, r.endpoint_id, r.definition) for r in alone] == [
        (11 + i, f"c{n}", {"Address": f"+1{n}", "Attributes": {"Tier": [f"a,{n}", f'b"{n}']}})
        for i, n in enumerate(range(3, 6))
    ]


@pytest.mark.parametrize("gz", [False, True])
async def test_a_large_object_is_cut_into_many_shards(
    clients: AwsClients, s3: Any, bucket: str, gz: bool
) -> None:
    n = 28_000
    data = jsonl(range(n), blank_every=1000)
    assert len(data) > 5_000_000
    await put(s3, bucket, "big.jsonl", data, gz=gz)
    url = f"s3://{bucket}/big.jsonl"
    chunk = 64 * 1024

    shards = await plan_shards(url, clients, target_records=10_000, chunk_size=chunk)
    assert [s.records for s in shards] == [10_000, 10_000, 8_000]
    check_plan(shards, 10_000)

    got = await read_shards(shards, clients, chunk_size=chunk)
    assert [r.endpoint_id for r in got] == [f"ep-{i}" for i in range(n)]
    # A blank line after records 0, 1000, 2000...: ceil(i / 1000) of them before record i.
    assert [r.line for r in got] == [i + 1 + -(-i // 1000) for i in range(n)]
    assert got[-1].definition == {k: v for k, v in endpoint(n - 1).items() if k != "Id"}


async def test_start_line_within_a_shard(clients: AwsClients, s3: Any, bucket: str) -> None:
    await put(s3, bucket, "seg.jsonl", jsonl(range(6)))
    shards = await plan_shards(f"s3://{bucket}/seg.jsonl", clients, target_records=3)
    second = ShardSource(shards[1], clients)
    assert [r.line for r in await collect(second, start_line=5)] == [5, 6]
    assert [r.line for r in await collect(second, start_line=1)] == [4, 5, 6]
    assert await collect(second, start_line=7) == []
    await put(s3, bucket, "seg.jsonl", b"changed")  # past last_line, the object is not read
    assert await collect(second, start_line=7) == []


async def test_objects_without_records_get_no_shard_but_keep_their_lines(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "p/1.jsonl", b"\n  \n\n")
    await put(s3, bucket, "p/2.csv", b"Id,Address\n")
    await put(s3, bucket, "p/3.jsonl", b'{"Id": "x"}\n')
    shards = await plan_shards(f"s3://{bucket}/p/", clients)
    assert [(s.key, s.first_line, s.last_line, s.records) for s in shards] == [
        ("p/3.jsonl", 4, 4, 1)
    ]
    assert [(r.line, r.endpoint_id) for r in await read_shards(shards, clients)] == [(4, "x")]


async def test_an_object_changed_after_planning_fails_its_shards(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "seg.jsonl", jsonl(range(4)))
    shards = await plan_shards(f"s3://{bucket}/seg.jsonl", clients, target_records=2)
    await put(s3, bucket, "seg.jsonl", jsonl(range(100, 104)))
    with pytest.raises(
        SegmentError, match=r"changed since it was listed: its ETag differs \(PreconditionFailed\)"
    ):
        await collect(ShardSource(shards[1], clients))


async def test_a_shard_that_reads_differently_from_its_plan_is_an_error(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "seg.jsonl", jsonl(range(4)))
    shards = await plan_shards(f"s3://{bucket}/seg.jsonl", clients, target_records=2)
    wire = shards[0].to_json() | {"Records": 3}
    with pytest.raises(SegmentError, match="read 2 records, the plan says 3"):
        await collect(ShardSource(Shard.from_json(wire), clients))


async def test_target_records_must_be_positive(clients: AwsClients, bucket: str) -> None:
    with pytest.raises(ConfigError, match="'target_records' must be > 0"):
        await plan_shards(f"s3://{bucket}/x", clients, target_records=0)


# -- the JSON form -----------------------------------------------------------------------------


@given(
    index=st.integers(0, 10**6), key=st.text(min_size=1, max_size=50),
    gz=st.booleans(), start=st.integers(0, 2**40), length=st.integers(0, 2**30),
    first_line=st.integers(1, 2**40), span=st.integers(0, 2**20), records=st.integers(0, 10**6),
    header=st.one_of(st.none(), st.binary(max_size=40)),
)  # fmt: skip
def test_shard_json_round_trips(
    index: int, key: str, gz: bool, start: int, length: int, first_line: int, span: int,
    records: int, header: bytes | None,
) -> None:  # fmt: skip
    key = key.encode("utf-8", "replace").decode("utf-8")
    fmt = "jsonl" if header is None else "csv"
    shard = Shard(index, "bucket", key, '"etag"', fmt, gz, start, start + length, first_line,
                  first_line + span, records, header)  # fmt: skip
    assert Shard.from_json(orjson.dumps(shard.to_json())) == shard
    assert Shard.from_json(shard.to_json()) == shard


@pytest.mark.parametrize(
    "change",
    [
        {"Bytes": [5, 2]},
        {"Bytes": "0-9"},
        {"Format": "xml"},
        {"FirstLine": 0},
        {"LastLine": 0},
        {"Index": "3"},
        {"Records": True},
        {"Gzip": "false"},
        {"Bytes": [0.5, 3]},
        {"Header": "Id\n"},  # JSON lines with a header
        {"HeaderBase64": "!!"},
    ],
)
def test_malformed_shards_are_rejected(change: dict[str, Any]) -> None:
    good = Shard(0, "b", "k", "", "jsonl", False, 0, 10, 1, 3, 2).to_json()
    Shard.from_json(good)
    with pytest.raises(SegmentError, match="malformed shard"):
        Shard.from_json(good | change)
    with pytest.raises(SegmentError, match="malformed shard"):
        Shard.from_json({k: v for k, v in good.items() if k != "Key"})
    with pytest.raises(SegmentError, match="malformed shard"):
        Shard.from_json(b"[1]")
