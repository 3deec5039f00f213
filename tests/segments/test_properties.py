"""Property tests: whatever the bytes, every physical record becomes exactly one Record.

For arbitrary bytes and for structured fuzz (valid records mixed with garbage, stray
quotes, NULs, lines over a small ``max_record_bytes``, CRLF and lone CR, BOMs, no
final newline, gzip of any of these), the Records of every source are checked against
an independent model (``oracle``): one per non-blank physical line, true line
numbers, strictly increasing, over-long lines INVALID, no exception. Local files are
read with tiny and normal block sizes; the S3 path (objects, prefixes, shards) runs a
few examples against moto and must give exactly the local Records.
"""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dispatcher.aws import AwsClients
from dispatcher.errors import SegmentError
from dispatcher.model import Record
from dispatcher.segments import MIN_MAX_RECORD_BYTES, FileSource
from dispatcher.segments.s3 import S3Source
from dispatcher.segments.shards import ShardSource, plan_shards
from tests.conftest import endpoint
from tests.segments.conftest import as_tuples, collect, put
from tests.segments.oracle import BOM, check_records, line_count

LIMIT = MIN_MAX_RECORD_BYTES  # small, so that over-long lines are cheap to make
HEADER = b"Id,ChannelType,Address,Attributes.Tier\n"
_names = itertools.count()

huge = st.builds(
    lambda n, ch, ws: (b" \t" if ws else ch) * n,
    st.integers(LIMIT // 2 - 2, LIMIT + 600),  # around the limit, both sides
    st.sampled_from([b"x", b"\x00", b'"', b"\xff", b"{}"]),
    st.booleans(),  # whitespace only: blank (JSON lines), however long
)
json_line = st.builds(lambda i: json.dumps(endpoint(i)).encode(), st.integers(0, 99))
csv_line = st.builds(lambda i: f"id{i},SMS,+1{i},gold".encode(), st.integers(0, 99))
odd = st.sampled_from([
    b"", b"   ", b"\t", b"\x00", b"\x00\x00,\x00", b'"Bob"by,x,y,z', b'a,"unclosed,b', b'"',
    b'a,"b""c",d,e', b"\xff\xfe", b'{"Id": "\xff"}', b"[1]", b'{"Id": ', b"\xef\xbb\xbf{}",
    b'x,"y\x00",z,w', b"\x0b\x0c",
])  # fmt: skip
spanning = st.sampled_from([b'q,SMS,"opens a value\nand closes it",z', b'q,"a\r\nb",c,d'])
"""A quoted line break: two physical lines, each malformed alone."""
garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@st.composite
def fuzzed(draw: st.DrawFn, fmt: str) -> bytes:
    """Lines of every kind, joined by any terminators, maybe BOM'd, maybe no final one."""
    good = csv_line if fmt == "csv" else json_line
    lines = draw(st.lists(st.one_of(good, good, odd, garbage, huge, spanning), max_size=25))
    ends = [b"\n", b"\r\n"] + ([b"\r"] if fmt == "csv" else [])
    out = HEADER if fmt == "csv" else b""
    end = b""
    for line in lines:
        end = draw(st.sampled_from(ends))
        out += line + end
    keep_last = draw(st.booleans())
    if end and not keep_last:
        out = out[: -len(end)]  # no final terminator
    if draw(st.integers(0, 4)) == 0:
        out = BOM + out
    return out


def stored(data: bytes, gz: bool, members: int) -> bytes:
    """``data`` as stored: plain, or gzip in ``members`` concatenated members."""
    if not gz:
        return data
    step = max(len(data) // members, 1)
    parts = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    return b"".join(gzip.compress(p) for p in parts)


def read_file(
    tmp_path: Path, data: bytes, fmt: str, block_size: int, batch_size: int = 3
) -> list[Record]:
    import anyio

    path = tmp_path / f"seg-{next(_names)}.{fmt}"
    path.write_bytes(data)

    async def run() -> list[Record]:
        source = FileSource(path, fmt, batch_size=batch_size, max_record_bytes=LIMIT,
                            block_size=block_size)  # fmt: skip
        return await collect(source, batch_size=batch_size)

    return anyio.run(run)


BLOCKS = st.sampled_from([1, 7, 64, 1000, 1 << 20])
SETTINGS = settings(
    max_examples=120, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@given(data=st.data(), gz=st.booleans(), members=st.integers(1, 3), block_size=BLOCKS)
@SETTINGS
def test_fuzzed_files_give_one_record_per_physical_record(
    tmp_path: Path, fmt: str, data: st.DataObject, gz: bool, members: int, block_size: int
) -> None:
    plain = data.draw(fuzzed(fmt))
    records = read_file(tmp_path, stored(plain, gz, members), fmt, block_size)
    check_records(records, plain, fmt, LIMIT)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@given(body=st.binary(max_size=3000), block_size=BLOCKS)
@SETTINGS
def test_arbitrary_bytes_give_one_record_per_physical_record(
    tmp_path: Path, fmt: str, body: bytes, block_size: int
) -> None:
    data = HEADER + body if fmt == "csv" else body
    assume(not data.startswith(b"\x1f\x8b"))  # that would be (corrupt) gzip: a SegmentError
    check_records(read_file(tmp_path, data, fmt, block_size), data, fmt, LIMIT)


@given(data=st.binary(max_size=400), block_size=st.sampled_from([1, 1 << 20]))
@SETTINGS
def test_an_arbitrary_csv_is_records_or_a_bad_header(
    tmp_path: Path, data: bytes, block_size: int
) -> None:
    """With no valid header promised, the only error allowed is the header's (or the
    gzip's, for bytes that start like gzip)."""
    try:
        records = read_file(tmp_path, data, "csv", block_size)
    except SegmentError as exc:
        assert "CSV header" in str(exc) or "gzip" in str(exc)
    else:
        if not data.startswith(b"\x1f\x8b"):
            check_records(records, data, "csv", LIMIT)


# -- the same through S3 (objects, a prefix, shards) ------------------------------------------


@st.composite
def s3_objects(draw: st.DrawFn) -> list[tuple[str, bool, bytes]]:
    """1-3 objects ``(format, gzip, plain bytes)``, drawn before the test runs: a draw
    inside an async test would raise hypothesis's StopTest through the event loop."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        fmt = draw(st.sampled_from(["jsonl", "csv"]))
        out.append((fmt, draw(st.booleans()), draw(fuzzed(fmt))))
    return out


@pytest.mark.anyio
@given(objects=s3_objects(), chunk_size=st.sampled_from([64, 1 << 20]), target=st.integers(1, 6))
@settings(
    max_examples=12, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
async def test_s3_prefixes_and_shards_give_the_local_records(
    clients: AwsClients, s3: Any, bucket: str, tmp_path: Path,
    objects: list[tuple[str, bool, bytes]], chunk_size: int, target: int,
) -> None:  # fmt: skip
    prefix = f"prop-{next(_names)}/"
    expected: list[tuple[Any, ...]] = []
    offset = 0
    for i, (fmt, gz, plain) in enumerate(objects):
        name = f"part-{i}.{fmt}" + (".gz" if gz else "")
        await put(s3, bucket, prefix + name, plain, gz=gz)
        path = tmp_path / name
        path.write_bytes(gzip.compress(plain) if gz else plain)
        local = await collect(FileSource(path, max_record_bytes=LIMIT))
        check_records(local, plain, fmt, LIMIT)
        expected += [(line + offset, *rest) for line, *rest in as_tuples(local)]
        offset += line_count(plain, fmt)
    url = f"s3://{bucket}/{prefix}"

    source = S3Source(url, clients, chunk_size=chunk_size, batch_size=4, max_record_bytes=LIMIT)
    got = await collect(source, batch_size=4)
    assert as_tuples(got) == expected

    shards = await plan_shards(url, clients, target_records=target, chunk_size=chunk_size,
                               max_record_bytes=LIMIT)  # fmt: skip
    from_shards: list[Record] = []
    for shard in shards:
        reader = ShardSource(shard, clients, chunk_size=chunk_size, max_record_bytes=LIMIT)
        from_shards += await collect(reader)
    assert as_tuples(from_shards) == expected
