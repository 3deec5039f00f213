"""A run's segment definition: which file, read and compiled once at the run's start.

``dispatcher run``, resume, retry and previews narrow their source to the segment a
``get-segment`` definition describes (``dispatcher.segments.definition``). The
definition comes from ``--segment-definition``, else ``[segment] definition``, else (a
resumed or retried run) the file the run started with, recorded in the ledger. It is
compiled with the run's recorded start as ``now``, so ``Behavior.Recency`` decides
membership the same way in every attempt of one run, however late the resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from dispatcher.aws import AwsClients
from dispatcher.config import Settings
from dispatcher.errors import ConfigError, InputChanged
from dispatcher.ledger.base import RunInfo
from dispatcher.segments import SegmentSource, open_source
from dispatcher.segments.definition import (
    DefinedSource,
    Predicate,
    SegmentDefinition,
    compile_definition,
    load_definition,
)

__all__ = ["RunDefinition", "open_segment", "run_definition", "segment_location"]

FLAG = "--segment-definition"
KEY = "segment.definition"
EXTRA = "Definition"
"""The key of the run record's ``extra`` that holds the definition a run started with."""


@dataclass(frozen=True, slots=True)
class RunDefinition:
    """A loaded definition and where it came from (``key``: the flag or config key)."""

    path: str
    key: str
    digest: str
    definition: SegmentDefinition

    def record(self) -> dict[str, Any]:
        """What the run record keeps: resume and retry find the file, and notice an edit."""
        # Absolute: a resume may run from another directory.
        return {"Where": str(Path(self.path).resolve()), "Digest": self.digest}

    def narrow(self, source: SegmentSource, started_at: str) -> DefinedSource:
        """``source`` filtered by the definition, compiled with the run's start as now."""
        return DefinedSource(source, self.narrow_predicate(started_at))

    def narrow_predicate(self, started_at: str) -> Predicate:
        """The definition compiled with the run's start (ISO 8601) as now."""
        now = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
        return compile_definition(self.definition, now=now)


async def run_definition(
    settings: Settings, flag: str | None, prior: RunInfo | None, *, force_changed: bool,
) -> RunDefinition | None:  # fmt: skip
    """The definition this attempt applies (None: the whole source is the segment).

    A definition that can't be read or evaluated is a ``ConfigError``: one naming the
    flag or config key when the file can't be read, else the definition file's own key.
    A resumed or retried run given another definition than it started with (or one when
    it had none) is refused (``InputChanged``) unless ``force_changed``: the segment's
    membership, and so which lines are the run's, would change under it.
    """
    recorded = prior.extra.get(EXTRA) if prior is not None else None
    if flag:
        path, key, file = flag, FLAG, None
    elif settings.segment_definition:
        path, key, file = settings.segment_definition, KEY, settings.file
    elif isinstance(recorded, dict) and isinstance(recorded.get("Where"), str):
        path, key, file = recorded["Where"], KEY, None
    else:
        path = None
    current = None
    if path is not None:
        current = await anyio.to_thread.run_sync(_load, path, key, file)
    if prior is not None and not force_changed:
        _check_same(prior, recorded, current)
    return current


def _load(path: str, key: str, file: str | None) -> RunDefinition:
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"can't read the segment definition {path}: {exc.strerror}",
                          file=file, key=key) from None  # fmt: skip
    # load_definition's errors name the definition file and the key inside it.
    return RunDefinition(path, key, digest, load_definition(path))


def _check_same(prior: RunInfo, recorded: Any, current: RunDefinition | None) -> None:
    before = recorded.get("Digest") if isinstance(recorded, dict) else None
    after = current.digest if current is not None else None
    if before == after:
        return
    was = recorded.get("Where") if isinstance(recorded, dict) else "no definition"
    now = current.path if current is not None else "no definition"
    raise InputChanged(
        f"run {prior.run_id} started with another segment definition ({was} -> {now}"
        f"{', other content' if before and after else ''}); give the same definition, or "
        "pass --force-changed-input to continue anyway",
        run_id=prior.run_id, changed=["segment definition"],
    )  # fmt: skip


def segment_location(settings: Settings, flag: str | None, prior: RunInfo | None) -> str:
    """Where the run's records come from: ``--segment``, else ``[segment] source``, else
    (a resumed or retried run) where it first read them."""
    location = flag or settings.segment_source or (prior.segment if prior else None)
    if not location:
        raise ConfigError("no segment source: set [segment] source or pass --segment",
                          file=settings.file, key="segment.source")  # fmt: skip
    return location


def open_segment(
    settings: Settings, location: str, *, flag: bool, clients: AwsClients,
    membership: RunDefinition | None, started_at: str, on_note: Callable[[str], None],
) -> SegmentSource:  # fmt: skip
    """The run's records: the source at ``location``, narrowed to the definition's segment
    (its warnings go to ``on_note``). A bad location names the flag or the config key."""
    try:
        source = open_source(location, settings.segment_format, clients=clients,
                             max_record_bytes=settings.segment_max_record_bytes)  # fmt: skip
    except ConfigError as exc:
        key = "--segment" if flag else "segment.source"
        raise ConfigError(exc.message, file=settings.file, key=key) from None
    if membership is None:
        return source
    for warning in membership.definition.warnings:
        on_note(warning)
    return membership.narrow(source, started_at)
