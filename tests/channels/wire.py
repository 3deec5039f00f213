"""Measuring a send rate the way the issue defines it: at the provider.

The wire servers (``dispatcher.testing``) stamp every API call with its arrival time and the
number of messages it carries (push: its addresses). ``busiest`` is the most messages in
any half-open one-second window ``[t, t + 1)`` of those stamps: what a ceiling bounds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dispatcher import dispatch
from dispatcher.config import parse_settings
from dispatcher.model import Summary
from tests.conftest import endpoint, write_jsonl

Arrival = tuple[float, int]


def busiest(arrivals: Iterable[Arrival]) -> int:
    """The most messages in any window ``[t, t + 1)`` (a window starting at an arrival
    reaches the maximum, so checking those suffices)."""
    ordered = sorted(arrivals)
    times = [t for t, _ in ordered]
    prefix = [0]
    for _, n in ordered:
        prefix.append(prefix[-1] + n)
    best = 0
    for i, t in enumerate(times):
        best = max(best, prefix[bisect_left(times, t + 1.0)] - prefix[i])
    return best


def sustained(arrivals: Sequence[Arrival]) -> float:
    """Messages per second between the first and the last arrival (for reports only)."""
    times = sorted(t for t, _ in arrivals)
    total = sum(n for _, n in arrivals) - (sorted(arrivals)[-1][1] if arrivals else 0)
    return total / (times[-1] - times[0]) if len(times) > 1 else 0.0


MESSAGES: dict[str, Any] = {
    "SMSMessage": {"Body": "Hi {{User.UserAttributes.FirstName}}",
                   "OriginationNumber": "+12065550100", "MessageType": "TRANSACTIONAL"},
    "EmailMessage": {"Title": "Hello", "Body": "Hi {{User.UserAttributes.FirstName}}",
                     "FromAddress": "news@example.com"},
    "GCMMessage": {"Title": "T", "Body": "B {{Id}}", "Action": "OPEN_APP"},
}  # fmt: skip


async def run_campaign(
    tmp_path: Path,
    records: Sequence[dict[str, Any]],
    *,
    rate: int | None,
    channels: dict[str, dict[str, Any]],
    send_concurrency: int = 8,
    campaign: dict[str, Any] | None = None,
    dispatch_table: dict[str, Any] | None = None,
    processes: int = 1,
) -> Summary:
    """``dispatch()`` one campaign over ``records`` through the given channels, in process
    (or across ``processes`` worker processes, as ``--processes``)."""
    segment = write_jsonl(tmp_path / "segment.jsonl", records)
    limits = {"Limits": {"MessagesPerSecond": rate}} if rate else {}
    data: dict[str, Any] = {
        "project": {"ApplicationId": "app-rate", "Region": "us-east-1",
                    "AccountId": "111122223333"},
        "campaign": {"Id": "rate", "MessageConfiguration": MESSAGES, **limits,
                     **(campaign or {})},
        "channels": channels,
        "dispatch": {"send_concurrency": send_concurrency, **(dispatch_table or {})},
    }  # fmt: skip
    settings = parse_settings(data, str(tmp_path / "rate.toml"), tmp_path)
    return await dispatch(settings, segment=str(segment), out_dir=tmp_path / "out",
                          progress=False, processes=processes)  # fmt: skip


def endpoints(n: int, channel: str = "SMS", first: int = 1) -> list[dict[str, Any]]:
    return [endpoint(i, channel) for i in range(first, first + n)]
