"""Fingerprints of a run's inputs, so that resume and retry can prove they continue it.

A run records, when it starts, what it was given: its segment (the bytes of a local
file, the ETags of S3 objects) and its effective campaign (the project and campaign
definitions after the TOML and Pinpoint JSON were merged). ``--resume`` and ``retry``
compute the same again and refuse, naming what changed, when they differ: line numbers
key the ledger, so another segment would silently mis-settle records, and another
message would be sent to half the segment.

A named pipe or stdin cannot be read twice, so its content cannot be checked up front;
it is recorded as a stream, and continuing such a run needs ``--force-changed-input``.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson

from dispatcher.config import Settings

__all__ = ["campaign_document", "compare", "segment_fingerprint"]

_BLOCK = 1 << 20


def _local(path: Path) -> dict[str, Any]:
    info = path.stat()
    where = str(path.resolve())
    if not stat.S_ISREG(info.st_mode):
        return {"Kind": "stream", "Where": where}
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return {"Kind": "file", "Where": where, "Size": info.st_size, "Digest": digest.hexdigest()}


async def segment_fingerprint(spec: str, clients: Any = None) -> dict[str, Any]:
    """What identifies the segment's content: kind, where, size and digest.

    A local file is hashed whole (SHA-256, in a worker thread: ~0.5 GB/s here), so an
    edit anywhere is caught; S3 objects by their listed keys, sizes and ETags.
    """
    if spec.startswith("s3://"):
        from dispatcher.segments.s3 import list_objects

        objects = await list_objects(spec, clients)
        listing = [[o.key, o.size, o.etag] for o in objects]
        digest = hashlib.sha256(orjson.dumps(listing)).hexdigest()
        size = sum(o.size for o in objects)
        return {"Kind": "s3", "Where": spec, "Size": size, "Digest": digest}
    if spec == "-":
        return {"Kind": "stream", "Where": "-"}
    return await anyio.to_thread.run_sync(_local, Path(spec))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, frozenset | set) else items
    if isinstance(value, Path):
        return str(value)
    return value


_IGNORED = frozenset(
    {"project.Region", "project.AccountId", "campaign.Name", "project.CampaignHook",
     "campaign.Hook", "project.Limits.MessagesPerSecond",
     "campaign.Limits.MessagesPerSecond", "project.Limits.Session", "campaign.Limits.Session"}
)  # fmt: skip
"""Fields that may change between attempts (names, the send rate), or that are compared
in their effective form (the hook: the campaign's, else the project's default)."""

_RENAMED = {"custom_delivery": "CustomDeliveryConfiguration"}


def _pascal(name: str) -> str:
    return _RENAMED.get(name) or "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def campaign_document(settings: Settings) -> dict[str, Any]:
    """The effective campaign, flattened to ``{dotted key: value}`` with Pinpoint's names.

    Only what decides who gets which message is in it: the project's default hook,
    limits and quiet time, and the campaign's messages, hook, treatments, schedule and
    caps. The dispatcher's own knobs, where a hook runs and the send rate may change
    between attempts.
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if prefix in _IGNORED:
            return
        if is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(f"{prefix}.{_pascal(f.name)}", getattr(value, f.name))
        elif isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            flat[prefix] = _jsonable(value)

    walk("Hook", settings.hook)  # the effective one: the campaign's or the default
    walk("project", settings.project)
    walk("campaign", settings.campaign)
    return flat


def compare(
    recorded: Mapping[str, Any] | None, current: Mapping[str, Any], *, segment: bool
) -> list[str]:
    """What differs between a recorded fingerprint and the current one (empty: same)."""
    if recorded is None:
        return []  # a run from before fingerprints were recorded: nothing to compare
    if segment:
        if recorded.get("Kind") == "stream" or current.get("Kind") == "stream":
            where = recorded.get("Where") if recorded.get("Kind") == "stream" else current["Where"]
            return [f"segment (a stream, {where}, cannot be checked)"]
        same = (recorded.get("Kind"), recorded.get("Size"), recorded.get("Digest")) == (
            current.get("Kind"), current.get("Size"), current.get("Digest"),
        )  # fmt: skip
        if same:
            return []
        return [
            f"segment ({recorded.get('Where')}, {recorded.get('Size')} bytes -> "
            f"{current.get('Where')}, {current.get('Size')} bytes, other content)"
        ]
    keys = sorted(set(recorded) | set(current))
    return [k for k in keys if recorded.get(k) != current.get(k)]
