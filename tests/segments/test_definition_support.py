"""Builders shared by the segment-definition tests (no tests here).

Definitions are written as real ``get-segment`` files into the test's directory and
read back with ``load_definition``, so every test goes through the loader too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dispatcher.segments.definition import (
    Predicate,
    SegmentDefinition,
    compile_definition,
    load_definition,
)

NOW = datetime(2026, 11, 15, 12, 0, 0, tzinfo=UTC)


def segment(
    dimensions: dict[str, Any] | None = None, *, groups: list[dict[str, Any]] | None = None,
    include: str | None = None, seg_id: str = "seg-main", version: int | None = 1,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A ``get-segment`` response around the given criteria."""
    body: dict[str, Any] = {
        "ApplicationId": "app-1",
        "Arn": f"arn:aws:mobiletargeting:us-east-1:111122223333:apps/app-1/segments/{seg_id}",
        "CreationDate": "2026-01-01T00:00:00.000Z", "Id": seg_id, "Name": seg_id,
        "SegmentType": "DIMENSIONAL", "tags": {},
    }  # fmt: skip
    if version is not None:
        body["Version"] = version
    if dimensions is not None:
        body["Dimensions"] = dimensions
    if groups is not None:
        body["SegmentGroups"] = {"Groups": groups}
        if include is not None:
            body["SegmentGroups"]["Include"] = include
    body.update(extra)
    return {"SegmentResponse": body}


def write(directory: Path, document: Any, name: str = "segment.json") -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def load(directory: Path, document: Any, name: str = "segment.json") -> SegmentDefinition:
    return load_definition(write(directory, document, name))


def compiled(directory: Path, document: Any, *, now: datetime = NOW) -> Predicate:
    return compile_definition(load(directory, document), now=now)


def endpoint(**fields: Any) -> dict[str, Any]:
    """An endpoint record's fields (the reader removes ``Id``): a plain email endpoint
    plus ``fields``."""
    record: dict[str, Any] = {"ChannelType": "EMAIL", "Address": "a@example.com",
                              "EndpointStatus": "ACTIVE", "OptOut": "NONE"}  # fmt: skip
    record.update(fields)
    return record


def set_dim(values: list[str], kind: str | None = "INCLUSIVE") -> dict[str, Any]:
    dim: dict[str, Any] = {"Values": values}
    if kind is not None:
        dim["DimensionType"] = kind
    return dim


def attr_dim(kind: str, values: list[str]) -> dict[str, Any]:
    return {"AttributeType": kind, "Values": values}


__all__ = ["NOW", "attr_dim", "compiled", "endpoint", "load", "segment", "set_dim", "write"]
