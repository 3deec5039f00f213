"""Issue 12, findings 1 and 2 for sources: no record is lost, memory is bounded.

Each finding's test fails on the code before the single reader stack: a malformed CSV
row ended the read (the rest had no outcome, exit 0), and a newline-free 2 GB input
was held whole (RSS 4.3 GB).
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, SegmentError
from dispatcher.model import Record
from dispatcher.segments import FileSource, open_source
from dispatcher.segments.lines import over_limit
from dispatcher.segments.s3 import S3Source
from dispatcher.segments.shards import ShardSource, plan_shards
from tests.segments.conftest import as_tuples, collect, put

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
HEADER = "Id,ChannelType,Address,User.UserAttributes.FirstName\n"


def csv_rows(n: int, bad: dict[int, str]) -> bytes:
    """A CSV of ``n`` data rows (Line 1..n); row ``i`` replaced by ``bad[i]``."""
    out = io.StringIO()
    out.write(HEADER)
    for i in range(1, n + 1):
        out.write(bad.get(i, f"ep-{i},SMS,+1{i:06d},Name{i}") + "\n")
    return out.getvalue().encode()


def check_only_bad(records: list[Record], n: int, bad: dict[int, str]) -> None:
    assert [r.line for r in records] == list(range(1, n + 1))
    for r in records:
        if r.line in bad:
            assert r.error is not None and r.endpoint_id is None, r
        else:
            assert (r.endpoint_id, r.error) == (f"ep-{r.line}", None), r
            assert r.definition == {
                "ChannelType": "SMS", "Address": f"+1{r.line:06d}",
                "User": {"UserAttributes": {"FirstName": [f"Name{r.line}"]}},
            }  # fmt: skip


# -- finding 1: one malformed CSV row ended the read -------------------------------------------

STRAY_QUOTE = '"Bob"by,SMS,+1,x'
MALFORMED = {
    "stray quote": ({500: STRAY_QUOTE}, "malformed CSV: ',' expected after '\"'"),
    "unclosed quote": (
        {500: 'ep-x,SMS,"+1,x'}, "malformed CSV: a quoted value is not closed on its line"
    ),
    "cell over csv's field limit": (
        {500: "ep-x,SMS,+1," + "y" * 131_073},
        "malformed CSV: field larger than field limit (131072)",
    ),
    "several": ({1: STRAY_QUOTE, 2: 'a,"b', 995: "q,\"r\"s,t,u", 996: '"'}, None),
}  # fmt: skip


@pytest.mark.parametrize(("bad", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("gz", [False, True])
async def test_a_malformed_csv_row_is_invalid_and_every_other_row_is_read(
    tmp_path: Path, bad: dict[int, str], reason: str | None, gz: bool
) -> None:
    data = csv_rows(996, bad)
    path = tmp_path / "segment.csv"
    path.write_bytes(gzip.compress(data) if gz else data)
    records = await collect(FileSource(path))
    check_only_bad(records, 996, bad)
    if reason is not None:
        assert records[499].error == reason


async def test_the_reasons_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(csv_rows(3, {1: STRAY_QUOTE, 2: 'a,"b,c,d'}))
    assert [(r.line, r.error) for r in await collect(FileSource(path))] == [
        (1, "malformed CSV: ',' expected after '\"'"),
        (2, "malformed CSV: a quoted value is not closed on its line"),
        (3, None),
    ]


async def test_a_line_break_inside_quotes_makes_both_lines_invalid_and_no_more(
    tmp_path: Path,
) -> None:
    """The record boundary rule: one physical line is one record (Pinpoint values hold
    no line breaks), so a quote can never carry the rest of the file away."""
    path = tmp_path / "s.csv"
    path.write_bytes(csv_rows(5, {2: 'ep-2,SMS,"+1\r\n', 3: 'two lines",Ann'})
                     .replace(b"\r\n\n", b"\r\n"))  # fmt: skip
    records = await collect(FileSource(path))
    assert [(r.line, r.endpoint_id, r.error is None) for r in records] == [
        (1, "ep-1", True), (2, None, False), (3, None, False), (4, "ep-4", True),
        (5, "ep-5", True),
    ]  # fmt: skip


async def test_s3_objects_and_shards_keep_reading_after_a_malformed_row(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    bad = {2: STRAY_QUOTE, 500: 'ep-x,SMS,"+1,x', 996: "\"'"}
    data = csv_rows(996, bad)
    await put(s3, bucket, "p/a.csv", data)
    await put(s3, bucket, "p/b.csv.gz", data, gz=True)
    url = f"s3://{bucket}/p/"

    records = await collect(S3Source(url, clients))
    check_only_bad(records[:996], 996, bad)
    assert [(r.line - 996, r.endpoint_id, r.error) for r in records[996:]] == [
        (r.line, r.endpoint_id, r.error) for r in records[:996]
    ]
    shards = await plan_shards(url, clients, target_records=300)
    assert [s.records for s in shards] == [300, 300, 300, 96] * 2
    from_shards = [r for s in shards for r in await collect(ShardSource(s, clients))]
    assert as_tuples(from_shards) == as_tuples(records)


# -- over-long records: INVALID, never held ----------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_record_over_the_limit_is_invalid_and_the_next_is_read(
    tmp_path: Path, fmt: str
) -> None:
    limit = 1024
    ok = b'{"Id": "a"}' if fmt == "jsonl" else b"a,SMS,+1,x"
    lines = [ok, b"z" * (limit + 1), ok, b"w" * (5 * limit), b"x" * limit, ok]
    data = (HEADER.encode() if fmt == "csv" else b"") + b"\r\n".join(lines)
    path = tmp_path / f"s.{fmt}"
    path.write_bytes(data)

    records = await collect(FileSource(path, fmt, max_record_bytes=limit))

    too_long = over_limit(limit)
    assert too_long == "record is over the 1024-byte limit ([segment] max_record_bytes)"
    # Line 5 is exactly at the limit (the \r\n not counted): read, and malformed.
    assert [(r.line, r.error == too_long) for r in records] == [
        (1, False), (2, True), (3, False), (4, True), (5, False), (6, False)
    ]  # fmt: skip
    assert [r.endpoint_id for r in records] == ["a", None, "a", None, None, "a"]


async def test_default_limit_is_one_mebibyte(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    big = b'{"Id": "a", "x": "' + b"y" * ((1 << 20) - 40) + b'"}'
    path.write_bytes(big + b"\n" + b'{"Id": "b", "x": "' + b"y" * (1 << 20) + b'"}\n')
    records = await collect(FileSource(path))
    assert [(r.endpoint_id, r.error) for r in records] == [
        ("a", None), (None, over_limit(1 << 20))
    ]  # fmt: skip


@pytest.mark.parametrize("value", [0, 1023, (64 << 20) + 1, True])
async def test_max_record_bytes_is_checked(tmp_path: Path, value: int) -> None:
    (tmp_path / "s.jsonl").write_bytes(b"")
    with pytest.raises(ConfigError, match="'max_record_bytes' must be"):
        open_source(str(tmp_path / "s.jsonl"), max_record_bytes=value)


# -- finding 2: peak RSS for 2 GB without a newline --------------------------------------------

RSS_LIMIT_KB = 300 * 1024
TWO_GB = 2 << 30


def probe(fmt: str, head: str, tail: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.segments.rss_probe", fmt, str(TWO_GB), head, tail],
        cwd=ROOT, capture_output=True, check=True, timeout=600,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_2gb_jsonl_without_newlines_is_one_invalid_record_in_bounded_memory() -> None:
    result = probe("jsonl", "", "")
    assert result["returncode"] == 0
    assert result["records"] == [[1, None, over_limit(1 << 20)]]
    assert result["maxrss_kb"] < RSS_LIMIT_KB, result["maxrss_kb"]


def test_a_2gb_csv_row_without_newline_is_invalid_and_the_next_row_is_read() -> None:
    result = probe("csv", "Id,ChannelType,Address\na,SMS,+1\n", "\nb,SMS,+2\n")
    assert result["returncode"] == 0
    assert result["records"] == [[1, "a", None], [2, None, over_limit(1 << 20)], [3, "b", None]]
    assert result["maxrss_kb"] < RSS_LIMIT_KB, result["maxrss_kb"]


async def test_a_gzip_bomb_is_streamed_in_bounded_pieces(tmp_path: Path) -> None:
    """256 MiB of one byte compresses to ~250 KB; it must be inflated a block at a time
    (the record is INVALID, the next one read)."""
    data = gzip.compress(b'{"Id": "a"}\n' + b"\x00" * (256 << 20) + b'\n{"Id": "b"}\n', 1)
    path = tmp_path / "bomb.gz"
    path.write_bytes(data)
    records = await collect(FileSource(path))
    assert [(r.line, r.endpoint_id, r.error) for r in records] == [
        (1, "a", None), (2, None, over_limit(1 << 20)), (3, "b", None)
    ]  # fmt: skip


# -- a source that cannot be read is a SegmentError, not a crash --------------------------------


async def test_truncated_or_corrupt_local_gzip_is_a_segment_error(tmp_path: Path) -> None:
    data = gzip.compress(b'{"Id": "a"}\n' * 1000)
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "c.gz").write_bytes(data[:10] + b"\x00garbage" * 20)
    with pytest.raises(SegmentError, match=r"t\.gz: gzip data ends early"):
        await collect(FileSource(tmp_path / "t.gz"))
    with pytest.raises(SegmentError, match=r"c\.gz: corrupt gzip data"):
        await collect(FileSource(tmp_path / "c.gz"))


async def test_an_unreadable_csv_header_is_a_segment_error(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_bytes(b'Id,"Address\na,b\n')
    (tmp_path / "long.csv").write_bytes(b"Id," + b"A" * 2000 + b"\na,b\n")
    with pytest.raises(SegmentError, match=r"q\.csv: unreadable CSV header: malformed CSV"):
        await collect(FileSource(tmp_path / "q.csv"))
    with pytest.raises(SegmentError, match=r"long\.csv: the CSV header is over the 1024-byte"):
        await collect(FileSource(tmp_path / "long.csv", max_record_bytes=1024))
