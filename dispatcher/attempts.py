"""The attempts of a run: a new run, a resume, a retry; what each must check before it
sends anything, and what it leaves behind when it stops.

- A campaign is sent once per ledger (``refuse_second_run``), unless sent again on purpose.
- Resume and retry continue the run they name, with its inputs (``check_inputs``).
- A run that stops (a signal, a full disk) is recorded INTERRUPTED (``mark_interrupted``).
"""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import orjson

from dispatcher.campaign.schedule import parse_instant, utc_iso
from dispatcher.channels.base import Sender
from dispatcher.channels.outbox import OutboxSender
from dispatcher.config import Settings
from dispatcher.errors import (
    CampaignAlreadyRun,
    ConfigError,
    DispatchError,
    InputChanged,
    OccurrenceSent,
    StorageError,
)
from dispatcher.fingerprint import compare
from dispatcher.ledger import LEDGER_FILE, Ledger, RunInfo, SqliteLedger
from dispatcher.model import FAILURE_STATUSES, Outcome, Status, Summary
from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog, now_iso
from dispatcher.progress import Counters
from dispatcher.render import EmptyVariables
from dispatcher.timeline import TIMELINE_FILE, Timeline

RUN_FILE = "run.json"


def new_run_id() -> str:
    """A run id: 32 hex characters, like Pinpoint's own ids (also the ActivityId)."""
    return uuid.uuid4().hex


async def reconcile_outbox(
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


async def rewrite_outcomes(ledger: Ledger, run_id: str, out: Path) -> None:
    """Rewrite ``outcomes.jsonl`` from the ledger: one line per record, latest status."""
    tmp = out / (OUTCOMES_FILE + ".tmp")
    log = OutcomeLog(tmp)
    try:
        async for batch in ledger.outcomes(run_id):
            log.write(batch)
    finally:
        log.close()
    os.replace(tmp, out / OUTCOMES_FILE)


def open_timeline(settings: Settings, out: Path, run_id: str, started: float,
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


def finish_timeline(timeline: Timeline, out: Path) -> None:
    timeline.finish()
    try:
        timeline.write(out / TIMELINE_FILE)
    except StorageError:
        pass  # the report's data: never worth failing the run for


def ledger_path(settings: Settings, out: Path, ledger: bool | Path) -> Path:
    if not isinstance(ledger, bool):
        return Path(ledger)
    configured = settings.ledger.get("path")
    return Path(configured) if configured else out / LEDGER_FILE


DryRun = bool | Literal["no-hook"]
"""``dry_run``: False (send), True (everything but the send), or "no-hook" (nor the hook)."""


@dataclass(slots=True)
class Attempt:
    """What kind of attempt a ``dispatch()`` call is, from its arguments."""

    run_id: str
    continuing: bool
    resume: bool
    retry: list[str] | None
    dry_run: bool

    @classmethod
    def of(
        cls, run_id: str | None, *, resume: bool, retry: Iterable[str] | None, ledger: bool,
        dry_run: bool, processes: int, in_process: bool,
    ) -> Attempt:  # fmt: skip
        """The attempt ``dispatch()``'s arguments ask for; ``ConfigError`` for a
        combination that cannot be run (before anything is read or written)."""
        if processes > 1 and not dry_run:
            if not ledger:
                raise ConfigError("--processes needs the ledger: the processes share it",
                                  key="--processes")  # fmt: skip
            if in_process:
                raise ConfigError("--processes runs hooks and senders from the config in each "
                                  "process; in-process handlers and senders cannot be shared",
                                  key="--processes")  # fmt: skip
        statuses = sorted(set(retry)) if retry is not None else None
        continuing = resume or statuses is not None
        if continuing and not run_id:
            raise ConfigError("resume and retry need the RunId", key="RUN_ID")
        if continuing and not ledger:
            raise ConfigError("resume and retry need the ledger", key="--no-ledger")
        if continuing and dry_run:
            raise ConfigError("a dry run cannot resume or retry a run", key="--dry-run")
        return cls(run_id or new_run_id(), continuing, resume, statuses, dry_run)

    def commands(self, settings: Settings, out: Path) -> str:
        """The commands that continue this run, for refusal messages and hints."""
        config = _shell(settings.file)
        return (f"`dispatcher run {config} --resume {self.run_id} --out {_shell(str(out))}` or "
                f"`dispatcher retry {self.run_id} --out {_shell(str(out))}`")  # fmt: skip


def _shell(text: str) -> str:
    return shlex.quote(text)


async def refuse_second_run(
    book: SqliteLedger, settings: Settings, out: Path, where: str,
    occurrence: str | None = None,
) -> None:  # fmt: skip
    """A campaign is sent once per ledger: refuse when an earlier run is unfinished or
    sent anything (``send_again`` skips this check). A recurring campaign is sent once per
    ``occurrence``: a finished run of it raises ``OccurrenceSent`` (nothing to do)."""
    project, campaign = settings.project, settings.campaign
    for earlier in await book.runs_of(project.application_id, campaign.id):
        if occurrence is not None and earlier.extra.get("Occurrence") != occurrence:
            continue
        sent = await book.claimed(earlier.run_id)
        # We hold the ledger's lock, so a run still marked RUNNING has no live process.
        state = "INTERRUPTED" if earlier.state == "RUNNING" else earlier.state
        if state == "FINISHED" and not sent:
            continue
        if occurrence is not None and state == "FINISHED":
            following = settings.schedule.after(parse_instant(occurrence))
            then = utc_iso(following) if following else None
            raise OccurrenceSent(
                f"occurrence {occurrence} of campaign {campaign.id!r} was already sent by run "
                f"{earlier.run_id} ({sent:,} sent); nothing to send until the next one, "
                + (then or "none (the schedule ends first)"),
                run_id=earlier.run_id, occurrence=occurrence, next_occurrence=then,
            )  # fmt: skip
        attempt = Attempt(earlier.run_id, True, True, None, False)
        raise CampaignAlreadyRun(
            f"campaign {campaign.id!r} of application {project.application_id!r} already has "
            f"run {earlier.run_id} in the ledger {where} ({state}, {sent:,} sent); continue "
            f"it with {attempt.commands(settings, out)}, or pass --send-again to send the "
            "campaign again",
            run_id=earlier.run_id,
            state=state,
            sent=sent,
        )


async def record_start(
    ledger: SqliteLedger, attempt: Attempt, run: RunInfo, out: Path, senders: Iterable[Sender]
) -> tuple[Callable[[int], bool] | None, int]:
    """Record the attempt before its first record is read (``run.json``, the ledger's
    run), settle a continuing run's outbox, and return ``lines_to_skip``."""
    write_run_file(out, run)
    await ledger.start_run(run)
    if attempt.continuing:
        await reconcile_outbox(ledger, run.run_id, run.campaign_id, senders)
    return await lines_to_skip(ledger, attempt)


async def lines_to_skip(
    ledger: SqliteLedger, attempt: Attempt
) -> tuple[Callable[[int], bool] | None, int]:
    """The lines an attempt reads but does not dispatch, and how many of those a retry
    passes over because their send is in doubt. A resume skips every settled line; a
    retry every line not in its statuses, and every send in doubt (never repeated: not
    even the hook is called for it)."""
    if attempt.resume:
        return (await ledger.lines_with_status(attempt.run_id)).__contains__, 0
    if attempt.retry is None:
        return None, 0
    chosen = await ledger.lines_with_status(attempt.run_id, attempt.retry)
    doubt = await ledger.in_doubt_lines(attempt.run_id)
    skipped = sum(1 for line in doubt.lines() if line in chosen)
    return (lambda line: line not in chosen or line in doubt), skipped


def refuse_unscheduled(settings: Settings, moment: datetime | None, *,
                       ignore_pause: bool) -> None:  # fmt: skip
    """A paused campaign (unless ``ignore_pause``) and one whose EndTime is past at
    ``moment`` (None: not checked) are not run: ``ConfigError`` naming the key (exit 2)."""
    campaign, schedule = settings.campaign, settings.schedule
    if campaign.is_paused and not ignore_pause:
        raise ConfigError(
            f"campaign {campaign.id} is paused (IsPaused: true); set IsPaused to false, or "
            "pass --ignore-pause to run it anyway",
            file=settings.file, key="campaign.IsPaused",
        )  # fmt: skip
    if moment is not None and schedule.end is not None and schedule.ended(moment):
        raise ConfigError(
            f"campaign {campaign.id} ended at {utc_iso(schedule.end)} (Schedule.EndTime is "
            "past): nothing to send",
            file=settings.file, key="campaign.Schedule.EndTime",
        )  # fmt: skip


def check_inputs(
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


async def prior_run(
    book: SqliteLedger | None, attempt: Attempt, settings: Settings, where: str, *,
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


def carried(prior: RunInfo | None, key: str) -> int:
    """A counter carried over from the run's earlier attempts (e.g. hook invocations)."""
    return int(prior.extra.get(key, 0)) if prior is not None else 0


def open_file(path: Path, mode: str) -> Any:
    try:
        return path.open(mode)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}", path=str(path)) from None


def write_run_file(out: Path, run: RunInfo) -> None:
    data = {"RunId": run.run_id, "Config": run.config, "Segment": run.segment,
            "CampaignId": run.campaign_id, "ApplicationId": run.application_id,
            "StartedAt": run.started_at}  # fmt: skip
    if run.extra.get("Occurrence"):
        data["Occurrence"] = run.extra["Occurrence"]
    definition = run.extra.get("Definition")
    if isinstance(definition, dict) and definition.get("Where"):
        data["SegmentDefinition"] = definition["Where"]
    try:
        (out / RUN_FILE).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise StorageError(f"cannot write {out / RUN_FILE}: {exc.strerror}",
                           path=str(out / RUN_FILE)) from None  # fmt: skip


async def mark_interrupted(ledger: SqliteLedger, run_id: str) -> None:
    """Best effort, shielded: the run stopped; ``status`` would say so anyway (the lock)."""
    with anyio.CancelScope(shield=True):
        try:
            await ledger.set_state(run_id, "INTERRUPTED")
        except DispatchError:
            pass  # the ledger itself may be what failed (disk full); status repairs it


def dispatch_error(exc: BaseException) -> DispatchError | None:
    """The first DispatchError inside (nested) exception groups: what the user must see."""
    if isinstance(exc, DispatchError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = dispatch_error(inner)
            if found is not None:
                return found
    return None


class Passes(Protocol):
    """What the stages of a run's passes add up to (``Stages``, waves, processes)."""

    @property
    def ignored_hook_ids(self) -> int: ...
    @property
    def empty_variables(self) -> EmptyVariables | None: ...


async def summarize(
    attempt: Attempt, *, prior: RunInfo | None, started_at: str, passes: Passes,
    counters: Counters, ledger: SqliteLedger | None, log: OutcomeLog, out: Path,
    skipped_in_doubt: int, occurrence: str | None, scanned: int,
) -> Summary:  # fmt: skip
    """The attempt's summary: counts and top failures from the ledger (the whole run's,
    across attempts; ``outcomes.jsonl`` is rewritten from it first when continuing), or
    from this attempt's outcome log without one."""
    summary = Summary(
        run_id=attempt.run_id,
        hook_invocations=counters.hook_invocations + int(carried(prior, "hook_invocations")),
        started_at=started_at,
        ignored_hook_ids=passes.ignored_hook_ids,
        dry_run=attempt.dry_run,
        skipped_in_doubt=skipped_in_doubt,
        occurrence=occurrence,
        scanned=scanned,
    )
    summary.empty_variables = passes.empty_variables.report() if passes.empty_variables else []
    if ledger is not None:
        if attempt.continuing:
            log.close()
            await rewrite_outcomes(ledger, attempt.run_id, out)
        summary.by_status = await ledger.counts(attempt.run_id)
        summary.top_failures = await ledger.reasons(attempt.run_id, sorted(FAILURE_STATUSES))
    else:
        summary.by_status = dict(log.counts)
        summary.top_failures = [(st, reason, n) for (st, reason), n
                                in log.failure_reasons.most_common(3)]  # fmt: skip
    summary.total = sum(summary.by_status.values())
    summary.finished_at = now_iso()
    summary.elapsed = counters.elapsed
    summary.read = counters.read
    return summary
