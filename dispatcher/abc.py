"""The interfaces you implement to plug your own parts in, in one place.

    from dispatcher.abc import Sender, Message, SendResult

    class MySender:                      # a structural Protocol: no base class needed
        max_batch = 100
        async def send(self, messages: Sequence[Message]) -> list[SendResult]: ...
        async def aclose(self) -> None: ...

    run(settings, senders={"SMS": MySender()})

``Sender``
    A channel's delivery client (``senders=`` of ``run``/``dispatch``): one
    ``SendResult`` per ``Message``, in order, never raising for one message's problem.
    ``RatedSender`` adds its own ceiling (``max_per_second``); ``PacedSender`` takes a
    permit per provider request itself.
``HookTransport``
    Where a hook function runs (Lambda, webhook, in process, local host): ``invoke``
    one event and return the function's answer.
``SegmentSource``
    Records of a segment, in batches, with their line numbers.
``Ledger`` / ``LocalLedger`` / ``FleetLedger``
    Durable run state: claims before sends, one outcome per line, the send history.
``EventSink``
    Where ``_campaign.send`` event-stream records go (Kinesis, Firehose, a file).
``Limiter`` / ``LeaseStore``
    A send-rate ceiling, and the store through which processes share one.
``Clock``
    Where a run reads the time and sleeps (schedules; tests pass one they control).

Everything here is re-exported from the module that owns it; import from here.
"""

from dispatcher.campaign.schedule import Clock
from dispatcher.channels.base import Message, PacedSender, RatedSender, Sender, SendResult
from dispatcher.eventstream.sinks import EventSink
from dispatcher.hooks.base import HookTransport
from dispatcher.ledger.base import Claim, FleetLedger, Ledger, LocalLedger, RunInfo, SendClaim
from dispatcher.ratelimit import LeaseStore, Limiter, Permit
from dispatcher.segments.records import SegmentSource

__all__ = [
    "Claim",
    "Clock",
    "EventSink",
    "FleetLedger",
    "HookTransport",
    "LeaseStore",
    "Ledger",
    "Limiter",
    "LocalLedger",
    "Message",
    "PacedSender",
    "Permit",
    "RatedSender",
    "RunInfo",
    "SegmentSource",
    "SendClaim",
    "SendResult",
    "Sender",
]
