"""Hooks used by the benchmarks."""

from __future__ import annotations

from typing import Any


def passthrough(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Keep every endpoint: the event already arrived through JSON, as in Lambda."""
    return event["Endpoints"]  # type: ignore[no-any-return]


async def passthrough_async(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The same, as an ``async def`` handler (runs on the event loop, no thread hop)."""
    return event["Endpoints"]  # type: ignore[no-any-return]
