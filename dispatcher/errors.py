"""The dispatcher's one exception tree.

    DispatchError                 anything the dispatcher raises on purpose
    ├── ConfigError               a bad config file, CLI flag or hook registration (exit 2)
    │   └── PolicyDenied          a function's resource policy does not allow the campaign
    ├── SegmentError              the segment source cannot be opened at all
    ├── HookError                 one hook attempt or chunk failed
    │   ├── HookAttemptError      an attempt failed; ``retryable`` says if another may follow
    │   └── HookResultError       the return value is not a valid endpoints map (never retried)
    ├── RunRefused                the run is refused before anything is sent (exit 2)
    │   ├── CampaignAlreadyRun    the ledger holds an earlier run of the campaign
    │   ├── LedgerBusy            another process holds the ledger or output directory
    │   └── InputChanged          resume/retry with another segment or campaign
    ├── RunInterrupted            the run stopped before it finished (a signal); resumable
    │   └── WorkerLost            a ``--processes`` worker died (exit 1); resumable
    ├── OccurrenceSent            a recurring campaign's due occurrence was sent (exit 0)
    ├── SendError                 a provider rejected or failed a send
    ├── EventStreamError          the event-stream destination refused a write for good
    └── StorageError              a file of the run can't be written or read (exit 1)
        └── LedgerError           the run ledger cannot be opened or is inconsistent

Per-record problems (a malformed line, a filtered endpoint) are never raised to the
caller: they become outcomes. These exceptions are for what stops a stage or a run.
Third-party exceptions (botocore, aiohttp, orjson) are mapped to these at the boundary.
"""

from __future__ import annotations


class DispatchError(Exception):
    """Base class of every error the dispatcher raises on purpose."""


class ConfigError(DispatchError):
    """A configuration or usage error, reported as ``FILE: KEY: message``."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.file = file
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.key) if p)
        return f"{where}: {self.message}" if where else self.message


class PolicyDenied(ConfigError):
    """A function's resource policy does not allow the campaign's source ARN."""


class SegmentError(DispatchError):
    """The segment source cannot be opened or read at all."""


class HookError(DispatchError):
    """A hook invocation failed; ``reason`` is what the outcome log shows."""

    def __init__(self, reason: str, *, function: str | None = None) -> None:
        self.reason = reason
        self.function = function
        super().__init__(reason)


class HookAttemptError(HookError):
    """One invocation attempt failed.

    ``retryable`` is False for errors that another attempt cannot fix (a 4xx from
    Lambda, an event over the payload limit); ``retry_after`` is the server's hint in
    seconds, when it gave one; ``throttled`` is True when the service refused the call
    before running the function (HTTP 429), which proves it did nothing.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        function: str | None = None,
        throttled: bool = False,
    ) -> None:
        super().__init__(reason, function=function)
        self.retryable = retryable
        self.retry_after = retry_after
        self.throttled = throttled


class HookResultError(HookError):
    """The hook returned something that is not a valid endpoints map."""


class SendError(DispatchError):
    """A send failed; ``code`` is the provider's error code."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if message else code)


class EventStreamError(DispatchError):
    """The event-stream destination refused a write for good (gone, access denied)."""

    def __init__(self, message: str, *, destination: str | None = None) -> None:
        self.destination = destination
        super().__init__(f"event stream {destination}: {message}" if destination else message)


class RunRefused(DispatchError):
    """The run was refused before anything was sent; ``run_id`` names the run at stake."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


class CampaignAlreadyRun(RunRefused):
    """The ledger already holds a run of this campaign that is unfinished or sent something.

    ``state`` is that run's state (RUNNING, INTERRUPTED, FINISHED); ``sent`` how many of
    its endpoints were sent (or may have been: claims in doubt count).
    """

    def __init__(self, message: str, *, run_id: str, state: str, sent: int) -> None:
        super().__init__(message, run_id=run_id)
        self.state = state
        self.sent = sent


class LedgerBusy(RunRefused):
    """Another live process holds the ledger or the output directory (``pid``, ``run_id``)."""

    def __init__(self, message: str, *, pid: int | None, run_id: str | None) -> None:
        super().__init__(message, run_id=run_id)
        self.pid = pid


class InputChanged(RunRefused):
    """Resume or retry was given another segment or campaign than the run started with.

    ``changed`` names what differs (``segment``, ``campaign.MessageConfiguration...``).
    """

    def __init__(self, message: str, *, run_id: str, changed: list[str]) -> None:
        super().__init__(message, run_id=run_id)
        self.changed = changed


class RunInterrupted(DispatchError):
    """The run stopped before it finished (a signal or the caller's ``stop``): every
    record settled so far is recorded, the rest is left for ``--resume``. ``summary`` holds
    the counts so far."""

    def __init__(self, message: str, *, run_id: str, summary: object = None) -> None:
        self.run_id = run_id
        self.summary = summary
        super().__init__(message)


class WorkerLost(RunInterrupted):
    """A worker process of a ``--processes`` run died (killed, out of memory): the others
    were stopped, every record settled so far is recorded, ``--resume`` does the rest."""


class OccurrenceSent(DispatchError):
    """The occurrence of a recurring campaign that is due was already sent from this
    ledger (by run ``run_id``): nothing to do until the next one. Not a failure: a
    scheduler that runs the command every few minutes sees this most of the time."""

    def __init__(self, message: str, *, run_id: str, occurrence: str,
                 next_occurrence: str | None) -> None:  # fmt: skip
        self.run_id = run_id
        self.occurrence = occurrence
        self.next_occurrence = next_occurrence
        super().__init__(message)


class StorageError(DispatchError):
    """A file or store of the run cannot be written or read: disk full, permissions, a
    damaged ledger. The run stops; what was recorded stays consistent, so a resume after
    the cause is fixed settles every record once. ``path`` names the file."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class LedgerError(StorageError):
    """The run ledger cannot be opened, or it does not match the run."""


class DynamoLedgerError(LedgerError):
    """A DynamoDB call of the fleet ledger failed for good; ``code`` is the AWS error
    code, when there is one."""

    def __init__(
        self, message: str, *, code: str | None = None, operation: str | None = None
    ) -> None:
        self.code = code
        self.operation = operation
        super().__init__(message)


class S3OutputError(DispatchError):
    """Writing an output to S3 failed for good; ``code`` is the S3 error code."""

    def __init__(self, message: str, *, code: str | None = None, url: str | None = None) -> None:
        self.code = code
        self.url = url
        super().__init__(message)


class LeaseError(DispatchError):
    """A send-rate lease store could not be read or written (a member then stops at its
    lease's end)."""
