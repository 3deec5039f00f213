"""Builders shared by the ledger tests."""

from __future__ import annotations

from typing import Any

from dispatcher.ledger import LineSet, RunInfo
from dispatcher.model import Outcome, Status


def run_info(run_id: str, campaign_id: str = "camp-1") -> RunInfo:
    return RunInfo(run_id=run_id, config="/tmp/c.toml", segment="seg.jsonl",
                   campaign_id=campaign_id, application_id="app-1",
                   started_at="2026-01-01T00:00:00Z")  # fmt: skip


def out(
    line: int, status: str | Status, *, eid: str | None = None, reason: str | None = None
) -> Outcome:
    """An SMS outcome of treatment "0" for ``ep-{line}`` (or ``eid``)."""
    endpoint_id = eid if eid is not None else f"ep-{line}"
    return Outcome(line, endpoint_id, Status(status), reason, "SMS", "0")


async def all_outcomes(ledger: Any, run_id: str, **options: Any) -> list[Outcome]:
    """``outcomes()`` flattened, checking that no batch is empty."""
    flat: list[Outcome] = []
    async for batch in ledger.outcomes(run_id, **options):
        assert batch, "outcomes() never yields an empty batch"
        flat.extend(batch)
    return flat


def members(lines: LineSet, upto: int) -> set[int]:
    """The lines of a LineSet, as a set (LineSet is not iterable)."""
    found = {line for line in range(upto + 1) if line in lines}
    assert len(found) == len(lines), "a LineSet holds lines beyond the range checked"
    return found
