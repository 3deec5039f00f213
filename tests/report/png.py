"""A small PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium's screenshots are),
so the Chromium test can look at pixels without Pillow."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixels(self) -> Iterator[tuple[int, int, int]]:
        c = self.channels
        for row in self.rows:
            for i in range(0, len(row), c):
                yield row[i], row[i + 1], row[i + 2]


def read_png(data: bytes) -> Image:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth} color {color}")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    prior = bytes(stride)
    # A row is a function of its filter, its filtered bytes and the row above: a page's
    # runs of identical rows (margins, backgrounds) are unfiltered once, not per row.
    done: dict[tuple[int, bytes, bytes], bytes] = {}
    for y in range(height):
        start = y * (stride + 1)
        filter_type = raw[start]
        filtered = raw[start + 1 : start + 1 + stride]
        key = (filter_type, filtered, prior)
        row = done.get(key)
        if row is None:
            line = bytearray(filtered)
            _unfilter(filter_type, line, prior, channels)
            row = done[key] = bytes(line)
        rows.append(row)
        prior = row
    return Image(width, height, channels, rows)


def _unfilter(kind: int, line: bytearray, prior: bytes, bpp: int) -> None:
    n = len(line)
    if kind == 0:
        return
    if kind == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            line[i] = (line[i] + prior[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(min(bpp, n)):  # no left neighbour: a = c = 0, so Paeth picks b
            line[i] = (line[i] + prior[i]) & 0xFF
        for i in range(bpp, n):
            a, b, c = line[i - bpp], prior[i], prior[i - bpp]
            # Paeth's |p - a|, |p - b|, |p - c| with p = a + b - c, without abs() calls
            pa, pb = b - c, a - c
            pc = pa + pb
            pa = pa if pa >= 0 else -pa
            pb = pb if pb >= 0 else -pb
            pc = pc if pc >= 0 else -pc
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + pred) & 0xFF
    else:
        raise ValueError(f"bad PNG filter {kind}")
