"""Latency histograms with fixed log-scale buckets: percentiles without samples.

8 buckets per octave, so any percentile read from a histogram is within 4.4 % of the
exact one; a histogram is an ``array("I")`` of ``BUCKETS`` counts, cheap to add to and
to merge. ``Timeline`` keeps one per second of a run (its hot path inlines
``bucket_of`` with these constants).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

PER_OCTAVE = 8
"""Latency buckets per doubling: bucket edges are 2**(1/8) = 9 % apart."""
OFFSET = 14 * PER_OCTAVE
"""Bucket 0 ends at 2**-14 s (61 µs): a faster answer is not worth telling apart."""
BUCKETS = OFFSET + 12 * PER_OCTAVE
"""The last bucket starts at 2**12 s (68 minutes), far beyond any hook deadline."""
MIN_LATENCY = 2.0 ** (1 / PER_OCTAVE - 14)
EMPTY_HISTOGRAM = bytes(4 * BUCKETS)  # an array("I") of BUCKETS zeros, made in C


def bucket_of(latency: float) -> int:
    """The histogram bucket of a latency in seconds."""
    if latency < MIN_LATENCY:
        return 0
    # + OFFSET before int(): the sum is positive here, so truncation is floor.
    return min(int(math.log2(latency) * PER_OCTAVE + OFFSET), BUCKETS - 1)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The latencies (seconds) a bucket holds: [low, high); bucket 0 starts at 0."""
    low = 0.0 if bucket == 0 else 2.0 ** ((bucket - OFFSET) / PER_OCTAVE)
    return low, 2.0 ** ((bucket + 1 - OFFSET) / PER_OCTAVE)


def bucket_value(bucket: int) -> float:
    """The latency a bucket stands for: its geometric middle."""
    return float(2.0 ** ((bucket + 0.5 - OFFSET) / PER_OCTAVE))


def new_histogram() -> array[int]:
    """An empty latency histogram: calls per bucket, ``BUCKETS`` long."""
    return array("I", EMPTY_HISTOGRAM)


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1, nearest rank) of a histogram (calls per bucket);
    None when it is empty. It lies in the bucket of the exact quantile of the samples."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")


def merge(histograms: Iterable[Sequence[int]]) -> array[int]:
    """The sum of latency histograms."""
    total = new_histogram()
    for histogram in histograms:
        for bucket, n in enumerate(histogram):
            if n:
                total[bucket] += n
    return total
