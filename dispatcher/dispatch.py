"""``dispatch()`` and ``run()``: one campaign send, from settings to summary.

A run is new, a resume (``resume=True``: finish a run that stopped, skipping every line
the ledger has settled), or a retry (``retry=[statuses]``: dispatch again only the lines
whose latest outcome has one of those statuses). All three share the ledger, so no
endpoint is sent twice across them.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.campaign import Expiry, QuietTime, Treatments, cap_check, effective_limits
from dispatcher.channels import create_sender
from dispatcher.channels.base import Sender, SenderContext
from dispatcher.channels.outbox import OutboxSender
from dispatcher.channels.ratelimit import Limiter, RateLimiter
from dispatcher.chunking import Chunker
from dispatcher.config import Settings
from dispatcher.eligibility import AddressClaims, Admission, Eligibility
from dispatcher.errors import ConfigError
from dispatcher.eventstream import EventStream, create_sink
from dispatcher.hooks import HookTransport, create_transport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy
from dispatcher.hooks.python import Handler
from dispatcher.ledger import LEDGER_FILE, Ledger, RunInfo, SqliteLedger
from dispatcher.model import OVERRIDE_CHANNELS, Outcome, Status, Summary
from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog, now_iso, write_summary
from dispatcher.pipeline import NoLimit, Route, Stages, run_stages
from dispatcher.progress import Counters, show_progress
from dispatcher.render import Composer
from dispatcher.segments import SegmentSource, open_source

RUN_FILE = "run.json"


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


def new_run_id() -> str:
    """A run id: 32 hex characters, like Pinpoint's own ids (also the ActivityId)."""
    return uuid.uuid4().hex


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
                    channel, message, overridable=channel in OVERRIDE_CHANNELS, where=where
                )
            except ConfigError as exc:
                raise ConfigError(exc.message, file=settings.file, key=exc.key) from None
    return composers


def _custom_sender(settings: Settings, ctx: SenderContext, scheduled_time: str) -> Sender:
    """The campaign's CustomDeliveryConfiguration: a Lambda function or a webhook."""
    from dispatcher.channels.custom import CustomSender
    from dispatcher.config import CampaignHook

    campaign = settings.campaign
    uri = str((campaign.custom_delivery or {}).get("DeliveryUri"))
    hook = CampaignHook(web_url=uri) if "://" in uri else CampaignHook(lambda_function_name=uri)
    transport = create_transport(settings, hook, clients=ctx.clients)
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
) -> dict[str, tuple[str, Sender]]:
    """(sender name, sender) per ChannelType; same sender and options share one."""
    shared: dict[bytes, Sender] = {}
    out: dict[str, tuple[str, Sender]] = {}
    custom: Sender | None = None
    for channel in sorted(settings.campaign.channels):
        if channel in overrides:
            out[channel] = (f"library:{channel}", overrides[channel])
            continue
        if channel in settings.campaign.custom_types:
            if custom is None:
                custom = _custom_sender(settings, ctx, scheduled_time)
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
) -> dict[tuple[str, str], Route]:
    """A route per (treatment, channel), with its sender's rate limiter.

    ``MessagesPerSecond`` is one ceiling for the whole run; a sender's own
    ``max_per_second`` (a provider quota) chains under it.
    """
    mps = settings.messages_per_second
    run_limiter = RateLimiter(mps) if mps else None
    limiters: dict[int, tuple[Limiter, int]] = {}
    routes = {}
    for key, composer in composers.items():
        name, sender = by_channel[key[1]]
        if id(sender) not in limiters:
            own = getattr(sender, "max_per_second", None)
            rates = [r for r in (mps, own) if r]
            limiter: Limiter
            if run_limiter is not None:
                limiter = run_limiter.channel(own)
            elif own:
                limiter = RateLimiter(own)
            else:
                limiter = NoLimit()
            limiters[id(sender)] = (limiter, int(min(rates)) if rates else 1 << 30)
        limiter, max_grant = limiters[id(sender)]
        routes[key] = Route(composer, sender, limiter, name, max_grant)
    return routes


def _prepare_out_dir(out_dir: Path, file: str) -> None:
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


async def _reconcile_outbox(
    ledger: Ledger, run_id: str, campaign_id: str, outboxes: Iterable[Sender]
) -> None:
    """Settle outbox sends left in doubt by a crash: the file says what was sent."""
    in_doubt = await ledger.in_doubt(run_id, "outbox")
    if not in_doubt:
        return
    written: dict[str, tuple[str, str]] = {}
    for sender in outboxes:
        if isinstance(sender, OutboxSender):
            written.update(sender.sent_ids())
    sent = [Outcome(line, eid, Status.SUCCESS, None, *written[eid])
            for eid, line in in_doubt if eid in written]  # fmt: skip
    unsent = [eid for eid, _ in in_doubt if eid not in written]
    await ledger.record(
        run_id, sent, release=unsent, sent=[(o.endpoint_id or "", campaign_id) for o in sent]
    )
    await ledger.flush()


async def _rewrite_outcomes(ledger: Ledger, run_id: str, out: Path) -> None:
    """Rewrite ``outcomes.jsonl`` from the ledger: one line per record, latest status."""
    tmp = out / (OUTCOMES_FILE + ".tmp")
    log = OutcomeLog(tmp)
    try:
        async for batch in ledger.outcomes(run_id):
            log.write(batch)
    finally:
        log.close()
    os.replace(tmp, out / OUTCOMES_FILE)


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
) -> RunContext:
    """Build the hook transport and the senders; ConfigError before anything is sent."""
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
    transport = None
    if hook is not None:
        transport = create_transport(settings, hook, handlers=handlers, clients=clients)
        stack.push_async_callback(transport.aclose)
        opener = getattr(transport, "open", None)
        if opener is not None:
            # Endpoint and credentials now: a ConfigError before any endpoint is read.
            try:
                await opener()
            except ConfigError as exc:
                raise ConfigError(exc.message, file=settings.file,
                                  key=exc.key or "campaign.Hook") from None
    _prepare_out_dir(out, settings.file)
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
    by_channel = await _senders(settings, ctx, senders or {}, stack, started_at)
    stream = None
    if settings.event_stream:
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
                      composers, treatments, stream)  # fmt: skip


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
) -> Stages:
    """Run the stages over ``source``; every record read ends in ``log`` (and ``ledger``)."""
    settings = ctx.settings
    d = settings.dispatch
    hook = settings.hook
    counters = counters or Counters()
    eligibility = Eligibility(settings.campaign.channels, dedup=claim_addresses is None)
    limits = effective_limits(settings.campaign.limits, settings.project.limits)
    caps = None
    if ledger is not None and (limits.daily or limits.total):
        caps = cap_check(ledger.history, limits, campaign_id=settings.campaign.id)
    admission = Admission(
        eligibility,
        treatments=ctx.treatments if ctx.treatments.is_split else None,
        quiet=QuietTime.from_settings(settings),
        caps=caps,
        claim_addresses=claim_addresses,
    )
    expiry = Expiry(datetime.fromisoformat(ctx.started_at.replace("Z", "+00:00")),
                    limits.maximum_duration)  # fmt: skip
    delivery = hook is not None and hook.mode == "DELIVERY"
    stages = Stages(
        run_id=ctx.run_id,
        campaign_id=settings.campaign.id,
        source=source,
        admit=admission,
        chunker=Chunker(d.chunk_size),
        log=log,
        counters=counters,
        routes=_routes(settings, ctx.composers, ctx.senders),
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
        expired=expiry.expired,
        event_stream=ctx.event_stream,
    )
    with _collector_tuned():
        async with anyio.create_task_group() as tg:
            if progress:
                tg.start_soon(show_progress, counters)
            await run_stages(stages)
            tg.cancel_scope.cancel()
    log.flush()
    if ledger is not None:
        await ledger.flush()
    return stages


def _open_ledger(settings: Settings, out: Path, ledger: bool | Path) -> tuple[Ledger, str]:
    configured = settings.ledger.get("path")
    path = (
        Path(ledger)
        if not isinstance(ledger, bool)
        else (Path(configured) if configured else out / LEDGER_FILE)
    )
    return SqliteLedger(path), str(path)


async def dispatch(
    settings: Settings,
    *,
    segment: str | None = None,
    out_dir: str | Path = "out",
    run_id: str | None = None,
    resume: bool = False,
    retry: Iterable[str] | None = None,
    ledger: bool | Path = True,
    handlers: Mapping[str, Handler] | None = None,
    senders: Mapping[str, Sender] | None = None,
    on_start: Callable[[str], None] | None = None,
    progress: bool = True,
) -> Summary:
    """Run one campaign send and return its summary.

    ``segment`` overrides ``[segment] source``. ``ledger`` is True for the SQLite ledger
    (``[ledger] path``, default ``out_dir/ledger.sqlite``), a path for another SQLite
    file, or False for none (no resume, retry or caps). ``resume`` finishes run
    ``run_id``; ``retry`` re-dispatches its records whose latest status is in that set.
    ``handlers`` maps hook function names to Python callables run in process;
    ``senders`` maps ChannelTypes to ready-made senders. Configuration problems raise
    ``ConfigError`` before any endpoint data is sent anywhere.
    """
    out = Path(out_dir)
    retry_statuses = sorted(set(retry)) if retry is not None else None
    continuing = resume or retry_statuses is not None
    if continuing and not run_id:
        raise ConfigError("resume and retry need the RunId", key="RUN_ID")
    if continuing and ledger is False:
        raise ConfigError("resume and retry need the ledger", key="--no-ledger")
    run_id = run_id or new_run_id()
    async with AsyncExitStack() as stack:
        book: Ledger | None = None
        prior: RunInfo | None = None
        if ledger is not False:
            _prepare_out_dir(out, settings.file)
            book, where = _open_ledger(settings, out, ledger)
            stack.push_async_callback(book.aclose)
            prior = await book.get_run(run_id)
            if continuing and prior is None:
                raise ConfigError(f"run {run_id} is not in the ledger {where}", key="RUN_ID")
            if not continuing and prior is not None:
                raise ConfigError(f"run {run_id} already exists; use --resume", key="RUN_ID")
            if prior is not None and prior.campaign_id != settings.campaign.id:
                raise ConfigError(
                    f"run {run_id} is campaign {prior.campaign_id!r}, the config is "
                    f"{settings.campaign.id!r}",
                    file=settings.file,
                    key="campaign.Id",
                )
        source_spec = segment or settings.segment_source or (prior.segment if prior else None)
        if not source_spec:
            raise ConfigError(
                "no segment source: set [segment] source or pass --segment",
                file=settings.file,
                key="segment.source",
            )
        d = settings.dispatch
        clients = AwsClients(
            settings.project.region,
            max_pool_connections=max(d.hook_concurrency, d.send_concurrency, 10),
        )
        stack.push_async_callback(clients.aclose)
        try:
            source = open_source(source_spec, settings.segment_format, clients=clients)
        except ConfigError as exc:
            key = "--segment" if segment else "segment.source"
            raise ConfigError(exc.message, file=settings.file, key=key) from None
        started_at = prior.started_at if prior else now_iso()
        ctx = await open_context(
            settings,
            stack,
            run_id=run_id,
            started_at=started_at,
            out=out,
            clients=clients,
            handlers=handlers,
            senders=senders,
        )
        run = RunInfo(
            run_id=run_id,
            config=str(Path(settings.file).resolve()),  # noqa: ASYNC240 - no I/O
            segment=source.name,
            campaign_id=settings.campaign.id,
            application_id=settings.project.application_id,
            started_at=started_at,
        )
        if prior is not None:
            run.extra = prior.extra
        (out / RUN_FILE).write_bytes(orjson.dumps(
            {"RunId": run_id, "Config": run.config, "Segment": source.name,
             "CampaignId": settings.campaign.id, "ApplicationId": settings.project.application_id,
             "StartedAt": started_at}, option=orjson.OPT_INDENT_2))  # fmt: skip
        skip = None
        if book is not None:
            await book.start_run(run)
            if continuing:
                await _reconcile_outbox(
                    book,
                    run_id,
                    settings.campaign.id,
                    {id(s): s for _, s in ctx.senders.values()}.values(),
                )
            if resume:
                settled = await book.lines_with_status(run_id)
                skip = settled.__contains__
            elif retry_statuses is not None:
                chosen = await book.lines_with_status(run_id, retry_statuses)
                skip = lambda line: line not in chosen  # noqa: E731
        if on_start:
            on_start(run_id)
        log = OutcomeLog(out / OUTCOMES_FILE, append=continuing)
        stack.callback(log.close)
        counters = Counters()
        stages = await execute(
            ctx,
            source=source,
            log=log,
            ledger=book,
            skip=skip,
            progress=progress,
            counters=counters,
        )
        hook_invocations = counters.hook_invocations + int(run.extra.get("hook_invocations", 0))
        summary = Summary(
            run_id=run_id,
            hook_invocations=hook_invocations,
            started_at=started_at,
            ignored_hook_ids=stages.ignored_hook_ids,
        )
        if book is not None:
            if continuing:
                log.close()
                await _rewrite_outcomes(book, run_id, out)
            summary.by_status = await book.counts(run_id)
        else:
            summary.by_status = dict(log.counts)
        summary.total = sum(summary.by_status.values())
        summary.finished_at = now_iso()
        if book is not None:
            await book.finish_run(
                run_id, finished_at=summary.finished_at, summary=summary.to_json()
            )
        write_summary(out, summary)
        return summary


def run(settings: Settings, **kwargs: Any) -> Summary:
    """Synchronous ``dispatch()`` for batch jobs and scripts."""
    return anyio.run(lambda: dispatch(settings, **kwargs))
