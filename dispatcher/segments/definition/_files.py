"""Files beside a definition: other definitions (by segment Id) and imported ids.

**Source segments.** ``SourceSegments[i]`` names a segment by ``Id`` (and maybe
``Version``). It is looked up among the ``*.json`` files in the referring file's
directory whose segment ``Id`` matches: the one whose ``Version`` matches wins; with
no such version (or none asked for), the one with the highest ``Version`` is used, and
a warning says so when a version was asked for. Two files with the same Id and
version are ambiguous (an error). Files that are not segment definitions (campaign
configs, anything unreadable) are not candidates.

**Imported segments** (``SegmentType: IMPORT``) keep their members in a sibling file
named after the segment Id, the first found of ``ID.ids`` / ``ID.txt`` (one endpoint
id per line), ``ID.csv`` (a Pinpoint import CSV: an ``Id`` and/or ``User.UserId``
column), ``ID.jsonl`` (Pinpoint import JSON lines: ``Id`` and/or ``User.UserId``), each
possibly gzip-compressed (``.gz``), else the file named like the last part of
``ImportDefinition.S3Url`` (the import file itself, downloaded). A source segment with
no definition file but such an id file is an imported segment too. A row's ``Id``
names an endpoint; a row with only ``User.UserId`` stands for every endpoint of that
user (as a Pinpoint import does).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from dispatcher.errors import ConfigError
from dispatcher.segments.definition._model import ImportedIds

ID_SUFFIXES = (".ids", ".txt", ".csv", ".jsonl")
_MAX_DEFINITION_BYTES = 8 << 20  # get-segment outputs are kilobytes; skip anything huge


def read_json(path: Path, name: str) -> Any:
    """A whole JSON file, decoded; every failure a ``ConfigError`` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"can't read the segment definition: {exc.strerror}", file=name) from exc
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                          file=name) from exc  # fmt: skip


def segment_object(document: Any) -> tuple[Any, str]:
    """The segment object of a get-segment output (wrapped or bare) and its key prefix."""
    if isinstance(document, dict) and set(document) == {"SegmentResponse"}:
        return document["SegmentResponse"], "SegmentResponse"
    return document, ""


class Candidate:
    """A definition file in a directory, known by its segment Id and Version."""

    __slots__ = ("path", "version")

    def __init__(self, path: Path, version: int | None) -> None:
        self.path = path
        self.version = version


def index_directory(directory: Path) -> dict[str, list[Candidate]]:
    """Segment Id -> the definition files in ``directory`` that carry it."""
    found: dict[str, list[Candidate]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            if not path.is_file() or path.stat().st_size > _MAX_DEFINITION_BYTES:
                continue
            segment, _ = segment_object(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue  # not ours to judge: only a file that is chosen is checked
        if not isinstance(segment, dict) or not isinstance(segment.get("Id"), str):
            continue
        version = segment.get("Version")
        if isinstance(version, bool) or not isinstance(version, int):
            version = None
        found.setdefault(segment["Id"], []).append(Candidate(path, version))
    return found


def id_file(directory: Path, segment_id: str, s3_url: str | None = None) -> Path | None:
    """The file holding an imported segment's members, if there is one."""
    names = [segment_id + suffix + gz for suffix in ID_SUFFIXES for gz in ("", ".gz")]
    if s3_url and not s3_url.endswith("/"):
        names.append(s3_url.rsplit("/", 1)[-1])
    for name in names:
        # A segment Id is free text: never let it leave the directory.
        if not name or "/" in name or "\\" in name or name in {".", ".."}:
            continue
        path = directory / name
        if path.is_file():
            return path
    return None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        yield from enumerate(f, 1)


def read_ids(path: Path, fmt: str | None = None) -> ImportedIds:
    """An id file's endpoint and user ids. ``fmt`` (``CSV`` or ``JSON``, from
    ``ImportDefinition.Format``) overrides the name's suffix."""
    name = str(path)
    stem = path.name.removesuffix(".gz").lower()
    kind = (fmt or "").lower() or stem.rsplit(".", 1)[-1]
    endpoints: set[str] = set()
    users: set[str] = set()
    try:
        if kind == "csv":
            _read_csv(path, name, endpoints, users)
        elif kind in {"json", "jsonl"}:
            _read_jsonl(path, name, endpoints, users)
        else:
            for _, line in _lines(path):
                text = line.strip()
                if text:
                    endpoints.add(text)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise ConfigError(f"can't read the imported segment's ids: {exc}", file=name) from exc
    if not endpoints and not users:
        raise ConfigError("holds no endpoint or user ids", file=name)
    return ImportedIds(name, frozenset(endpoints), frozenset(users))


def _read_csv(path: Path, name: str, endpoints: set[str], users: set[str]) -> None:
    rows = _lines(path)
    header_line = next(rows, None)
    if header_line is None:
        raise ConfigError("is empty", file=name)
    try:
        header = [h.strip() for h in next(csv.reader([header_line[1]]))]
    except (csv.Error, StopIteration) as exc:
        raise ConfigError(f"unreadable CSV header: {exc}", file=name, key="line 1") from exc
    id_col = header.index("Id") if "Id" in header else None
    user_col = header.index("User.UserId") if "User.UserId" in header else None
    if id_col is None and user_col is None:
        raise ConfigError("the CSV header has neither an Id nor a User.UserId column",
                          file=name, key="line 1")  # fmt: skip
    for n, line in rows:
        if not line.strip():
            continue
        try:
            row = next(csv.reader([line]))
        except csv.Error as exc:
            raise ConfigError(f"malformed CSV: {exc}", file=name, key=f"line {n}") from exc
        endpoint = row[id_col].strip() if id_col is not None and id_col < len(row) else ""
        user = row[user_col].strip() if user_col is not None and user_col < len(row) else ""
        _add(endpoint, user, endpoints, users, name, n)


def _read_jsonl(path: Path, name: str, endpoints: set[str], users: set[str]) -> None:
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc.msg}", file=name, key=f"line {n}") from exc
        if not isinstance(item, dict):
            raise ConfigError("must be a JSON object", file=name, key=f"line {n}")
        endpoint = item.get("Id")
        user_obj = item.get("User")
        user = user_obj.get("UserId") if isinstance(user_obj, dict) else None
        _add(endpoint if isinstance(endpoint, str) else "",
             user if isinstance(user, str) else "", endpoints, users, name, n)  # fmt: skip


def _add(endpoint: str, user: str, endpoints: set[str], users: set[str], name: str, n: int) -> None:
    # An Id names one endpoint even when the row also has its user: that is what a
    # Pinpoint import of that row targets.
    if endpoint:
        endpoints.add(endpoint)
    elif user:
        users.add(user)
    else:
        raise ConfigError("has neither an Id nor a User.UserId", file=name, key=f"line {n}")


__all__ = ["ID_SUFFIXES", "Candidate", "id_file", "index_directory", "read_ids", "read_json",
           "segment_object"]  # fmt: skip
