"""The sender protocol: a batch of rendered messages in, one result per message out.

Every channel (outbox, SES, SMS, push, custom) implements ``Sender``. The pipeline
owns rendering, retries and the outcome log; a sender owns only the provider call and
the mapping of the provider's answer to a ``SendResult``.

Rate limits: the send stage holds a ``Sender``'s whole ``send`` call under the run's
ceilings. A sender that can do better implements ``PacedSender`` as well: it declares
its own ceiling (``max_per_second``) and takes each provider request's permit itself,
right before the request (``pace``), so that the ceilings hold as the provider sees
them (``dispatcher.ratelimit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from dispatcher.model import Definition, Status
from dispatcher.ratelimit import Pacing


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


@runtime_checkable
class RatedSender(Sender, Protocol):
    """A ``Sender`` that declares its own rate: a ceiling under the campaign's."""

    max_per_second: float | None
    """This sender's own ceiling (messages per second), e.g. a provider quota, under the
    campaign's ``MessagesPerSecond``; None for none."""


@runtime_checkable
class PacedSender(RatedSender, Protocol):
    """A ``RatedSender`` that paces each provider request itself.

    The send stage then calls ``send`` without holding a permit: the sender takes one
    per request from ``pacing`` (after its client exists, right before the request,
    each address of a multi-address request counting as one message), and reports a
    throttled request to the same limiter (``Limiter.throttled``).
    """

    def pace(self, pacing: Pacing) -> None:
        """Take every provider request's permit from ``pacing`` from now on."""
        ...


@runtime_checkable
class OpeningSender(Sender, Protocol):
    """A ``Sender`` with work to do at the start of a run, before its first message: make
    its client, read the provider's quotas (SES ``GetAccount``)."""

    async def open(self) -> str | None:
        """Get ready; return a note for the run's stderr (e.g. the quota it read), if any."""
        ...


async def open_senders(senders: Iterable[Sender]) -> list[str]:
    """``open()`` each distinct ``OpeningSender`` among ``senders``, concurrently; their
    notes in the order given. Call before the routes are built (``routes.build_routes``)."""
    distinct = list({id(s): s for s in senders if isinstance(s, OpeningSender)}.values())
    notes: list[str | None] = [None] * len(distinct)

    async def open_one(index: int, sender: OpeningSender) -> None:
        notes[index] = await sender.open()

    async with anyio.create_task_group() as tg:
        for index, sender in enumerate(distinct):
            tg.start_soon(open_one, index, sender)
    return [note for note in notes if note]


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
