"""Feed a huge record through a named pipe to a reader process; report its peak RSS.

Run as ``python -m tests.segments.rss_probe FORMAT SIZE HEAD TAIL`` from the repository
root. This process starts one child, the reader (``open_source(fifo, FORMAT)``, as
``dispatcher run --segment`` uses it), and writes ``HEAD``, ``SIZE`` bytes of ``x``
(no newline) and ``TAIL`` into the pipe, so nothing of that size is ever on disk. It
prints one JSON object: the reader's exit code, its Records ``[line, id, error]`` and
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` -- the reader's peak RSS alone, since it is
this process's only child.

The reader gets a 3 GiB address-space limit: a reader that holds the record whole
fails fast instead of pressing on a shared machine (the test asserts on RSS, not on
this limit).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

READER = """
import json, sys, anyio
from dispatcher.segments import open_source
async def main():
    out = []
    async for batch in open_source(sys.argv[1], sys.argv[2]).batches():
        out += [(r.line, r.endpoint_id, r.error) for r in batch]
    print(json.dumps(out))
anyio.run(main)
"""
PIECE = b"x" * (1 << 20)
ADDRESS_SPACE = 3 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _open_writer(fifo: str, reader: subprocess.Popen[bytes]) -> int:
    """The pipe's write end, once the reader has opened it (not forever if it died)."""
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or reader.poll() is not None:
                raise
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        try:  # fewer, larger hand-overs: the test's time is the pipe's
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, len(PIECE))
        except (AttributeError, OSError):
            pass  # not Linux, or over the system's pipe-max-size
        return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(fmt: str, size: int, head: bytes, tail: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "segment")
        os.mkfifo(fifo)
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, fifo, fmt],
            stdout=subprocess.PIPE, preexec_fn=_limit_memory,
        )  # fmt: skip
        fd = _open_writer(fifo, reader)
        try:
            _write_all(fd, head)
            for _ in range(size // len(PIECE)):
                _write_all(fd, PIECE)
            _write_all(fd, PIECE[: size % len(PIECE)] + tail)
        except BrokenPipeError:
            pass  # the reader died: its exit code says so
        finally:
            os.close(fd)
        out, _ = reader.communicate()
    print(json.dumps({
        "returncode": reader.returncode,
        "records": json.loads(out) if reader.returncode == 0 else None,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4].encode())
