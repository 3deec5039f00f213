"""``dispatch()``, ``run()`` and ``preview()``: one campaign send, from settings to summary.

A run is new, a resume (``resume=True``: finish a run that stopped, skipping every line
the ledger has settled), or a retry (``retry=[statuses]``: dispatch again only the lines
whose latest outcome has one of those statuses). All three share the ledger, so no
endpoint is sent twice across them (``dispatcher.attempts`` has the rules they check).
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.attempts import (
    Attempt,
    DryRun,
    check_inputs,
    dispatch_error,
    finish_timeline,
    ledger_path,
    mark_interrupted,
    new_run_id,
    open_file,
    open_timeline,
    prior_run,
    record_start,
    refuse_second_run,
    refuse_unscheduled,
    summarize,
)
from dispatcher.aws import AwsClients
from dispatcher.campaign.schedule import (
    Clock,
    SystemClock,
    WavePlan,
    utc_iso,
)
from dispatcher.channels.base import Sender
from dispatcher.channels.preview import PREVIEW_FILE, PreviewSender
from dispatcher.config import Settings
from dispatcher.context import execute, open_context, prepare_out_dir
from dispatcher.errors import RunInterrupted
from dispatcher.fingerprint import campaign_document, segment_fingerprint
from dispatcher.hooks.python import Handler
from dispatcher.ledger import RunInfo, SqliteLedger
from dispatcher.membership import EXTRA as DEFINITION_EXTRA
from dispatcher.membership import RunDefinition, open_segment, run_definition, segment_location
from dispatcher.model import Summary
from dispatcher.occurrences import UNSCHEDULED, Timing, occurrence_to_send
from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog, write_summary
from dispatcher.processes import Partitioned, WorkerSpec, run_partitioned
from dispatcher.progress import Counters, show_progress
from dispatcher.runlock import RunLock
from dispatcher.segments.definition import DefinedSource
from dispatcher.stages import Stages
from dispatcher.waves import check_waves, send_in_waves

logger = logging.getLogger("dispatcher.run")


async def dispatch(
    settings: Settings,
    *,
    segment: str | None = None,
    segment_definition: str | None = None,
    out_dir: str | Path = "out",
    run_id: str | None = None,
    resume: bool = False,
    retry: Iterable[str] | None = None,
    ledger: bool | Path = True,
    handlers: Mapping[str, Handler] | None = None,
    senders: Mapping[str, Sender] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    progress: bool = True,
    dry_run: DryRun = False,
    send_again: bool = False,
    force_changed_input: bool = False,
    stop: anyio.Event | None = None,
    now: bool = False,
    ignore_pause: bool = False,
    clock: Clock | None = None,
    processes: int = 1,
) -> Summary:
    """Run one campaign send and return its summary.

    ``segment`` overrides ``[segment] source``, ``segment_definition`` ``[segment]
    definition`` (``dispatcher.membership``: records outside the segment get no outcome;
    ``Summary.scanned`` counts every record read). ``ledger`` is True for the SQLite ledger
    (``[ledger] path``, default ``out_dir/ledger.sqlite``), a path for another SQLite
    file, or False for none (no resume, retry, caps or send-once check). ``resume``
    finishes run ``run_id``; ``retry`` re-dispatches its records whose latest status is
    in that set. ``handlers`` maps hook function names to Python callables run in
    process; ``senders`` maps ChannelTypes to ready-made senders. ``on_start`` is called
    with the RunId when the run starts, ``on_note`` with each thing worth telling the
    operator once (a provider quota that became a ceiling, say).

    Safety rules: the ledger and ``out_dir`` are locked for the run (``LedgerBusy``); a
    campaign that already has a run in the ledger that is unfinished or sent anything is
    refused (``CampaignAlreadyRun``) unless ``send_again``; resume and retry refuse
    another segment or campaign (``InputChanged``) unless ``force_changed_input``.
    ``dry_run`` does everything but the send (``"no-hook"``: nor the hook), writes
    ``preview.jsonl`` and ``outcomes.jsonl``, and records nothing in the ledger.
    Setting ``stop`` stops reading: in-flight work finishes and ``RunInterrupted`` is
    raised. Configuration problems raise ``ConfigError`` before any endpoint data is
    sent anywhere; a file that cannot be written raises ``StorageError``.

    The campaign's schedule (``dispatcher.campaign.schedule``): a paused campaign is
    refused (``ConfigError``) unless ``ignore_pause``; one whose EndTime is past too. A
    new run sends the latest due occurrence, waiting for the first one when StartTime
    is ahead (``now`` skips that wait, and a local-time campaign's waits between
    waves); a recurring occurrence already sent raises ``OccurrenceSent``. A dry run
    ignores pause, EndTime and waits. ``clock`` tells the time (tests control it).

    ``processes`` > 1 runs the send across that many worker processes sharing the ledger
    (``dispatcher.processes``); it needs the ledger, and hook functions and senders from
    the config (``handlers`` and ``senders`` cannot cross processes). A dry run uses one.
    """
    out = Path(out_dir)
    attempt = Attempt.of(run_id, resume=resume, retry=retry, ledger=ledger is not False,
                         dry_run=bool(dry_run), processes=processes,
                         in_process=bool(handlers or senders))  # fmt: skip
    continuing = attempt.continuing
    clock = clock or SystemClock()
    if not dry_run:
        # EndTime is checked for a new run only: a resumed one ends its records EXPIRED.
        refuse_unscheduled(settings, None if continuing else clock.now(),
                           ignore_pause=ignore_pause)  # fmt: skip
    occurrence = None
    if not continuing:
        occurrence = await occurrence_to_send(settings, clock, now=now or bool(dry_run), stop=stop,
                                       show=progress)  # fmt: skip
    prepare_out_dir(out, settings.file)
    where = ledger_path(settings, out, ledger) if ledger is not False else None
    async with AsyncExitStack() as stack:
        # Lock before anything is written: a refused second process must leave no trace.
        lock = RunLock(out, *([where] if where and not dry_run else []))
        lock.acquire(attempt.run_id)
        stack.callback(lock.release)
        logger.info("run %s: %s, output %s, ledger %s", attempt.run_id,
                 "resume" if resume else "retry" if attempt.retry is not None else "new run", out,
                 where or "none")  # fmt: skip
        book = None
        if where is not None and (not dry_run or where.exists()):
            book = SqliteLedger(where)  # a dry run only reads the send history
            stack.push_async_callback(book.aclose)
        prior = await prior_run(book, attempt, settings, str(where), explicit=bool(run_id))
        timing = Timing(occurrence, now)
        if prior is not None:
            timing = Timing.of(prior.extra, now)
        if book is not None and not continuing and not dry_run and not send_again:
            recurring = settings.schedule.recurring and timing.key is not None
            await refuse_second_run(book, settings, out, str(where),
                                    timing.key if recurring else None)  # fmt: skip
        preview = None
        if dry_run:
            preview_file = open_file(out / PREVIEW_FILE, "wb")
            stack.callback(preview_file.close)
            preview = PreviewSender(preview_file, name=str(out / PREVIEW_FILE))
        return await _dispatch(
            settings, stack, attempt, out=out, book=book, prior=prior, segment=segment,
            segment_definition=segment_definition, handlers=handlers, senders=senders,
            on_start=on_start, progress=progress,
            on_note=on_note, preview=preview, call_hook=dry_run != "no-hook",
            force_changed_input=force_changed_input, stop=stop, timing=timing, clock=clock,
            processes=1 if dry_run else processes, locks=lock.fds,
        )  # fmt: skip


async def preview(
    settings: Settings,
    *,
    limit: int = 5,
    segment: str | None = None,
    segment_definition: str | None = None,
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
            attempt = Attempt(new_run_id(), False, False, None, True)
            try:
                await _dispatch(
                    small, stack, attempt, out=Path(tmp), book=None, prior=None,
                    segment=segment, segment_definition=segment_definition,
                    handlers=handlers, senders=None, on_start=None,
                    progress=False, preview=sender, call_hook=hook, force_changed_input=False,
                    stop=stop,
                )  # fmt: skip
            except RunInterrupted:
                pass  # the limit was reached: what we came for
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


async def _dispatch(
    settings: Settings,
    stack: AsyncExitStack,
    attempt: Attempt,
    *,
    out: Path,
    book: SqliteLedger | None,
    prior: RunInfo | None,
    segment: str | None,
    handlers: Mapping[str, Handler] | None,
    senders: Mapping[str, Sender] | None,
    on_start: Callable[[str], None] | None,
    progress: bool,
    segment_definition: str | None = None,
    on_note: Callable[[str], None] | None = None,
    preview: PreviewSender | None,
    call_hook: bool,
    force_changed_input: bool,
    stop: anyio.Event | None,
    timing: Timing = UNSCHEDULED,
    clock: Clock | None = None,
    processes: int = 1,
    locks: tuple[int, ...] = (),
) -> Summary:
    run_id = attempt.run_id
    source_spec = segment_location(settings, segment, prior)
    schedule = settings.schedule
    local = schedule.local_time and timing.occurrence is not None
    if local:
        check_waves(settings, processes=processes, source=source_spec, flag=segment is not None)
    # Read and checked before any endpoint is: a bad definition leaves nothing half done.
    membership = await run_definition(settings, segment_definition, prior,
                                      force_changed=force_changed_input)  # fmt: skip
    # A resumed run keeps its start: Recency then decides membership as it first did.
    # A new one starts by the run's clock (the system's, or a test's), as its schedule does.
    started_at = prior.started_at if prior else utc_iso((clock or SystemClock()).now())
    d = settings.dispatch
    clients = AwsClients(
        settings.project.region,
        max_pool_connections=max(d.hook_concurrency, d.send_concurrency, 10),
    )
    stack.push_async_callback(clients.aclose)
    source = open_segment(settings, source_spec, flag=segment is not None, clients=clients,
                          membership=membership, started_at=started_at,
                          on_note=on_note or logger.info)  # fmt: skip
    fingerprints: dict[str, Any] = {}
    if not attempt.dry_run:
        fingerprints = {
            "segment": await segment_fingerprint(source_spec, clients),
            "campaign": campaign_document(settings),
        }
        if prior is not None:
            check_inputs(prior, fingerprints["segment"], fingerprints["campaign"],
                          force_changed_input)  # fmt: skip
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
            extra=prior.extra if prior is not None else _new_extra(timing, membership),
            fingerprints=fingerprints,
        )
        outboxes = {id(s): s for _, s in ctx.senders.values()}.values()
        skip, skipped_in_doubt = await record_start(ledger, attempt, run, out, outboxes)
    for note in ctx.notes:
        (on_note or logger.info)(note)
    hook = settings.hook if ctx.transport is not None else None
    logger.info("segment %s; hook %s; senders %s%s", source.name,
             f"{hook.function} ({hook.mode})" if hook else "none",
             ", ".join(f"{ch}: {name}" for ch, (name, _) in sorted(ctx.senders.items())),
             f"; occurrence {timing.key}" if timing.key else "")  # fmt: skip
    if on_start:
        on_start(run_id)
    log = OutcomeLog(out / OUTCOMES_FILE, append=attempt.continuing)
    stack.callback(log.close)
    counters = Counters(position=getattr(source, "progress", None))
    timeline = open_timeline(settings, out, run_id, counters.started, attempt.continuing,
                         attempt.dry_run)  # fmt: skip
    stages: Stages | Partitioned
    try:
        if local:
            assert timing.occurrence is not None
            plan = WavePlan(schedule, timing.occurrence, (clock or SystemClock()).now(),
                            immediate=timing.now)  # fmt: skip
            stages = await send_in_waves(
                ctx, plan, source=source, log=log, ledger=ledger, skip=skip,
                progress=progress, counters=counters, history=book, stop=stop,
                timeline=timeline, clock=clock or SystemClock(),
            )  # fmt: skip
        elif processes > 1 and ledger is not None:
            specs = [WorkerSpec(settings, run_id, started_at, out, ledger.path, k,
                                attempt.resume, attempt.retry, timeline.started,
                                timeline.ceiling) for k in range(processes)]  # fmt: skip
            stages = await run_partitioned(
                specs, source=source, counters=counters, timeline=timeline, stop=stop,
                progress=partial(show_progress, counters) if progress else None, locks=locks,
            )  # fmt: skip
        else:
            stages = await execute(
                ctx, source=source, log=log, ledger=ledger, skip=skip, progress=progress,
                counters=counters, history=book, stop=stop, timeline=timeline, clock=clock,
            )  # fmt: skip
    except BaseException as exc:
        if ledger is not None:
            await mark_interrupted(ledger, run_id)
        finish_timeline(timeline, out)
        error = dispatch_error(exc)
        if error is not None and error is not exc:
            raise error from exc
        raise
    finish_timeline(timeline, out)
    logger.info("dispatched: %s records read in %.1f s", f"{counters.read:,}", counters.elapsed)
    summary = await summarize(
        attempt, prior=prior, started_at=started_at, passes=stages, counters=counters,
        ledger=ledger, log=log, out=out, skipped_in_doubt=skipped_in_doubt,
        occurrence=timing.key,
        # Without a definition every record read is in the segment; with one, the
        # source's own count (of the last pass: a local-time run reads once per wave).
        scanned=source.scanned if isinstance(source, DefinedSource) else counters.read,
    )  # fmt: skip
    if not stages.complete:
        if ledger is not None:
            await mark_interrupted(ledger, run_id)
        raise RunInterrupted(f"run {run_id} was stopped before it finished", run_id=run_id,
                             summary=summary)  # fmt: skip
    if ledger is not None:
        await ledger.finish_run(run_id, finished_at=summary.finished_at, summary=summary.to_json())
    if not attempt.dry_run:
        write_summary(out, summary)
    logger.info("run %s finished: %s", run_id, ", ".join(
        f"{status} {n:,}" for status, n in sorted(summary.by_status.items())) or "no records")
    return summary


def _new_extra(timing: Timing, membership: RunDefinition | None) -> dict[str, Any]:
    """A new run's record extras: its occurrence, and the definition it applies."""
    extra = timing.extra()
    if membership is not None:
        extra[DEFINITION_EXTRA] = membership.record()
    return extra


def run(
    settings: Settings,
    *,
    segment: str | None = None,
    segment_definition: str | None = None,
    out_dir: str | Path = "out",
    run_id: str | None = None,
    resume: bool = False,
    retry: Iterable[str] | None = None,
    ledger: bool | Path = True,
    handlers: Mapping[str, Handler] | None = None,
    senders: Mapping[str, Sender] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    progress: bool = True,
    dry_run: DryRun = False,
    send_again: bool = False,
    force_changed_input: bool = False,
    now: bool = False,
    ignore_pause: bool = False,
    processes: int = 1,
) -> Summary:
    """Synchronous ``dispatch()`` for batch jobs and scripts (same arguments)."""
    return anyio.run(lambda: dispatch(
        settings, segment=segment, segment_definition=segment_definition, out_dir=out_dir,
        run_id=run_id, resume=resume, retry=retry,
        ledger=ledger, handlers=handlers, senders=senders, on_start=on_start, on_note=on_note,
        progress=progress, dry_run=dry_run, send_again=send_again,
        force_changed_input=force_changed_input, now=now, ignore_pause=ignore_pause,
        processes=processes,
    ))  # fmt: skip
