"""``dispatch()`` and ``run()``: one campaign send, from settings to summary.

A run is new, a resume (``resume=True``: finish a run that stopped, skipping every line
the ledger has settled), or a retry (``retry=[statuses]``: dispatch again only the lines
whose latest outcome has one of those statuses). All three share the ledger, so no
endpoint is sent twice across them.
"""

from __future__ import annotations

import gc
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.campaign import Expiry, QuietTime, Treatments, cap_check, effective_limits
from dispatcher.channels import create_sender
from dispatcher.channels.base import Sender, SenderContext
from dispatcher.channels.outbox import OutboxSender
from dispatcher.channels.preview import PREVIEW_FILE, PreviewSender
from dispatcher.channels.ratelimit import Limiter, RateLimiter
from dispatcher.chunking import Chunker
from dispatcher.config import Settings
from dispatcher.eligibility import AddressClaims, Admission, Eligibility
from dispatcher.errors import (
    CampaignAlreadyRun,
    ConfigError,
    DispatchError,
    InputChanged,
    RunInterrupted,
    StorageError,
)
from dispatcher.eventstream import EventStream, create_sink
from dispatcher.fingerprint import campaign_document, compare, segment_fingerprint
from dispatcher.hooks import HookTransport, create_transport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy
from dispatcher.hooks.python import Handler
from dispatcher.ledger import LEDGER_FILE, Ledger, RunInfo, SqliteLedger
from dispatcher.model import FAILURE_STATUSES, OVERRIDE_CHANNELS, Outcome, Status, Summary
from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog, now_iso, write_summary
from dispatcher.pipeline import EmptyVariables, NoLimit, Route, Stages, run_stages
from dispatcher.progress import Counters, show_progress
from dispatcher.render import Composer
from dispatcher.runlock import RunLock
from dispatcher.secrets import resolve_secrets
from dispatcher.segments import SegmentSource, open_source
from dispatcher.timeline import TIMELINE_FILE, Timeline

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
) -> dict[tuple[str, str], Route]:
    """A route per (treatment, channel), with its sender's rate limiter.

    ``MessagesPerSecond`` is one ceiling for the whole run; a sender's own
    ``max_per_second`` (a provider quota) chains under it. A dry run is not paced.
    """
    if not paced:
        return {key: Route(composer, by_channel[key[1]][1], NoLimit(), by_channel[key[1]][0])
                for key, composer in composers.items()}  # fmt: skip
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
    dry_run: bool = False


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
    by_channel = await _senders(settings, ctx, senders or {}, stack, started_at, preview,
                                secrets)  # fmt: skip
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
                      composers, treatments, stream, dry_run=preview is not None)  # fmt: skip


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
) -> Stages:
    """Run the stages over ``source``; every record read ends in ``log`` (and ``ledger``).

    ``history`` is the ledger the caps read when ``ledger`` is None (a dry run reads the
    send history but records nothing); ``stop`` ends reading early (see ``Stages.stop``).
    """
    settings = ctx.settings
    d = settings.dispatch
    hook = settings.hook if ctx.transport is not None else None
    counters = counters or Counters()
    eligibility = Eligibility(settings.campaign.channels, dedup=claim_addresses is None)
    limits = effective_limits(settings.campaign.limits, settings.project.limits)
    caps = None
    history = ledger or history
    if history is not None and (limits.daily or limits.total):
        caps = cap_check(history.history, limits, campaign_id=settings.campaign.id)
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
        routes=_routes(settings, ctx.composers, ctx.senders, paced=not ctx.dry_run),
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


def _timeline(settings: Settings, out: Path, run_id: str, started: float,
              continuing: bool, dry_run: bool) -> Timeline:  # fmt: skip
    """The run's timeline; a resume or retry continues the one its first attempt saved."""
    ceiling = None if dry_run else settings.messages_per_second
    path = out / TIMELINE_FILE
    if continuing and path.exists():
        try:
            previous = Timeline.read(path)
        except DispatchError:
            previous = None
        if previous is not None and previous.run_id == run_id:
            return Timeline.resumed(previous, started, ceiling=ceiling)
    return Timeline(started, ceiling=ceiling, run_id=run_id)


def _ledger_path(settings: Settings, out: Path, ledger: bool | Path) -> Path:
    if not isinstance(ledger, bool):
        return Path(ledger)
    configured = settings.ledger.get("path")
    return Path(configured) if configured else out / LEDGER_FILE


DryRun = bool | Literal["no-hook"]
"""``dry_run``: False (send), True (everything but the send), or "no-hook" (nor the hook)."""


@dataclass(slots=True)
class _Attempt:
    """What kind of attempt a ``dispatch()`` call is, from its arguments."""

    run_id: str
    continuing: bool
    resume: bool
    retry: list[str] | None
    dry_run: bool

    def commands(self, settings: Settings, out: Path) -> str:
        """The commands that continue this run, for refusal messages and hints."""
        config = _shell(settings.file)
        return (f"`dispatcher run {config} --resume {self.run_id} --out {_shell(str(out))}` or "
                f"`dispatcher retry {self.run_id} --out {_shell(str(out))}`")  # fmt: skip


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)


async def _refuse_second_run(
    book: SqliteLedger, settings: Settings, out: Path, where: str
) -> None:
    """A campaign is sent once per ledger: refuse when an earlier run is unfinished or
    sent anything (``send_again`` skips this check)."""
    project, campaign = settings.project, settings.campaign
    for earlier in await book.runs_of(project.application_id, campaign.id):
        sent = await book.claimed(earlier.run_id)
        # We hold the ledger's lock, so a run still marked RUNNING has no live process.
        state = "INTERRUPTED" if earlier.state == "RUNNING" else earlier.state
        if state == "FINISHED" and not sent:
            continue
        attempt = _Attempt(earlier.run_id, True, True, None, False)
        raise CampaignAlreadyRun(
            f"campaign {campaign.id!r} of application {project.application_id!r} already has "
            f"run {earlier.run_id} in the ledger {where} ({state}, {sent:,} sent); continue "
            f"it with {attempt.commands(settings, out)}, or pass --send-again to send the "
            "campaign again",
            run_id=earlier.run_id,
            state=state,
            sent=sent,
        )


def _check_inputs(
    prior: RunInfo, segment: dict[str, Any], campaign: dict[str, Any], force: bool
) -> None:
    """Resume and retry continue the run they name: same segment, same campaign."""
    recorded = prior.fingerprints
    changed = compare(recorded.get("segment"), segment, segment=True)
    changed += [f"campaign ({key})" for key in
                compare(recorded.get("campaign"), campaign, segment=False)]  # fmt: skip
    if changed and not force:
        shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3
                                          else "")  # fmt: skip
        raise InputChanged(
            f"run {prior.run_id} started with other input: {shown}; give the same segment "
            "and campaign, or pass --force-changed-input to continue anyway",
            run_id=prior.run_id,
            changed=changed,
        )


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
    dry_run: DryRun = False,
    send_again: bool = False,
    force_changed_input: bool = False,
    stop: anyio.Event | None = None,
) -> Summary:
    """Run one campaign send and return its summary.

    ``segment`` overrides ``[segment] source``. ``ledger`` is True for the SQLite ledger
    (``[ledger] path``, default ``out_dir/ledger.sqlite``), a path for another SQLite
    file, or False for none (no resume, retry, caps or send-once check). ``resume``
    finishes run ``run_id``; ``retry`` re-dispatches its records whose latest status is
    in that set. ``handlers`` maps hook function names to Python callables run in
    process; ``senders`` maps ChannelTypes to ready-made senders.

    Safety rules: the ledger and ``out_dir`` are locked for the run (``LedgerBusy``); a
    campaign that already has a run in the ledger that is unfinished or sent anything is
    refused (``CampaignAlreadyRun``) unless ``send_again``; resume and retry refuse
    another segment or campaign (``InputChanged``) unless ``force_changed_input``.
    ``dry_run`` does everything but the send (``"no-hook"``: nor the hook), writes
    ``preview.jsonl`` and ``outcomes.jsonl``, and records nothing in the ledger.
    Setting ``stop`` stops reading: in-flight work finishes and ``RunInterrupted`` is
    raised. Configuration problems raise ``ConfigError`` before any endpoint data is
    sent anywhere; a file that cannot be written raises ``StorageError``.
    """
    out = Path(out_dir)
    retry_statuses = sorted(set(retry)) if retry is not None else None
    continuing = resume or retry_statuses is not None
    if continuing and not run_id:
        raise ConfigError("resume and retry need the RunId", key="RUN_ID")
    if continuing and ledger is False:
        raise ConfigError("resume and retry need the ledger", key="--no-ledger")
    if continuing and dry_run:
        raise ConfigError("a dry run cannot resume or retry a run", key="--dry-run")
    attempt = _Attempt(run_id or new_run_id(), continuing, resume, retry_statuses, bool(dry_run))
    _prepare_out_dir(out, settings.file)
    ledger_path = _ledger_path(settings, out, ledger) if ledger is not False else None
    async with AsyncExitStack() as stack:
        # Lock before anything is written: a refused second process must leave no trace.
        lock = RunLock(out, *([ledger_path] if ledger_path and not dry_run else []))
        lock.acquire(attempt.run_id)
        stack.callback(lock.release)
        book = None
        if ledger_path is not None and (not dry_run or ledger_path.exists()):
            book = SqliteLedger(ledger_path)  # a dry run only reads the send history
            stack.push_async_callback(book.aclose)
        prior = await _prior_run(book, attempt, settings, str(ledger_path), explicit=bool(run_id))
        if book is not None and not continuing and not dry_run and not send_again:
            await _refuse_second_run(book, settings, out, str(ledger_path))
        preview = None
        if dry_run:
            preview_file = _open_file(out / PREVIEW_FILE, "wb")
            stack.callback(preview_file.close)
            preview = PreviewSender(preview_file, name=str(out / PREVIEW_FILE))
        return await _dispatch(
            settings, stack, attempt, out=out, book=book, prior=prior, segment=segment,
            handlers=handlers, senders=senders, on_start=on_start, progress=progress,
            preview=preview, call_hook=dry_run != "no-hook",
            force_changed_input=force_changed_input, stop=stop,
        )  # fmt: skip


async def preview(
    settings: Settings,
    *,
    limit: int = 5,
    segment: str | None = None,
    hook: bool = True,
    handlers: Mapping[str, Handler] | None = None,
) -> list[dict[str, Any]]:
    """The first ``limit`` messages the campaign would send, rendered; nothing is sent,
    nothing is written. The hook is called (unless ``hook=False``) one event at a time,
    with events no bigger than ``limit``, so a preview costs few invocations."""
    d = settings.dispatch
    small = replace(settings, dispatch=replace(
        d, hook_concurrency=1, send_concurrency=1, chunk_size=min(d.chunk_size, max(limit, 1))
    ))  # fmt: skip
    stop = anyio.Event()
    buffer = io.BytesIO()
    sender = PreviewSender(buffer, name="<preview>", limit=limit, on_limit=stop.set)
    with tempfile.TemporaryDirectory(prefix="dispatcher-preview-") as tmp:
        async with AsyncExitStack() as stack:
            attempt = _Attempt(new_run_id(), False, False, None, True)
            try:
                await _dispatch(
                    small, stack, attempt, out=Path(tmp), book=None, prior=None,
                    segment=segment, handlers=handlers, senders=None, on_start=None,
                    progress=False, preview=sender, call_hook=hook, force_changed_input=False,
                    stop=stop,
                )  # fmt: skip
            except RunInterrupted:
                pass  # the limit was reached: what we came for
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


async def _prior_run(
    book: SqliteLedger | None, attempt: _Attempt, settings: Settings, where: str, *,
    explicit: bool,
) -> RunInfo | None:  # fmt: skip
    """The run being continued (None for a new run), checked against the request."""
    if book is None or not explicit:
        return None
    prior = await book.get_run(attempt.run_id)
    if attempt.continuing and prior is None:
        raise ConfigError(f"run {attempt.run_id} is not in the ledger {where}", key="RUN_ID")
    if not attempt.continuing and prior is not None:
        raise ConfigError(f"run {attempt.run_id} already exists; use --resume", key="RUN_ID")
    if prior is not None and prior.campaign_id != settings.campaign.id:
        raise ConfigError(
            f"run {attempt.run_id} is campaign {prior.campaign_id!r}, the config is "
            f"{settings.campaign.id!r}",
            file=settings.file,
            key="campaign.Id",
        )
    return prior


async def _dispatch(
    settings: Settings,
    stack: AsyncExitStack,
    attempt: _Attempt,
    *,
    out: Path,
    book: SqliteLedger | None,
    prior: RunInfo | None,
    segment: str | None,
    handlers: Mapping[str, Handler] | None,
    senders: Mapping[str, Sender] | None,
    on_start: Callable[[str], None] | None,
    progress: bool,
    preview: PreviewSender | None,
    call_hook: bool,
    force_changed_input: bool,
    stop: anyio.Event | None,
) -> Summary:
    run_id = attempt.run_id
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
    fingerprints: dict[str, Any] = {}
    if not attempt.dry_run:
        fingerprints = {
            "segment": await segment_fingerprint(source_spec, clients),
            "campaign": campaign_document(settings),
        }
        if prior is not None:
            _check_inputs(prior, fingerprints["segment"], fingerprints["campaign"],
                          force_changed_input)  # fmt: skip
    started_at = prior.started_at if prior else now_iso()
    ctx = await open_context(
        settings, stack, run_id=run_id, started_at=started_at, out=out, clients=clients,
        handlers=handlers, senders=senders, preview=preview, call_hook=call_hook,
    )  # fmt: skip
    ledger = book if not attempt.dry_run else None
    skip = None
    skipped_in_doubt = 0
    if ledger is not None:
        run = RunInfo(
            run_id=run_id,
            config=str(Path(settings.file).resolve()),  # noqa: ASYNC240 - no I/O
            segment=source.name,
            campaign_id=settings.campaign.id,
            application_id=settings.project.application_id,
            started_at=started_at,
            extra=prior.extra if prior is not None else {},
            fingerprints=fingerprints,
        )
        _write_run_file(out, run)
        await ledger.start_run(run)
        if attempt.continuing:
            await _reconcile_outbox(
                ledger, run_id, settings.campaign.id,
                {id(s): s for _, s in ctx.senders.values()}.values(),
            )  # fmt: skip
        if attempt.resume:
            skip = (await ledger.lines_with_status(run_id)).__contains__
        elif attempt.retry is not None:
            chosen = await ledger.lines_with_status(run_id, attempt.retry)
            doubt = await ledger.in_doubt_lines(run_id)
            # A send in doubt is never repeated: don't even call the hook for it.
            skipped_in_doubt = sum(1 for line in doubt.lines() if line in chosen)
            skip = lambda line: line not in chosen or line in doubt  # noqa: E731
    if on_start:
        on_start(run_id)
    log = OutcomeLog(out / OUTCOMES_FILE, append=attempt.continuing)
    stack.callback(log.close)
    counters = Counters()
    timeline = _timeline(settings, out, run_id, counters.started, attempt.continuing,
                         attempt.dry_run)  # fmt: skip
    try:
        stages = await execute(
            ctx, source=source, log=log, ledger=ledger, skip=skip, progress=progress,
            counters=counters, history=book, stop=stop, timeline=timeline,
        )  # fmt: skip
    except BaseException as exc:
        if ledger is not None:
            await _mark_interrupted(ledger, run_id)
        _finish_timeline(timeline, out)
        error = _dispatch_error(exc)
        if error is not None and error is not exc:
            raise error from exc
        raise
    _finish_timeline(timeline, out)
    summary = Summary(
        run_id=run_id,
        hook_invocations=counters.hook_invocations + int(ctx_extra(prior, "hook_invocations")),
        started_at=started_at,
        ignored_hook_ids=stages.ignored_hook_ids,
        dry_run=attempt.dry_run,
        skipped_in_doubt=skipped_in_doubt,
    )
    summary.empty_variables = stages.empty_variables.report() if stages.empty_variables else []
    if ledger is not None:
        if attempt.continuing:
            log.close()
            await _rewrite_outcomes(ledger, run_id, out)
        summary.by_status = await ledger.counts(run_id)
        summary.top_failures = await ledger.reasons(run_id, sorted(FAILURE_STATUSES))
    else:
        summary.by_status = dict(log.counts)
        summary.top_failures = [(st, reason, n) for (st, reason), n
                                in log.failure_reasons.most_common(3)]  # fmt: skip
    summary.total = sum(summary.by_status.values())
    summary.finished_at = now_iso()
    summary.elapsed = counters.elapsed
    summary.read = counters.read
    if not stages.complete:
        if ledger is not None:
            await _mark_interrupted(ledger, run_id)
        raise RunInterrupted(f"run {run_id} was stopped before it finished", run_id=run_id,
                             summary=summary)  # fmt: skip
    if ledger is not None:
        await ledger.finish_run(run_id, finished_at=summary.finished_at, summary=summary.to_json())
    if not attempt.dry_run:
        write_summary(out, summary)
    return summary


def _finish_timeline(timeline: Timeline, out: Path) -> None:
    timeline.finish()
    try:
        timeline.write(out / TIMELINE_FILE)
    except StorageError:
        pass  # the report's data: never worth failing the run for


def ctx_extra(prior: RunInfo | None, key: str) -> int:
    """A counter carried over from the run's earlier attempts (e.g. hook invocations)."""
    return int(prior.extra.get(key, 0)) if prior is not None else 0


def _open_file(path: Path, mode: str) -> Any:
    try:
        return path.open(mode)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}", path=str(path)) from None


def _write_run_file(out: Path, run: RunInfo) -> None:
    data = {"RunId": run.run_id, "Config": run.config, "Segment": run.segment,
            "CampaignId": run.campaign_id, "ApplicationId": run.application_id,
            "StartedAt": run.started_at}  # fmt: skip
    try:
        (out / RUN_FILE).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise StorageError(f"cannot write {out / RUN_FILE}: {exc.strerror}",
                           path=str(out / RUN_FILE)) from None  # fmt: skip


async def _mark_interrupted(ledger: SqliteLedger, run_id: str) -> None:
    """Best effort, shielded: the run stopped; ``status`` would say so anyway (the lock)."""
    with anyio.CancelScope(shield=True):
        try:
            await ledger.set_state(run_id, "INTERRUPTED")
        except DispatchError:
            pass  # the ledger itself may be what failed (disk full); status repairs it


def _dispatch_error(exc: BaseException) -> DispatchError | None:
    """The first DispatchError inside (nested) exception groups: what the user must see."""
    if isinstance(exc, DispatchError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _dispatch_error(inner)
            if found is not None:
                return found
    return None


def run(
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
    dry_run: DryRun = False,
    send_again: bool = False,
    force_changed_input: bool = False,
) -> Summary:
    """Synchronous ``dispatch()`` for batch jobs and scripts (same arguments)."""
    return anyio.run(lambda: dispatch(
        settings, segment=segment, out_dir=out_dir, run_id=run_id, resume=resume, retry=retry,
        ledger=ledger, handlers=handlers, senders=senders, on_start=on_start, progress=progress,
        dry_run=dry_run, send_again=send_again, force_changed_input=force_changed_input,
    ))  # fmt: skip
