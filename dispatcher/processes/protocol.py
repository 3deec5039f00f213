"""What the coordinator and its workers say to each other (see the package doc).

Records pipe (coordinator to worker): the pickled ``WorkerSpec``, then ``RECORDS`` +
an orjson list of ``[line, endpoint id, definition, error]`` per batch, then ``END``.
Status pipe (worker to coordinator): orjson objects, ``{"ready": true}`` once its hook
and senders are built, ``{"progress": {...}}`` twice a second, ``{"done": {...}}`` at
the end, or ``{"error": {...}}`` (an exception, rebuilt by ``error_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from dispatcher.config import Settings
from dispatcher.errors import ConfigError, DispatchError

RECORDS, END = b"R", b"E"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs to join the run (pickled to the spawned process)."""

    settings: Settings
    run_id: str
    started_at: str
    out: Path
    ledger: Path
    index: int
    resume: bool
    retry: list[str] | None
    timeline_start: float
    ceiling: float | None
    call_hook: bool = True


def report(status: Connection, message: dict[str, Any]) -> None:
    """Tell the coordinator (a worker's side); nothing to do when it is gone."""
    try:
        status.send_bytes(orjson.dumps(message))
    except OSError:
        pass


def error_json(error: DispatchError) -> dict[str, Any]:
    return {"type": type(error).__name__, "message": getattr(error, "message", str(error)),
            "file": getattr(error, "file", None), "key": getattr(error, "key", None),
            "path": getattr(error, "path", None)}  # fmt: skip


def error_from(data: dict[str, Any]) -> DispatchError:
    """A worker's exception, rebuilt in the coordinator (same class where it is ours)."""
    import dispatcher.errors as errors

    kind = getattr(errors, str(data.get("type")), None)
    message = str(data.get("message"))
    if kind is ConfigError or (isinstance(kind, type) and issubclass(kind, ConfigError)):
        return ConfigError(message, file=data.get("file"), key=data.get("key"))
    if kind is errors.StorageError or kind is errors.LedgerError:
        return kind(message, path=data.get("path") or "")
    return DispatchError(message)
