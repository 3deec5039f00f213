"""S3Source against moto: the same Records as the local readers, streamed, Line global."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.aws import AwsClients
from dispatcher.errors import ConfigError, SegmentError
from dispatcher.segments import FileSource
from dispatcher.segments.s3 import S3Source, list_objects
from tests.conftest import endpoint
from tests.segments.conftest import as_tuples, collect, put
from tests.segments.s3_proxy import S3Proxy

pytestmark = pytest.mark.anyio

JSONL = (
    b'\xef\xbb\xbf{"Id": "a", "ChannelType": "SMS", "Address": "+1"}\n'
    b"\n"
    b'{"ChannelType": "EMAIL", "Address": "x@example.com"}\n'
    b"[1]\n"
    b'{"Id": "b", "Address": \n'
    b'{"Id": "\xff\xfe", "ChannelType": "SMS"}\n'
    b"   \r\n"
    b'{"Id": "c"}'
)
CSV = (
    b"\xef\xbb\xbfId,ChannelType,Address,Attributes.Tier,Attributes.Tier,Metrics.score\r\n"
    b'a,SMS,+1,"gold, plus","say ""hi""",1.5\r\n'
    b"\r\n"
    b'b,EMAIL,"two\nlines",x,y,\r'
    b"c,SMS,+3,,,not-a-number\n"
    b"d,SMS\n"
    b'e,SMS,"\xff",,,\n'
    b'f,SMS,"unclosed,,,\n'
    b"g,SMS,+7,,,\n"
)


async def local_records(tmp_path: Path, data: bytes, name: str) -> list[Any]:
    path = tmp_path / name
    path.write_bytes(data)
    return as_tuples(await collect(FileSource(path)))


@pytest.mark.parametrize(
    ("name", "data", "gz"),
    [
        ("seg.jsonl", JSONL, False),
        ("seg.jsonl.gz", JSONL, True),
        ("export-part.gz", JSONL, True),
        ("seg.csv", CSV, False),
        ("seg.csv.gz", CSV, True),
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
async def test_one_object_gives_exactly_the_local_readers_records(
    clients: AwsClients, s3: Any, bucket: str, tmp_path: Path,
    name: str, data: bytes, gz: bool, chunk_size: int,
) -> None:  # fmt: skip
    await put(s3, bucket, name, data, gz=gz)
    expected = await local_records(tmp_path, gzip.compress(data) if gz else data, name)
    assert len(expected) >= 6  # the fixture covers errors, blanks and a BOM

    source = S3Source(f"s3://{bucket}/{name}", clients, chunk_size=chunk_size, batch_size=4)
    got = await collect(source, batch_size=4)

    assert as_tuples(got) == expected


async def test_gzip_is_recognised_by_content_not_name(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    lines = b"".join(json.dumps(endpoint(i)).encode() + b"\n" for i in range(5))
    await put(s3, bucket, "plain-but-named.gz", lines)
    await put(s3, bucket, "gzip-but-named.jsonl", lines, gz=True)
    for key in ("plain-but-named.gz", "gzip-but-named.jsonl"):
        records = await collect(S3Source(f"s3://{bucket}/{key}", clients))
        assert [r.endpoint_id for r in records] == [f"ep-{i}" for i in range(5)]


async def test_prefix_reads_objects_in_key_order_with_global_lines(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    def jsonl(ids: range) -> bytes:
        return b"".join(json.dumps(endpoint(i)).encode() + b"\n" for i in ids)

    # Uploaded out of order; markers, folders and empty objects are not data.
    await put(s3, bucket, "export/part-0002.gz", jsonl(range(20, 23)), gz=True)
    await put(s3, bucket, "export/part-0000.gz", b"\xef\xbb\xbf" + jsonl(range(0, 2)), gz=True)
    await put(s3, bucket, "export/part-0001.jsonl", jsonl(range(10, 12)) + b"\n")  # 3 lines
    await put(s3, bucket, "export/_SUCCESS", b"ok")
    await put(s3, bucket, "export/", b"")
    await put(s3, bucket, "export/empty.jsonl", b"")
    await put(
        s3, bucket, "export/sub/part-0003.csv.gz", b"Id,ChannelType\nz1,SMS\nz2,SMS\n", gz=True
    )
    await put(s3, bucket, "exports-other/part-9.jsonl", jsonl(range(99, 100)))

    records = await collect(S3Source(f"s3://{bucket}/export/", clients))

    assert [(r.line, r.endpoint_id) for r in records] == [
        (1, "ep-0"), (2, "ep-1"),
        (3, "ep-10"), (4, "ep-11"),  # line 5 is blank
        (6, "ep-20"), (7, "ep-21"), (8, "ep-22"),
        (9, "z1"), (10, "z2"),  # CSV by extension; its header is not a line
    ]  # fmt: skip
    assert all(r.error is None for r in records)


async def test_a_key_that_is_a_folder_reads_as_a_prefix(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "runs/seg/a.jsonl", b'{"Id": "x"}\n')
    await put(s3, bucket, "runs/seg/b.jsonl", b'{"Id": "y"}\n')
    objects = await list_objects(f"s3://{bucket}/runs/seg", clients)
    assert [o.key for o in objects] == ["runs/seg/a.jsonl", "runs/seg/b.jsonl"]
    records = await collect(S3Source(f"s3://{bucket}/runs/seg", clients))
    assert [(r.line, r.endpoint_id) for r in records] == [(1, "x"), (2, "y")]


async def test_start_line_skips_records_before_it_across_objects(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "p/1.jsonl", b'{"Id": "a"}\n{"Id": "b"}\n')
    await put(s3, bucket, "p/2.csv", b"Id\nc\n\nd\n")
    source = S3Source(f"s3://{bucket}/p/", clients)
    assert [(r.line, r.endpoint_id) for r in await collect(source)] == [
        (1, "a"), (2, "b"), (3, "c"), (5, "d")
    ]  # fmt: skip
    for start, ids in [(2, ["b", "c", "d"]), (4, ["d"]), (5, ["d"]), (6, [])]:
        assert [r.endpoint_id for r in await collect(source, start_line=start)] == ids


@pytest.mark.parametrize("gz", [False, True])
async def test_object_larger_than_the_chunk_size_streams_correctly(
    clients: AwsClients, s3: Any, bucket: str, gz: bool
) -> None:
    n = 28_000
    body = b"".join(json.dumps(endpoint(i)).encode() + b"\n" for i in range(n))
    assert len(body) > 5_000_000
    await put(s3, bucket, "big.jsonl", body, gz=gz)

    source = S3Source(f"s3://{bucket}/big.jsonl", clients, chunk_size=64 * 1024, batch_size=1000)
    records = await collect(source, batch_size=1000)

    assert len(records) == n
    assert [r.line for r in records] == list(range(1, n + 1))
    assert [r.endpoint_id for r in records] == [f"ep-{i}" for i in range(n)]
    assert records[-1].definition == {k: v for k, v in endpoint(n - 1).items() if k != "Id"}
    assert all(r.error is None for r in records)


async def test_a_body_that_breaks_off_is_resumed_from_where_it_stopped(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str
) -> None:
    body = b"".join(json.dumps(endpoint(i)).encode() + b"\n" for i in range(2000))
    assert len(gzip.compress(body)) > 3 * 5000
    await put(s3, bucket, "seg.jsonl.gz", body, gz=True)
    proxy.cut("seg.jsonl.gz", after=5000, times=2)  # gzip: the inflater must carry on

    records = await collect(S3Source(f"s3://{bucket}/seg.jsonl.gz", clients, chunk_size=4096))

    assert [r.endpoint_id for r in records] == [f"ep-{i}" for i in range(2000)]
    ranges = proxy.ranges("seg.jsonl.gz")
    assert ranges == [None, "bytes=5000-", "bytes=10000-"]


async def test_a_body_that_keeps_breaking_off_is_a_segment_error(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "seg.jsonl", b'{"Id": "a"}\n' * 10_000)
    proxy.cut("seg.jsonl", after=100, times=-1)
    with pytest.raises(SegmentError, match=r"s3://seg-test-\d+/seg.jsonl"):
        await collect(S3Source(f"s3://{bucket}/seg.jsonl", clients))
    assert len(proxy.ranges("seg.jsonl")) == 4


async def test_transient_s3_errors_are_retried_and_permanent_ones_are_not(
    proxy: S3Proxy, clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "seg.jsonl", b'{"Id": "a"}\n')
    proxy.fail("GET", "seg.jsonl", status=503, code="SlowDown", times=2)
    assert [
        r.endpoint_id for r in await collect(S3Source(f"s3://{bucket}/seg.jsonl", clients))
    ] == ["a"]
    assert len(proxy.ranges("seg.jsonl")) == 3

    proxy.fail("GET", "seg.jsonl", status=403, code="AccessDenied", times=-1)
    with pytest.raises(SegmentError, match=r"seg.jsonl: access denied \(AccessDenied\)"):
        await collect(S3Source(f"s3://{bucket}/seg.jsonl", clients))
    assert len(proxy.ranges("seg.jsonl")) == 4


async def test_missing_bucket_key_or_prefix_is_a_clear_segment_error(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    with pytest.raises(SegmentError, match=r"the bucket does not exist \(NoSuchBucket\)"):
        await collect(S3Source("s3://no-such-bucket-here/export/", clients))
    with pytest.raises(SegmentError, match="no such object, and no objects under it"):
        await collect(S3Source(f"s3://{bucket}/nothing.jsonl", clients))
    with pytest.raises(SegmentError, match="no such object"):
        await collect(S3Source(f"s3://{bucket}/export/", clients))


async def test_only_markers_under_a_prefix_is_an_empty_segment(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "export/_SUCCESS", b"")
    await put(s3, bucket, "export/.keep", b"x")
    assert await collect(S3Source(f"s3://{bucket}/export/", clients)) == []


async def test_corrupt_or_truncated_gzip_is_a_segment_error(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    data = gzip.compress(b'{"Id": "a"}\n' * 1000)
    await put(s3, bucket, "truncated.gz", data[: len(data) // 2])
    await put(s3, bucket, "corrupt.gz", data[:10] + b"\x00garbage" * 20)
    with pytest.raises(SegmentError, match=r"truncated\.gz: gzip data ends early"):
        await collect(S3Source(f"s3://{bucket}/truncated.gz", clients))
    with pytest.raises(SegmentError, match=r"corrupt\.gz: corrupt gzip data"):
        await collect(S3Source(f"s3://{bucket}/corrupt.gz", clients))


async def test_concatenated_gzip_members_are_one_stream(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    data = gzip.compress(b'{"Id": "a"}\n{"Id"') + b"\x00\x00" + gzip.compress(b': "b"}\n')
    await put(s3, bucket, "multi.gz", data)
    records = await collect(S3Source(f"s3://{bucket}/multi.gz", clients, chunk_size=3))
    assert [(r.line, r.endpoint_id) for r in records] == [(1, "a"), (2, "b")]


async def test_a_bad_csv_header_names_the_object(clients: AwsClients, s3: Any, bucket: str) -> None:
    await put(s3, bucket, "p/bad.csv", b"Id,,Address\n1,2,3\n")
    with pytest.raises(SegmentError, match=r"s3://seg-test-\d+/p/bad.csv: CSV header"):
        await collect(S3Source(f"s3://{bucket}/p/", clients))


async def test_bad_urls_and_formats_are_config_errors(clients: AwsClients) -> None:
    with pytest.raises(ConfigError, match="not an S3 URL"):
        S3Source("/tmp/seg.jsonl", clients)
    with pytest.raises(ConfigError, match="no bucket name"):
        S3Source("s3:///key", clients)
    with pytest.raises(ConfigError, match="unknown segment format 'xml'"):
        S3Source("s3://b/k", clients, "xml")


async def test_a_format_given_applies_to_every_object(
    clients: AwsClients, s3: Any, bucket: str
) -> None:
    await put(s3, bucket, "p/a.txt", b"Id,Address\nx,+1\n")
    records = await collect(S3Source(f"s3://{bucket}/p/", clients, "csv"))
    assert [(r.line, r.endpoint_id, r.definition) for r in records] == [(1, "x", {"Address": "+1"})]
