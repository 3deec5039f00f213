"""What the stages of one run share: the ``Stages`` state and how an outcome is recorded.

The stages themselves live in modules named after them: ``pipeline`` (read, and the
wiring), ``eligibility`` (admission), ``chunking``, ``hooks.stage`` (the hook),
``delivery`` (render and send).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio

from dispatcher.channels.base import Sender
from dispatcher.chunking import Chunker
from dispatcher.eligibility import AddressSet
from dispatcher.eventstream import EventStream
from dispatcher.hooks.base import HookTransport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy
from dispatcher.ledger import Ledger
from dispatcher.model import Definition, Outcome, Record, Status
from dispatcher.outcomes import OutcomeLog
from dispatcher.progress import Counters
from dispatcher.ratelimit import Limiter
from dispatcher.render import Composer, EmptyVariables
from dispatcher.segments import SegmentSource
from dispatcher.timeline import Timeline


@dataclass(slots=True)
class SendBatch:
    """Endpoints of one treatment that passed the hook, with their final definitions."""

    treatment: str
    items: list[tuple[Record, Definition]]


@dataclass(slots=True)
class Route:
    """Where one (treatment, ChannelType) goes: how to compose it and who sends it."""

    composer: Composer
    sender: Sender
    limiter: Limiter
    sender_name: str = "outbox"
    max_grant: int = 1 << 30
    """The largest batch the limiter may grant at once (a ceiling of 1/s grants 1)."""


Admit = Callable[
    [list[Record], Callable[[int], bool] | None], Awaitable[tuple[list[Outcome], list[Record]]]
]


@dataclass(slots=True)
class Stages:
    """Everything the stages share for one run."""

    run_id: str
    campaign_id: str
    source: SegmentSource
    admit: Admit
    """Eligibility, dedup, treatments, quiet time and caps for a batch of records."""
    chunker: Chunker
    log: OutcomeLog
    counters: Counters
    routes: dict[tuple[str, str], Route]
    transport: HookTransport | None
    events: EventBuilder
    policy: InvokePolicy
    delivery_mode: bool
    hook_concurrency: int
    send_concurrency: int
    send_attempts: int
    ledger: Ledger | None = None
    skip: Callable[[int], bool] | None = None
    """Lines already settled (resume) or not selected (retry): read, not dispatched."""
    expired: Callable[[], bool] = lambda: False
    ignored_hook_ids: int = 0
    event_stream: EventStream | None = None
    stop: anyio.Event | None = None
    """Set to stop: calls in flight finish; unread records and chunks not yet started keep
    no outcome (a resume does them), and ``complete`` turns False."""
    complete: bool = True
    """False when ``stop`` left records without an outcome."""
    claimed_ids: AddressSet | None = None
    """Endpoint ids sent in this run, when there is no ledger to claim them in."""
    timeline: Timeline | None = None
    """Per-second counters for the run report."""
    empty_variables: EmptyVariables | None = None
    """Counts message variables that rendered empty (dry runs)."""

    def stopping(self) -> bool:
        """Whether a stop was asked for; records passed over from now on stay open."""
        if self.stop is not None and self.stop.is_set():
            self.complete = False
            return True
        return False

    async def record(
        self,
        outcomes: Sequence[Outcome],
        *,
        release: Iterable[str] = (),
        sent: Iterable[tuple[str, str]] = (),
        definitions: Sequence[Definition | None] | None = None,
    ) -> None:
        """Log terminal outcomes, make them durable in the ledger, publish them as events.

        ``definitions`` (parallel to ``outcomes``) are the endpoint records the event
        stream embeds in ``client_context.custom.endpoint``.
        """
        # The ledger first: it is the record a resume trusts, the log is derived from it.
        if self.ledger is not None:
            await self.ledger.record(self.run_id, outcomes, release=release, sent=sent)
        self.log.write(outcomes)
        counters, timeline = self.counters, self.timeline
        for o in outcomes:
            if o.status is Status.SUCCESS:
                counters.sent += 1
            elif o.status not in _QUIET:
                counters.failed += 1
            if timeline is not None:
                timeline.outcome(o.status.value)
        if self.event_stream is not None and outcomes:
            defs = definitions if definitions is not None else [None] * len(outcomes)
            await self.event_stream.publish(zip(outcomes, defs, strict=True))


_QUIET = frozenset(
    {Status.FILTERED, Status.OPT_OUT, Status.INACTIVE, Status.UNSUPPORTED_CHANNEL,
     Status.DUPLICATE_ADDRESS, Status.HOLDOUT, Status.QUIET_TIME, Status.DAILY_CAP,
     Status.TOTAL_CAP, Status.NO_TIMEZONE}
)  # fmt: skip


EXPIRED_REASON = "not sent within the campaign's MaximumDuration"

