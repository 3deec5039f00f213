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
import orjson

from dispatcher.aws import AwsClients
from dispatcher.campaign import Expiry, QuietTime, Treatments, cap_check
from dispatcher.campaign.schedule import Clock, SystemClock
from dispatcher.channels import create_sender
from dispatcher.channels.base import (
    PacedSender,
    RatedSender,
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
from dispatcher.model import OVERRIDE_CHANNELS
from dispatcher.outcomes import OutcomeLog
from dispatcher.pipeline import run_stages
from dispatcher.progress import Counters, show_progress
from dispatcher.ratelimit import (
    CAMPAIGN,
    CeilingFactory,
    Limiter,
    NoLimit,
    Pacing,
    RateLimiter,
    all_of,
    local_ceilings,
)
from dispatcher.render import Composer, EmptyVariables
from dispatcher.secrets import resolve_secrets
from dispatcher.segments import SegmentSource
from dispatcher.stages import Route, Stages
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


def _composers(settings: Settings, treatments: Treatments) -> dict[tuple[str, str], Composer]:
    """A composer per (TreatmentId, ChannelType): templates compiled once, errors early."""
    composers = {}
    for tid in treatments.ids:
        for channel in sorted(settings.campaign.channels):
            message = treatments.message_for(tid, channel)
            if message is None:
                continue
            where = f"campaign.MessageConfiguration.{channel}"
            if tid != "0":
                where = (
                    f"campaign.AdditionalTreatments[{int(tid) - 1}].MessageConfiguration.{channel}"
                )
            try:
                composers[(tid, channel)] = Composer(
                    channel, message, overridable=channel in OVERRIDE_CHANNELS, where=where,
                    strict=settings.campaign.strict_variables,
                )
            except ConfigError as exc:
                raise ConfigError(exc.message, file=settings.file, key=exc.key) from None
    return composers


def _custom_sender(
    settings: Settings, ctx: SenderContext, scheduled_time: str, secrets: Mapping[str, str]
) -> Sender:
    """The campaign's CustomDeliveryConfiguration: a Lambda function or a webhook."""
    from dispatcher.channels.custom import CustomSender
    from dispatcher.config import CampaignHook

    campaign = settings.campaign
    uri = str((campaign.custom_delivery or {}).get("DeliveryUri"))
    hook = CampaignHook(web_url=uri) if "://" in uri else CampaignHook(lambda_function_name=uri)
    transport = create_transport(settings, hook, clients=ctx.clients, secrets=secrets)
    data = (campaign.message_configuration.get("CustomMessage") or {}).get("Data")
    return CustomSender(
        transport,
        data=data,
        application_id=settings.project.application_id,
        campaign_id=campaign.id,
        activity_id=ctx.run_id,
        scheduled_time=scheduled_time,
        timeout=settings.dispatch.hook_deadline,
    )


async def _senders(
    settings: Settings,
    ctx: SenderContext,
    overrides: Mapping[str, Sender],
    stack: AsyncExitStack,
    scheduled_time: str,
    preview: Sender | None = None,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, tuple[str, Sender]]:
    """(sender name, sender) per ChannelType; same sender and options share one.

    With ``preview`` (a dry run) every channel goes to it; the real senders are still
    built, so their options are checked, except the outbox (it would create its file).
    """
    shared: dict[bytes, Sender] = {}
    out: dict[str, tuple[str, Sender]] = {}
    custom: Sender | None = None
    for channel in sorted(settings.campaign.channels):
        if preview is not None:
            out[channel] = ("preview", preview)
            cfg = settings.channels.get(channel)
            if channel in overrides or channel in settings.campaign.custom_types:
                continue
            if cfg is not None and cfg.sender != "outbox":
                sender = create_sender(cfg.sender, channel, cfg.options, ctx)
                stack.push_async_callback(sender.aclose)
            continue
        if channel in overrides:
            out[channel] = (f"library:{channel}", overrides[channel])
            continue
        if channel in settings.campaign.custom_types:
            if custom is None:
                custom = _custom_sender(settings, ctx, scheduled_time, secrets or {})
                stack.push_async_callback(custom.aclose)
            out[channel] = ("custom", custom)
            continue
        cfg = settings.channels.get(channel)
        name, options = (cfg.sender, cfg.options) if cfg else ("outbox", {})
        key = orjson.dumps([name, options], option=orjson.OPT_SORT_KEYS)
        if key not in shared:
            sender = create_sender(name, channel, options, ctx)
            stack.push_async_callback(sender.aclose)
            shared[key] = sender
        out[channel] = (name, shared[key])
    return out


def _routes(
    settings: Settings,
    composers: Mapping[tuple[str, str], Composer],
    by_channel: Mapping[str, tuple[str, Sender]],
    *,
    paced: bool = True,
    ceilings: CeilingFactory = local_ceilings,
) -> dict[tuple[str, str], Route]:
    """A route per (treatment, channel), with its sender's rate limiter.

    ``MessagesPerSecond`` is one ceiling for the whole campaign, every treatment and
    channel; a sender's own ``max_per_second`` (a provider quota) composes under it, with
    the sender's own throttling feedback. ``ceilings`` makes each ceiling (one process's,
    or ``SharedCeilings`` across processes and fleet workers). A ``PacedSender`` takes a
    permit per provider request itself (its route holds ``NoLimit``); any other sender
    is held under its limiter for each whole ``send`` call. A dry run is not paced.
    """
    if not paced:
        return {key: Route(composer, by_channel[key[1]][1], NoLimit(), by_channel[key[1]][0])
                for key, composer in composers.items()}  # fmt: skip
    mps = settings.messages_per_second
    campaign = ceilings(CAMPAIGN, mps) if mps else NoLimit()
    limiters: dict[int, tuple[Limiter, int]] = {}
    routes = {}
    for key, composer in composers.items():
        name, sender = by_channel[key[1]]
        if id(sender) not in limiters:
            own = sender.max_per_second if isinstance(sender, RatedSender) else None
            rates = [r for r in (mps, own) if r]
            # A sender's own limiter carries its own throttling feedback: a (shared) ceiling
            # when it has a quota of its own, else a pacer in front of the campaign's.
            mine: Limiter = ceilings(f"sender/{name}/{key[1]}", min(rates)) if own else (
                RateLimiter(mps, hard=False) if mps else NoLimit())  # fmt: skip
            limiter = all_of(mine, campaign)
            if isinstance(sender, PacedSender):
                sender.pace(Pacing(limiter, ceilings))
                limiter = NoLimit()
            limiters[id(sender)] = (limiter, int(min(rates)) if rates else 1 << 30)
        limiter, max_grant = limiters[id(sender)]
        routes[key] = Route(composer, sender, limiter, name, max_grant)
    return routes


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
    composers = _composers(settings, treatments)
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
    by_channel = await _senders(settings, ctx, senders or {}, stack, started_at, preview,
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
        routes=_routes(settings, ctx.composers, ctx.senders, paced=not ctx.dry_run,
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
