"""One run's context, built once: the hook transport, the senders, the routes (composer,
sender, rate limiter per treatment and channel), admission; and ``execute``, which runs
the pipeline over a segment with it. ``dispatcher run``, resume, retry, dry runs,
previews and the fleet worker all go through here.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio

from dispatcher.aws import AwsClients
from dispatcher.campaign import Expiry, QuietTime, Treatments, cap_check
from dispatcher.campaign.schedule import Clock, SystemClock
from dispatcher.channels.base import (
    Sender,
    SenderContext,
    open_senders,
)
from dispatcher.chunking import Chunker
from dispatcher.config import Settings
from dispatcher.eligibility import AddressClaims, Admission, Eligibility, WavePlanner
from dispatcher.errors import ConfigError, StorageError
from dispatcher.eventstream import EventStream, create_sink
from dispatcher.hooks import HookTransport, create_transport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy
from dispatcher.hooks.python import Handler
from dispatcher.ledger import Ledger
from dispatcher.outcomes import OutcomeLog
from dispatcher.pipeline import run_stages
from dispatcher.progress import Counters, show_progress
from dispatcher.ratelimit import (
    CeilingFactory,
    local_ceilings,
)
from dispatcher.render import Composer, EmptyVariables
from dispatcher.routes import build_composers, build_routes, build_senders
from dispatcher.secrets import resolve_secrets
from dispatcher.segments import SegmentSource
from dispatcher.stages import Stages
from dispatcher.timeline import TIMELINE_FILE, Timeline


@contextmanager
def _collector_tuned() -> Iterator[None]:
    """Collect garbage less often while a run streams millions of small dicts.

    Endpoint definitions hold no reference cycles, yet every few hundred of them
    trigger a young-generation collection that rescans everything still in flight; with
    the defaults the collector took ~20% of a run's CPU. Freezing what exists at start
    and raising the gen-0 threshold cuts that to ~1%; both are restored afterwards.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 20_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def prepare_out_dir(out_dir: Path, file: str) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output directory {str(out_dir)!r}: {exc.strerror}",
            file=file,
            key="--out",
        ) from None
    if not os.access(out_dir, os.W_OK):
        raise ConfigError(
            f"output directory {str(out_dir)!r} is not writable", file=file, key="--out"
        )


@dataclass(slots=True)
class RunContext:
    """What one run (or one shard of a fleet run) dispatches with: hook and senders."""

    settings: Settings
    run_id: str
    started_at: str
    out: Path
    clients: AwsClients
    transport: HookTransport | None
    senders: dict[str, tuple[str, Sender]]
    composers: dict[tuple[str, str], Composer]
    treatments: Treatments
    event_stream: EventStream | None = None
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    """What opening the senders found worth telling (e.g. an SES account quota)."""
    ceilings: CeilingFactory = local_ceilings
    """Makes each send-rate ceiling: this process's, or shared with other processes."""


async def open_context(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    run_id: str,
    started_at: str,
    out: Path,
    clients: AwsClients | None = None,
    handlers: Mapping[str, Handler] | None = None,
    senders: Mapping[str, Sender] | None = None,
    preview: Sender | None = None,
    call_hook: bool = True,
) -> RunContext:
    """Build the hook transport and the senders; ConfigError before anything is sent.

    A dry run passes ``preview`` (every message goes there, nothing is sent) and
    ``call_hook=False`` to skip the hook. A DELIVERY-mode hook is never called in a dry
    run: calling it is the send.
    """
    d = settings.dispatch
    treatments = Treatments.from_settings(settings)
    composers = build_composers(settings, treatments)
    if clients is None:
        clients = AwsClients(
            settings.project.region,
            max_pool_connections=max(d.hook_concurrency, d.send_concurrency, 10),
        )
        stack.push_async_callback(clients.aclose)
    hook = settings.hook
    if preview is not None and (not call_hook or (hook is not None and hook.mode == "DELIVERY")):
        hook = None
    secrets = await resolve_secrets(settings, clients)
    transport = None
    if hook is not None:
        transport = create_transport(
            settings, hook, handlers=handlers, clients=clients, secrets=secrets
        )
        stack.push_async_callback(transport.aclose)
        opener = getattr(transport, "open", None)
        if opener is not None:
            # Endpoint and credentials now: a ConfigError before any endpoint is read.
            try:
                await opener()
            except ConfigError as exc:
                raise ConfigError(exc.message, file=settings.file,
                                  key=exc.key or "campaign.Hook") from None
    prepare_out_dir(out, settings.file)
    ctx = SenderContext(
        application_id=settings.project.application_id,
        region=settings.project.region,
        account_id=settings.project.account_id,
        clients=clients,
        out_dir=out,
        run_id=run_id,
        config_file=settings.file,
        concurrency=d.send_concurrency,
    )
    by_channel = await build_senders(settings, ctx, senders or {}, stack, started_at, preview,
                                secrets)  # fmt: skip
    # Provider quotas (SES MaxSendRate) are read now: before the routes' limiters exist.
    notes = [] if preview is not None else await open_senders(s for _, s in by_channel.values())
    stream = None
    if settings.event_stream and preview is None:
        sink = create_sink(settings.event_stream, clients=clients, out_dir=out, file=settings.file)
        await sink.open()
        stream = EventStream(
            sink,
            application_id=settings.project.application_id,
            campaign_id=settings.campaign.id,
            activity_id=run_id,
            account_id=settings.project.account_id,
            custom_endpoint_types=settings.campaign.custom_types,
        )
        stack.push_async_callback(stream.aclose)
    return RunContext(settings, run_id, started_at, out, clients, transport, by_channel,
                      composers, treatments, stream, dry_run=preview is not None,
                      notes=notes)  # fmt: skip


async def execute(
    ctx: RunContext,
    *,
    source: SegmentSource,
    log: OutcomeLog,
    ledger: Ledger | None,
    skip: Callable[[int], bool] | None = None,
    progress: bool = False,
    counters: Counters | None = None,
    claim_addresses: AddressClaims | None = None,
    history: Ledger | None = None,
    stop: anyio.Event | None = None,
    timeline: Timeline | None = None,
    plan: WavePlanner | None = None,
    clock: Clock | None = None,
    ended: bool = False,
) -> Stages:
    """Run the stages over ``source``; every record read ends in ``log`` (and ``ledger``).

    ``history`` is the ledger the caps read when ``ledger`` is None (a dry run reads the
    send history but records nothing); ``stop`` ends reading early (see ``Stages.stop``).
    ``plan`` makes this the planning pass of a local-time campaign (see ``Admission``);
    ``ended`` says the campaign's EndTime is past for every record admitted now (a
    local-time wave due after it): they end EXPIRED, unsent. ``clock`` tells time to
    the schedule, quiet time and EndTime (tests control it).
    """
    settings = ctx.settings
    d = settings.dispatch
    hook = settings.hook if ctx.transport is not None else None
    counters = counters or Counters()
    eligibility = Eligibility(settings.campaign.channels, dedup=claim_addresses is None)
    limits = settings.limits
    caps = None
    history = ledger or history
    if history is not None and (limits.daily or limits.total):
        caps = cap_check(history.history, limits, campaign_id=settings.campaign.id)
    clock = clock or SystemClock()
    admission = Admission(
        eligibility,
        treatments=ctx.treatments if ctx.treatments.is_split else None,
        quiet=QuietTime.from_settings(settings),
        caps=caps,
        claim_addresses=claim_addresses,
        clock=clock.now,
        plan=plan,
    )
    expiry = Expiry(datetime.fromisoformat(ctx.started_at.replace("Z", "+00:00")),
                    limits.maximum_duration)  # fmt: skip
    end = settings.schedule.end

    def expired() -> bool:
        # MaximumDuration after the run's start, or the campaign's EndTime.
        if ended:
            return True
        now = clock.now()
        return expiry.expired(now) or (end is not None and now >= end)
    delivery = hook is not None and hook.mode == "DELIVERY"
    stages = Stages(
        run_id=ctx.run_id,
        campaign_id=settings.campaign.id,
        source=source,
        admit=admission,
        chunker=Chunker(d.chunk_size),
        log=log,
        counters=counters,
        routes=build_routes(settings, ctx.composers, ctx.senders, paced=not ctx.dry_run,
                       ceilings=ctx.ceilings),
        transport=ctx.transport,
        events=EventBuilder(
            application_id=settings.project.application_id,
            campaign_id=settings.campaign.id,
            activity_id=ctx.run_id,
            scheduled_time=ctx.started_at,
            configurations=ctx.treatments.message_configurations(),
            legacy_message=delivery,
        ),
        policy=InvokePolicy(d.hook_deadline, d.hook_attempts, d.hook_attempt_timeout),
        delivery_mode=delivery,
        hook_concurrency=d.hook_concurrency,
        send_concurrency=d.send_concurrency,
        send_attempts=d.send_attempts,
        ledger=ledger,
        skip=skip,
        expired=expired,
        event_stream=ctx.event_stream,
        stop=stop,
        empty_variables=EmptyVariables() if ctx.dry_run else None,
        timeline=timeline,
    )
    with _collector_tuned():
        async with anyio.create_task_group() as tg:
            if progress:
                tg.start_soon(show_progress, counters)
            if timeline is not None:
                tg.start_soon(_save_timeline, timeline, ctx.out / TIMELINE_FILE)
            await run_stages(stages)
            tg.cancel_scope.cancel()
    log.flush()
    if ledger is not None:
        await ledger.flush()
    return stages


TIMELINE_EVERY = 30.0
"""Seconds between two saves of ``timeline.json`` while a run goes."""


async def _save_timeline(timeline: Timeline, path: Path) -> None:
    """Keep ``timeline.json`` fresh while the run goes (a report of a killed run has it)."""
    while True:
        await anyio.sleep(TIMELINE_EVERY)
        try:
            timeline.write(path)
        except StorageError:
            pass  # the report's data: never worth stopping the run for
