"""The bounded line splitter: any bytes, any chunking, the same lines; never more than
``max_bytes + 1`` bytes of a line held."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.segments.lines import Line, LineSplitter, Overlong

_UNIVERSAL_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_LF_LINE = re.compile(rb"[^\n]*\n|[^\n]+$")


def reference(data: bytes, universal: bool, max_bytes: int) -> list[tuple[str, object]]:
    """What the splitter must make of ``data``, by regular expression."""
    out: list[tuple[str, object]] = []
    for line in (_UNIVERSAL_LINE if universal else _LF_LINE).findall(data):
        content = line.removesuffix(b"\n").removesuffix(b"\r") if universal else (
            line[:-2] if line.endswith(b"\r\n") else line.removesuffix(b"\n")
        )  # fmt: skip
        if len(content) > max_bytes:
            out.append(("over", (len(line), line.isspace())))
        else:
            out.append(("line", line))
    return out


def split(data: bytes, cuts: list[int], universal: bool, max_bytes: int) -> list[Line]:
    splitter = LineSplitter(universal=universal, max_bytes=max_bytes)
    out: list[Line] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > last:
            out += splitter.feed(data[last:cut])
            # Bounded: at most one line's worth under the limit (and a held-back \r).
            assert len(splitter._buf) <= max_bytes + 2
            last = cut
    return out + splitter.end()


def as_reference(lines: list[Line]) -> list[tuple[str, object]]:
    return [("over", (x.size, x.blank)) if isinstance(x, Overlong) else ("line", x) for x in lines]


bytes_with_breaks = st.lists(
    st.one_of(
        st.sampled_from([b"\n", b"\r", b"\r\n", b" ", b"\t", b"\x00", b"x", b"\xef\xbb\xbf"]),
        st.binary(max_size=12),
        st.integers(1, 40).map(lambda n: b"y" * n),
        st.integers(1, 40).map(lambda n: b" " * n),
    ),
    max_size=40,
).map(b"".join)


@given(
    data=bytes_with_breaks,
    cuts=st.lists(st.integers(0, 400), max_size=30),
    universal=st.booleans(),
    max_bytes=st.integers(0, 30),
)
@settings(max_examples=600, deadline=None)
def test_any_chunking_gives_the_reference_lines(
    data: bytes, cuts: list[int], universal: bool, max_bytes: int
) -> None:
    got = split(data, [c for c in cuts if c < len(data)], universal, max_bytes)
    assert as_reference(got) == reference(data, universal, max_bytes)
    assert sum(x.size if isinstance(x, Overlong) else len(x) for x in got) == len(data)
    assert all(x for x in got if isinstance(x, bytes))  # a line is never empty


def test_crlf_split_over_two_blocks_is_one_terminator() -> None:
    for universal in (True, False):
        got = split(b"ab\r\ncd\r\n", [3], universal, 10)
        assert got == [b"ab\r\n", b"cd\r\n"]
    assert split(b"ab\rcd", [3], True, 10) == [b"ab\r", b"cd"]
    assert split(b"ab\rcd", [3], False, 10) == [b"ab\rcd"]


def test_an_over_long_line_is_skipped_across_blocks_and_its_cr_lf_kept_together() -> None:
    data = b"ok\n" + b"z" * 50 + b"\r" + b"\nnext\n"
    for cut in range(len(data)):
        got = split(data, [cut], True, 8)
        assert as_reference(got) == [("line", b"ok\n"), ("over", (52, False)), ("line", b"next\n")]


def test_blocks_of_a_huge_line_are_not_kept() -> None:
    splitter = LineSplitter(universal=False, max_bytes=1024)
    block = b"x" * (1 << 20)
    for _ in range(64):
        assert splitter.feed(block) == []
        assert len(splitter._buf) == 0  # discarding: nothing of the line is held
    (over,) = splitter.feed(b"x\nnext\n")[:1]
    assert isinstance(over, Overlong) and over.size == 64 * len(block) + 2
    assert splitter.end() == []
