"""Physical lines from a byte stream, with memory bounded by ``max_record_bytes``.

A *physical line* ends at ``\\n`` (JSON lines) or at ``\\r\\n``, ``\\r`` or ``\\n``
(CSV, as ``open(newline="")`` reads text); the terminator stays on the line. The
splitter is fed blocks of any size and cuts them with bytes operations (``rfind``,
``splitlines``), never a Python loop per byte.

A line whose content (terminator not counted) is longer than ``max_bytes`` is never
held whole: once the partial line passes the limit its bytes are discarded up to the
next terminator, and the line comes out as an ``Overlong`` marker instead of bytes.
So the splitter holds at most one block plus ``max_bytes + 1`` bytes, whatever the
input: a 2 GB stream without a newline costs one block at a time.
"""

from __future__ import annotations

from dispatcher.errors import ConfigError

DEFAULT_MAX_RECORD_BYTES = 1 << 20
"""The default ``[segment] max_record_bytes``: 1 MiB, far above any real endpoint."""
MIN_MAX_RECORD_BYTES = 1 << 10
MAX_MAX_RECORD_BYTES = 64 << 20
"""The ceiling of ``max_record_bytes``: memory per source stays within tens of MiB."""

_LF = 0x0A
_CR = 0x0D


def check_max_record_bytes(value: int) -> int:
    """``value`` if it is an allowed ``max_record_bytes``, else a ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'max_record_bytes' must be an integer, got {value!r}")
    if not MIN_MAX_RECORD_BYTES <= value <= MAX_MAX_RECORD_BYTES:
        raise ConfigError(
            f"'max_record_bytes' must be between {MIN_MAX_RECORD_BYTES} and "
            f"{MAX_MAX_RECORD_BYTES} (64 MiB), got {value}"
        )
    return value


def over_limit(max_bytes: int) -> str:
    """The ``Reason`` of a record longer than the limit."""
    return f"record is over the {max_bytes}-byte limit ([segment] max_record_bytes)"


class Overlong:
    """A physical line longer than the limit, in place of its (discarded) bytes."""

    __slots__ = ("blank", "size")

    def __init__(self, size: int, blank: bool) -> None:
        self.size = size
        """Its length in the stream, terminator included (shard cuts need it)."""
        self.blank = blank
        """Whether it held only ASCII whitespace (JSON lines: then it is no record)."""

    def __repr__(self) -> str:
        return f"Overlong(size={self.size}, blank={self.blank})"


Line = bytes | Overlong
"""One physical line: its bytes (never empty), or ``Overlong``."""


class LineSplitter:
    """Cuts fed blocks into physical lines; see the module docstring.

    ``feed(block)`` returns the lines completed by ``block`` and ``end()`` the last
    one (which may lack a terminator). Lines come out in order and their sizes add up
    to the bytes fed.
    """

    def __init__(self, *, universal: bool, max_bytes: int) -> None:
        self._universal = universal
        self._max = max_bytes
        # The current line so far: no terminator, except a final \r that may be the
        # first half of \r\n. Without that \r, it never exceeds max_bytes.
        self._buf = bytearray()
        # While an over-long line is being discarded: its bytes so far, else None.
        self._skipped: int | None = None
        self._skip_blank = True
        # The discarded line ended in \r: a \n right after it still belongs to it.
        self._skip_cr = False

    def feed(self, data: bytes) -> list[Line]:
        out: list[Line] = []
        if self._skipped is not None:
            data = self._skip(data, out)
        elif self._universal and self._buf and self._buf[-1] == _CR and data:
            data = self._close_cr_line(data, out)
        if not data:
            return out
        buf = self._buf
        cut = self._last_break(data)
        if cut == 0:
            buf += data
            self._check_partial()
            return out
        if buf:
            head = bytes(buf) + data[:cut]
            buf.clear()
        else:
            head = data[:cut]
        lines = self._split(head)
        # One line can only be over the limit if the block is: test that first, cheaply.
        if len(head) > self._max and max(map(len, lines)) > self._max:
            out.extend([self._bounded(line) for line in lines])
        else:
            out.extend(lines)
        if cut < len(data):
            buf += data[cut:]
            self._check_partial()
        return out

    def end(self) -> list[Line]:
        """The last line, if the stream did not end with a terminator."""
        if self._skipped is not None:
            out: list[Line] = []
            self._end_skip(out)
            return out
        if not self._buf:
            return []
        line = bytes(self._buf)
        self._buf.clear()
        return [self._bounded(line)]

    # -- cutting ---------------------------------------------------------------------------

    def _last_break(self, data: bytes) -> int:
        """The index just past the last terminator in ``data`` (0 if none). A final
        ``\\r`` is held back (universal): it may be half of a ``\\r\\n``."""
        end = len(data)
        if not self._universal:
            return data.rfind(b"\n") + 1
        if data[end - 1] == _CR:
            end -= 1
        return max(data.rfind(b"\n", 0, end), data.rfind(b"\r", 0, end)) + 1

    def _split(self, head: bytes) -> list[bytes]:
        """``head`` (ending with a terminator) as lines, terminators kept."""
        # bytes.splitlines breaks at \r\n, \r and \n: exactly the universal rule, and the
        # \n rule too when every \r is part of a \r\n (both counted in C, no copy).
        if self._universal or b"\r" not in head or head.count(b"\r") == head.count(b"\r\n"):
            return head.splitlines(keepends=True)
        parts = head.split(b"\n")
        parts.pop()  # empty: head ends with \n
        return [p + b"\n" for p in parts]

    def _content(self, line: bytes | bytearray) -> int:
        """The length of ``line`` without its terminator."""
        n = len(line)
        if line.endswith(b"\n"):
            return n - (2 if line.endswith(b"\r\n") else 1)
        if self._universal and line.endswith(b"\r"):
            return n - 1
        return n

    def _bounded(self, line: bytes) -> Line:
        if len(line) > self._max and self._content(line) > self._max:
            return Overlong(len(line), line.isspace())
        return line

    def _close_cr_line(self, data: bytes, out: list[Line]) -> bytes:
        """The held-back line ending in ``\\r`` is complete: take a ``\\n`` after it."""
        if data[0] == _LF:
            self._buf.append(_LF)
            data = data[1:]
        out.append(bytes(self._buf))
        self._buf.clear()
        return data

    # -- discarding an over-long line --------------------------------------------------------

    def _check_partial(self) -> None:
        """Start discarding if the partial line has passed the limit. A final ``\\r``
        may be half of a ``\\r\\n`` terminator, so it does not count yet (``end()``
        and ``_bounded`` judge the finished line exactly)."""
        buf = self._buf
        if len(buf) - buf.endswith(b"\r") <= self._max:
            return
        self._skipped = len(buf)
        self._skip_blank = buf.isspace()
        self._skip_cr = self._universal and buf[-1] == _CR
        buf.clear()

    def _skip(self, data: bytes, out: list[Line]) -> bytes:
        """Discard ``data`` up to the end of the over-long line; return what follows."""
        assert self._skipped is not None
        if not data:
            return data
        if self._skip_cr:
            if data[0] == _LF:
                self._skipped += 1
                data = data[1:]
            self._end_skip(out)
            return data
        i = data.find(b"\n")
        if self._universal:
            j = data.find(b"\r", 0, i if i >= 0 else len(data))
            if j >= 0:
                i = j
        if i < 0:
            self._skipped += len(data)
            if self._skip_blank:
                self._skip_blank = data.isspace()
            return b""
        if self._skip_blank and i:
            self._skip_blank = data[:i].isspace()
        if data[i] == _CR:
            if i + 1 == len(data):
                self._skipped += len(data)
                self._skip_cr = True
                return b""
            if data[i + 1] == _LF:
                i += 1
        self._skipped += i + 1
        self._end_skip(out)
        return data[i + 1 :]

    def _end_skip(self, out: list[Line]) -> None:
        assert self._skipped is not None
        out.append(Overlong(self._skipped, self._skip_blank))
        self._skipped = None
        self._skip_blank = True
        self._skip_cr = False


__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "MAX_MAX_RECORD_BYTES",
    "MIN_MAX_RECORD_BYTES",
    "Line",
    "LineSplitter",
    "Overlong",
    "check_max_record_bytes",
    "over_limit",
]
