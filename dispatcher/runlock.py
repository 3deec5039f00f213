"""One process at a time per ledger and output directory.

``run``, ``--resume``, ``retry`` and ``status`` (when it repairs a run's state) take an
exclusive ``flock`` on ``LEDGER.lock`` and ``DIR/.dispatcher.lock``. The kernel drops an
flock when its process dies, however it dies, so a lock left by a killed run never
blocks the next one and needs no cleanup; the PID and RunId written into the lock file
only serve the refusal message of the process that finds it held. (flock is local to
one machine: an output directory on a network file system shared by two machines is not
protected; a fleet uses the DynamoDB ledger, whose conditional writes need no lock.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

import orjson

from dispatcher.errors import LedgerBusy, StorageError

__all__ = ["DIR_LOCK", "RunLock", "holder"]

DIR_LOCK = ".dispatcher.lock"


def _lock_path(target: Path) -> Path:
    return target / DIR_LOCK if target.is_dir() else target.with_name(target.name + ".lock")


def holder(target: Path) -> tuple[int | None, str | None]:
    """(PID, RunId) written by the process that holds (or last held) ``target``'s lock."""
    return _read_holder(_lock_path(target))


def _read_holder(lock_file: Path) -> tuple[int | None, str | None]:
    try:
        data = orjson.loads(lock_file.read_bytes() or b"{}")
    except (OSError, orjson.JSONDecodeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    pid, run_id = data.get("pid"), data.get("run_id")
    return (pid if isinstance(pid, int) else None), (run_id if isinstance(run_id, str) else None)


class RunLock:
    """Exclusive, non-blocking locks on a set of ledgers and directories, taken together.

    ``acquire`` takes them all or none (``LedgerBusy`` names the holder); ``note`` writes
    the RunId once it is known; ``release`` (or leaving the ``with`` block) drops them.
    """

    def __init__(self, *targets: Path) -> None:
        # One lock file per distinct target, in a fixed order so two processes that
        # lock the same pair never wait on each other crosswise.
        self.paths = sorted({_lock_path(t).resolve() for t in targets})
        self._fds: list[int] = []

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return bool(self._fds)

    @property
    def fds(self) -> tuple[int, ...]:
        """The locked descriptors. A child process given them (``--processes`` workers)
        keeps the locks held until it exits too: no second run starts while it works."""
        return tuple(self._fds)

    def acquire(self, run_id: str | None = None) -> None:
        """Take every lock or raise ``LedgerBusy`` naming the live process holding one."""
        for path in self.paths:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                self.release()
                raise StorageError(
                    f"cannot create lock file {path}: {exc.strerror}", path=str(path)
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.release()
                pid, other = _read_holder(path)
                what = path.parent if path.name == DIR_LOCK else path.with_suffix("")
                by = f"process {pid}" if pid else "another process"
                run = f" (run {other})" if other else ""
                raise LedgerBusy(f"{what} is in use by {by}{run}", pid=pid, run_id=other) from None
            self._fds.append(fd)
        self.note(run_id)

    def note(self, run_id: str | None) -> None:
        """Record who holds the locks: this PID and the run, for a refused second process."""
        data = orjson.dumps({"pid": os.getpid(), "run_id": run_id})
        for fd in self._fds:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            except OSError:
                pass  # informational only; the flock itself is what excludes

    def release(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)  # closing the descriptor drops its flock
