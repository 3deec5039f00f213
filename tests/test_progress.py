"""The progress line: total, percent, ETA, fitted to the terminal; log lines elsewhere."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import anyio
import pytest

from dispatcher.progress import Counters, show_progress, span
from dispatcher.segments.files import FileSource
from tests.conftest import endpoint, write_jsonl


def counters(read: int, *, size: tuple[int, int] | None = None, elapsed: float = 125.0,
             expected: int | None = None) -> Counters:  # fmt: skip
    now = time.monotonic()
    c = Counters(started=now - elapsed, expected=expected, clock=lambda: now,
                 position=(lambda: size) if size else None)  # fmt: skip
    c.read, c.hooked, c.sent, c.failed = read, read - 10, read - 20, 7
    return c


def test_the_line_has_percent_total_rate_elapsed_and_eta() -> None:
    line = counters(1_234_567, size=(250, 1000)).line()
    assert line.startswith("25.0%  read 1,234,567 of ~4,938,268  hooked 1,234,557  ")
    assert "sent 1,234,547  failed 7  " in line and "elapsed 2m 05s" in line
    assert re.search(r"  9,8\d\d/s  ", line)
    assert line.endswith("ETA 6m 15s")  # 125 s for a quarter: 375 s to go
    exact = counters(500, expected=2000).line()
    assert exact.startswith("25.0%  read 500 of 2,000  ")
    unknown = counters(42).line()  # a pipe: no size, no percent, no ETA
    assert unknown.startswith("read 42  hooked 32") and "%" not in unknown and "ETA" not in unknown


@pytest.mark.parametrize("width", [200, 100, 80, 60, 40, 20])
@pytest.mark.parametrize("read", [7, 123_456, 987_654_321])
def test_the_line_fits_the_terminal(width: int, read: int) -> None:
    c = counters(read, size=(1, 3))
    line = c.line(width)
    assert len(line) <= width - 1
    full = c.line()
    if len(full) <= width - 1:
        assert line == full  # a fixed clock: the two lines are the same moment
    else:
        # The least important fields went first; percent and read are kept longest.
        assert "hooked" not in line
        assert line.startswith("33.3%") or width < 10


async def read_lines(stream: io.StringIO, n: int) -> list[str]:
    while len(stream.getvalue().splitlines()) < n:  # noqa: ASYNC110 - polling a StringIO
        await anyio.sleep(0.01)
    return stream.getvalue().splitlines()


@pytest.mark.anyio
async def test_without_a_terminal_a_log_line_every_period_and_at_the_end() -> None:
    stream = io.StringIO()
    c = counters(5000, size=(1, 2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: show_progress(c, stream, log_every=0.02))
        await read_lines(stream, 2)
        c.read = 9000
        tg.cancel_scope.cancel()
    lines = stream.getvalue().splitlines()
    assert all(line.startswith("dispatcher: progress: 50.0%  read ") for line in lines)
    assert "read 9,000" in lines[-1] and "\r" not in stream.getvalue()


@pytest.mark.anyio
async def test_a_short_run_without_a_terminal_prints_no_progress() -> None:
    stream = io.StringIO()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: show_progress(counters(5), stream, log_every=60))
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert stream.getvalue() == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
async def test_on_a_terminal_the_line_is_redrawn_to_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    stream = Terminal()
    c = counters(123_456_789, size=(3, 4))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: show_progress(c, stream, every=0.01))
        while stream.getvalue().count("\r") < 2:  # noqa: ASYNC110 - polling a StringIO
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    drawn = [d for d in stream.getvalue().split("\r\x1b[2K") if d]
    assert all(len(d.rstrip("\n")) <= 49 for d in drawn)
    assert drawn[-1].endswith("\n") and drawn[0].startswith("75.0%  read 123,456,789")


@pytest.mark.anyio
async def test_a_file_source_reports_how_far_it_read(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [endpoint(i) for i in range(3000)])
    source = FileSource(path, block_size=1 << 14)
    seen = []
    async for _ in source.batches():
        seen.append(source.progress())
    size = path.stat().st_size
    assert seen[-1] == (size, size)
    assert all(p is not None and p[1] == size for p in seen)
    assert [p[0] for p in seen if p] == sorted(p[0] for p in seen if p)


def test_span() -> None:
    assert span(59.2) == "1m 00s" and span(3600 * 30) == "1d 06h 00m 00s"


def test_log_level_info_logs_the_phases(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "dispatcher", "run", "config/example.toml",
                           "--out", str(tmp_path), "--log-level", "info", "--no-report"],
                          cwd=root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    logged = [line for line in done.stderr.splitlines() if " INFO dispatcher.run: " in line]
    assert [line.split(": ", 1)[1].split()[0] for line in logged] == [
        "run", "segment", "dispatched:", "run"]  # fmt: skip
    assert "hook credit-score (FILTER)" in logged[1] and logged[-1].endswith("SUCCESS 104, "
                                                                           "UNSUPPORTED_CHANNEL 4")
    quiet = subprocess.run([sys.executable, "-m", "dispatcher", "run", "config/example.toml",
                            "--out", str(tmp_path / "q"), "--no-report"],
                           cwd=root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert " INFO " not in quiet.stderr
