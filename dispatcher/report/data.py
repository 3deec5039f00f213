"""What a run report shows, as typed values: ``ReportData`` and how to fill it.

``report_data(DIR)`` reads a run's output directory: ``run.json`` and ``summary.json``
(either may be missing: a dry run or ``--no-ledger`` run writes no ``run.json``, an
unfinished one no ``summary.json``), ``timeline.json`` if the run recorded one, and
``outcomes.jsonl`` streamed once (10 million lines are fine: see ``OutcomeStats``)
for the counts per status and per treatment and the reasons with sample endpoint ids.
``report_data_from_ledger`` does the same from a SQLite ledger, for a run whose
directory has been reused since.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from dispatcher.errors import ConfigError, DispatchError
from dispatcher.model import FAILURE_STATUSES
from dispatcher.outcomes import OUTCOMES_FILE, SUMMARY_FILE, now_iso
from dispatcher.report.stats import OutcomeStats, Reason
from dispatcher.timeline import TIMELINE_FILE, Timeline

if TYPE_CHECKING:
    from dispatcher.config import Settings

RUN_FILE = "run.json"  # written by dispatch(); the same name as dispatch.RUN_FILE
FAILURES = frozenset(s.value for s in FAILURE_STATUSES)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The run's configuration, as the report's summary shows it (never a secret)."""

    campaign_id: str = ""
    campaign_name: str | None = None
    application_id: str = ""
    segment: str = ""
    config_file: str = ""
    channels: Mapping[str, str] = field(default_factory=dict)
    """ChannelType -> sender name (``outbox``, ``ses``...), for channels with a message."""
    hook: str | None = None
    """``function (MODE)`` and where it runs, or None for no hook."""
    limits: Mapping[str, int] = field(default_factory=dict)
    """CampaignLimits that are set, by their Pinpoint names (MessagesPerSecond...)."""
    dispatch: Mapping[str, str] = field(default_factory=dict)
    """The ``[dispatch]`` knobs: hook concurrency, deadline, attempts, chunk size..."""
    treatments: Mapping[str, str] = field(default_factory=dict)
    """TreatmentId -> TreatmentName, for the per-treatment table."""
    holdout_percent: int = 0

    @property
    def messages_per_second(self) -> int | None:
        return self.limits.get("MessagesPerSecond")


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything ``render_report`` draws; build it with ``report_data`` or by hand."""

    run_id: str
    by_status: Mapping[str, int]
    config: RunConfig = field(default_factory=RunConfig)
    treatments: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """TreatmentId -> status -> records; ``""`` for records without a treatment (not
    dispatched: invalid, filtered before assignment...)."""
    reasons: Sequence[Reason] = ()
    """Why records were not sent: (status, reason) most frequent first, with samples."""
    reasons_complete: bool = True
    """False when too many distinct reasons were seen to count them all (see stats)."""
    started_at: str | None = None
    finished_at: str | None = None
    state: str | None = None
    """FINISHED, INTERRUPTED, RUNNING as the ledger or summary says; None if unknown."""
    attempt: int | None = None
    hook_invocations: int | None = None
    scanned: int | None = None
    """Records read from the source (``summary.json`` ``Scanned``), when known: more than
    ``total`` when a segment definition left some out."""
    dry_run: bool = False
    timeline: Timeline | None = None
    notes: Sequence[str] = ()
    """What the reader should know about the data (a file missing, counts that differ)."""
    generated_at: str = field(default_factory=now_iso)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.by_status.items() if status in FAILURES)

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (the timeline's if there are no timestamps)."""
        start, end = _parse_time(self.started_at), _parse_time(self.finished_at)
        if start is not None and end is not None:
            return max(0.0, (end - start).total_seconds())
        return self.timeline.duration if self.timeline is not None else None


def config_summary(settings: Settings, *, segment: str = "") -> RunConfig:
    """The config summary of ``settings`` (what ``dispatcher run`` has in hand)."""
    campaign, project = settings.campaign, settings.project
    limits: dict[str, int] = {}
    for name, attr in (("MessagesPerSecond", "messages_per_second"), ("Daily", "daily"),
                       ("Total", "total"), ("Session", "session"),
                       ("MaximumDuration", "maximum_duration")):  # fmt: skip
        value = getattr(campaign.limits, attr) or getattr(project.limits, attr)
        if value:
            limits[name] = int(value)
    hook = settings.hook
    hook_text = None
    if hook is not None:
        hook_text = f"{hook.function} ({hook.mode})"
        function = settings.functions.get(hook.function)
        if function is not None and function.python:
            hook_text += f", in process: {function.python}"
        elif function is not None and (function.url or function.endpoint_url):
            hook_text += f", at {_safe_url(function.url or function.endpoint_url or '')}"
    d = settings.dispatch
    treatments = {"0": campaign.treatment_name or "main"}
    for i, extra in enumerate(campaign.additional_treatments, start=1):
        treatments[str(i)] = str(extra.get("TreatmentName") or f"treatment {i}")
    return RunConfig(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        application_id=project.application_id,
        segment=segment or settings.segment_source or "",
        config_file=settings.file,
        channels={
            ch: (settings.channels[ch].sender if ch in settings.channels else "outbox")
            for ch in sorted(campaign.channels)
        },
        hook=hook_text,
        limits=limits,
        dispatch={
            "hook concurrency": d.hook_concurrency_text,
            "hook deadline": f"{d.hook_deadline:g} s",
            "hook attempts": str(d.hook_attempts),
            "chunk size": str(d.chunk_size),
            "send concurrency": str(d.send_concurrency),
            "send attempts": str(d.send_attempts),
        },
        treatments=treatments,
        holdout_percent=campaign.holdout_percent,
    )


def report_data(
    out_dir: Path,
    *,
    run_id: str | None = None,
    settings: Settings | None = None,
    dry_run: bool | None = None,
    state: str | None = None,
    attempt: int | None = None,
) -> ReportData:
    """Build the report of the run in ``out_dir`` from its files.

    ``run_id`` checks the directory holds that run (``ConfigError`` if not).
    ``settings`` gives the config summary; without it, the config file named in
    ``run.json`` is read again (a note says so, and if it cannot be). ``dry_run``,
    ``state`` and ``attempt`` are what the caller knows better than the files.
    """
    run = _read_json(out_dir / RUN_FILE)
    summary = _read_json(out_dir / SUMMARY_FILE)
    found = (run or {}).get("RunId") or (summary or {}).get("RunId")
    if run_id is not None and found is not None and found != run_id:
        raise ConfigError(f"{out_dir} holds run {found}, not {run_id} (use --ledger or the "
                          "run's own --out)", key="--out")  # fmt: skip
    if summary is not None and run is not None and summary.get("RunId") != run.get("RunId"):
        summary = None  # left by an earlier run in the same directory
    outcomes = out_dir / OUTCOMES_FILE
    if run is None and summary is None and not outcomes.is_file():
        raise ConfigError(f"no run in {out_dir}: no {RUN_FILE}, {SUMMARY_FILE} or "
                          f"{OUTCOMES_FILE}", key="--out")  # fmt: skip
    notes: list[str] = []
    stats = OutcomeStats()
    if outcomes.is_file():
        stats.feed_jsonl(outcomes)
    else:
        notes.append(f"{OUTCOMES_FILE} is missing: counts come from {SUMMARY_FILE}")
    by_status = dict(stats.by_status)
    if summary is not None:
        recorded = {str(k): int(v) for k, v in (summary.get("ByStatus") or {}).items()}
        if not outcomes.is_file():
            by_status = recorded
        elif recorded != by_status:
            notes.append(
                f"{SUMMARY_FILE} counts {sum(recorded.values()):,} records, {OUTCOMES_FILE} "
                f"{stats.total:,}: the tables show {OUTCOMES_FILE}"
            )
    config, note = _config(run or {}, settings)
    if note:
        notes.append(note)
    timeline = _timeline(out_dir / TIMELINE_FILE, found, notes)
    if summary is None:
        notes.append(f"no {SUMMARY_FILE}: the run has not finished (running, stopped, or a "
                     "dry run); the counts are what it had settled")  # fmt: skip
    return ReportData(
        run_id=str(found or run_id or "(no run id)"),
        by_status=by_status,
        config=config,
        treatments={t: dict(c) for t, c in stats.by_treatment.items()},
        reasons=stats.reasons(),
        reasons_complete=stats.complete,
        started_at=_text((summary or run or {}).get("StartedAt")),
        finished_at=_text((summary or {}).get("FinishedAt")),
        state=state or ("FINISHED" if summary is not None else None),
        attempt=attempt,
        hook_invocations=(summary or {}).get("HookInvocations"),
        scanned=(summary or {}).get("Scanned"),
        dry_run=bool((summary or {}).get("DryRun")) if dry_run is None else dry_run,
        timeline=timeline,
        notes=notes,
    )


async def report_data_from_ledger(
    ledger_path: Path, run_id: str, *, settings: Settings | None = None
) -> ReportData:
    """Build the report of ``run_id`` from a SQLite ledger (no timeline: only the run's
    own directory has one)."""
    from dispatcher.ledger import SqliteLedger

    ledger = SqliteLedger(ledger_path)
    try:
        info = await ledger.get_run(run_id)
        if info is None:
            raise ConfigError(f"run {run_id} is not in the ledger {ledger_path}", key="RUN_ID")
        stats = OutcomeStats()
        async for batch in ledger.outcomes(run_id):
            for o in batch:
                stats.add(o.status.value, o.treatment_id, o.reason, o.endpoint_id, o.line)
    finally:
        await ledger.aclose()
    run = {"Config": info.config, "Segment": info.segment, "CampaignId": info.campaign_id,
           "ApplicationId": info.application_id}  # fmt: skip
    config, note = _config(run, settings)
    return ReportData(
        run_id=run_id,
        by_status=dict(stats.by_status),
        config=config,
        treatments={t: dict(c) for t, c in stats.by_treatment.items()},
        reasons=stats.reasons(),
        reasons_complete=stats.complete,
        started_at=info.started_at,
        finished_at=info.finished_at,
        state=info.state,
        attempt=info.attempt,
        hook_invocations=info.extra.get("hook_invocations"),
        notes=[n for n in (note, "read from the ledger: no timeline, so no charts") if n],
    )


def _config(run: Mapping[str, Any], settings: Settings | None) -> tuple[RunConfig, str | None]:
    """The config summary: from ``settings``, else the config file the run names."""
    segment = str(run.get("Segment") or "")
    if settings is not None:
        return config_summary(settings, segment=segment), None
    basic = RunConfig(campaign_id=str(run.get("CampaignId") or ""),
                      application_id=str(run.get("ApplicationId") or ""),
                      segment=segment, config_file=str(run.get("Config") or ""))  # fmt: skip
    if not basic.config_file:
        return basic, None
    from dispatcher.config import load_settings

    try:
        loaded = load_settings(basic.config_file)
    except DispatchError as exc:
        return basic, f"the config file could not be read again ({exc}): its summary is partial"
    summary = config_summary(loaded, segment=segment)
    if summary.campaign_id != basic.campaign_id and basic.campaign_id:
        return basic, f"{basic.config_file} now holds another campaign: its summary is partial"
    return summary, f"configuration as {basic.config_file} reads now"


def held_run(out_dir: Path) -> str | None:
    """The id of the run whose files ``out_dir`` holds (None: no run, or a dry run)."""
    for name in (RUN_FILE, SUMMARY_FILE):
        data = _read_json(out_dir / name)
        if data is not None and data.get("RunId"):
            return str(data["RunId"])
    return None


def _timeline(path: Path, run_id: str | None, notes: list[str]) -> Timeline | None:
    if not path.is_file():
        notes.append(f"no {TIMELINE_FILE}: the run recorded no timeline, so there are no charts")
        return None
    try:
        timeline = Timeline.read(path)
    except ConfigError as exc:
        notes.append(f"{exc}: no charts")
        return None
    if run_id is not None and timeline.run_id is not None and timeline.run_id != run_id:
        notes.append(f"{TIMELINE_FILE} is of run {timeline.run_id}: no charts")
        return None
    return timeline


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc}", file=str(path)) from None
    return data if isinstance(data, dict) else None


def _text(value: Any) -> str | None:
    return str(value) if value else None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _safe_url(url: str) -> str:
    """A URL without credentials or query (a token may hide in either)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path
