"""Local byte sources: stdin (``--segment -``), named pipes read off the event loop,
cancellation that frees the reading thread, and ``[segment] max_record_bytes``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from dispatcher.errors import ConfigError
from dispatcher.model import Record
from dispatcher.segments import DEFAULT_MAX_RECORD_BYTES, FileSource, open_source
from dispatcher.segments.streams import FileReader
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
READ_STDIN = """
import json, sys, anyio
from dispatcher.segments import open_source
async def main():
    source = open_source("-", *sys.argv[1:])
    out = [source.name]
    async for batch in source.batches():
        out += [(r.line, r.endpoint_id, r.error) for r in batch]
    print(json.dumps(out))
anyio.run(main)
"""


@pytest.mark.parametrize("stdin", ["pipe", "file"])
@pytest.mark.parametrize(
    ("fmt", "data", "expected"),
    [
        ([], b'{"Id": "a"}\n\n[1]\n{"Id": "b"}', [[1, "a", None], [4, "b", None]]),
        (["csv"], b"Id,Address\r\nx,+1\r\n\"bad\"q,+2\r\ny,+3\r\n",
         [[1, "x", None], [3, "y", None]]),
    ],
)  # fmt: skip
def test_dash_reads_standard_input(
    tmp_path: Path, stdin: str, fmt: list[str], data: bytes, expected: list[object]
) -> None:
    command = [sys.executable, "-c", READ_STDIN, *fmt]
    if stdin == "pipe":
        done = subprocess.run(command, input=data, capture_output=True, cwd=ROOT, check=True,
                              timeout=60)  # fmt: skip
    else:  # `dispatcher run --segment - < file`: a regular file, no pipe
        path = tmp_path / "segment"
        path.write_bytes(data)
        with path.open("rb") as f:
            done = subprocess.run(command, stdin=f, capture_output=True, cwd=ROOT, check=True,
                                  timeout=60)  # fmt: skip
    name, *records = json.loads(done.stdout)
    assert name == "-"
    assert [rec for rec in records if rec[2] is None] == expected
    assert len(records) == 3  # the malformed line is a record too


def test_dash_is_stdin_only_as_a_string(tmp_path: Path) -> None:
    source = FileSource("-")
    assert (source.stdin, source.name, source.format) == (True, "-", "jsonl")
    named = FileSource(tmp_path / "-")
    assert (named.stdin, named.name) == (False, str(tmp_path / "-"))
    assert FileSource("-", "csv").format == "csv"


async def test_a_slow_pipe_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """The writer waits for the event loop to turn while the reader waits for bytes;
    a reader that blocked the loop would leave it waiting (it gives up after 20 s)."""
    fifo = tmp_path / "segment"
    os.mkfifo(fifo)
    loop_turned = threading.Event()
    writer_saw_the_loop: list[bool] = []

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as f:
            f.write(b'{"Id": "a"}\n')
            writer_saw_the_loop.append(loop_turned.wait(20))
            f.write(b'{"Id": "b"}\n')

    thread = threading.Thread(target=writer)
    thread.start()
    records: list[Record] = []
    first = anyio.Event()

    async def read() -> None:
        async for batch in FileSource(fifo, batch_size=1).batches():
            records.extend(batch)
            first.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await first.wait()  # the first record is in: the reader now waits for more
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            loop_turned.set()
    finally:
        loop_turned.set()
        thread.join()
    assert writer_saw_the_loop == [True]
    assert [r.endpoint_id for r in records] == ["a", "b"]


async def test_cancelling_a_pipe_read_frees_its_thread_and_descriptor(tmp_path: Path) -> None:
    fifo = tmp_path / "segment"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer that never writes nor closes
    try:
        reader = await FileReader.open(fifo)
        with anyio.move_on_after(0.3):
            await reader.read()  # waits on the worker thread for bytes that never come
        await reader.aclose()
        # The abandoned thread sees the close at its next poll and closes the fd itself
        # (closing it under a thread still in read() could hand its number to a new file).
        with anyio.fail_after(10):
            while not reader._closed:  # noqa: ASYNC110 -- a thread's flag, no event to await
                await anyio.sleep(0.05)
    finally:
        os.close(writer)


def test_open_source_of_a_missing_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(str(tmp_path / "missing.jsonl"))


# -- [segment] max_record_bytes ----------------------------------------------------------------


def test_max_record_bytes_setting(tmp_path: Path) -> None:
    assert make_settings(tmp_path).segment_max_record_bytes == DEFAULT_MAX_RECORD_BYTES == 1 << 20
    got = make_settings(tmp_path, segment={"max_record_bytes": 4096})
    assert got.segment_max_record_bytes == 4096
    assert make_settings(tmp_path, segment={"max_record_bytes": 64 << 20})
    for bad, message in [
        (1023, "must be between 1024 and 67108864, got 1023"),
        ((64 << 20) + 1, "must be between 1024 and 67108864"),
        ("1MiB", "expected an integer, got str"),
        (True, "expected an integer, got a boolean"),
    ]:
        with pytest.raises(ConfigError, match=r"segment\.max_record_bytes") as caught:
            make_settings(tmp_path, segment={"max_record_bytes": bad})
        assert message in str(caught.value)
