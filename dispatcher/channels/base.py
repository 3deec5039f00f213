"""The sender protocol: a batch of rendered messages in, one result per message out.

Every channel (outbox, SES, SMS, push, custom) implements ``Sender``. The pipeline
owns rendering, rate limiting, retries and the outcome log; a sender owns only the
provider call and the mapping of the provider's answer to a ``SendResult``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from dispatcher.model import Definition, Status


@dataclass(slots=True)
class Message:
    """One rendered message for one endpoint."""

    endpoint_id: str
    line: int
    channel_type: str
    address: str
    title: str | None
    body: str | None
    html_body: str | None = None
    treatment_id: str = "0"
    definition: Definition = field(default_factory=dict)
    """The endpoint definition after the hook (custom channels send it on)."""
    template: Mapping[str, Any] = field(default_factory=dict)
    """The campaign's message object for this channel (e.g. ``GCMMessage``), unrendered:
    static fields such as ``Action``, ``Url``, ``SenderId`` or ``FromAddress``."""
    headers: list[dict[str, str]] | None = None
    """Email headers rendered for this endpoint (a template's headers with variables)."""


@dataclass(slots=True)
class SendResult:
    """What happened to one message.

    ``status`` is SUCCESS, THROTTLED, TEMPORARY_FAILURE or PERMANENT_FAILURE.
    ``retryable`` is True only when the message provably was not delivered and a later
    attempt may succeed (throttling, a 5xx answer, a refused connection). A time-out
    after the request left is *not* retryable: the provider may have sent it, and the
    dispatcher never risks a duplicate.
    """

    status: Status
    reason: str | None = None
    message_id: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    unsent: bool = False
    """True when the message provably was not sent although no retry may help now (the
    sender is unusable): the ledger releases its claim so ``retry`` can send it later."""

    @classmethod
    def ok(cls, message_id: str | None = None) -> SendResult:
        return cls(Status.SUCCESS, None, message_id)


@runtime_checkable
class Sender(Protocol):
    """A channel's delivery client.

    ``send`` returns exactly one ``SendResult`` per message, in order, and never raises
    for a per-message problem; it raises only for errors that make the sender unusable.
    ``max_batch`` is the most messages one ``send`` call accepts.
    """

    max_batch: int

    async def send(self, messages: Sequence[Message]) -> list[SendResult]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SenderContext:
    """What a sender factory may use besides its own options table."""

    application_id: str
    region: str
    account_id: str
    clients: Any
    """The process-wide ``dispatcher.aws.AwsClients``."""
    out_dir: Any
    """``pathlib.Path`` of the run's output directory."""
    run_id: str = ""
    config_file: str = "<config>"
    """For ``ConfigError(file=..., key=...)`` messages about bad options."""
    concurrency: int = 16
