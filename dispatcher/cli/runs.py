"""``dispatcher run``, ``retry`` and ``preview``: one machine's campaign sends."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_FAILURES,
    EXIT_OK,
    Interrupted,
    Output,
    Supervisor,
    aws_flags,
    log_level_flag,
    max_failures,
    print_json,
    say,
    tally,
    use_profile,
)
from dispatcher.cli.status import run_info
from dispatcher.config import Settings, load_settings
from dispatcher.errors import (
    ConfigError,
    OccurrenceSent,
    RunInterrupted,
    StorageError,
    WorkerLost,
)
from dispatcher.model import Status, Summary

RETRYABLE = ("THROTTLED", "TEMPORARY_FAILURE", "HOOK_FAILURE")


def _settings(config: str, args: argparse.Namespace) -> Settings:
    use_profile(args)
    settings = load_settings(
        config,
        campaign_json=getattr(args, "campaign_json", None),
        settings_json=getattr(args, "settings_json", None),
        template_json=getattr(args, "template_json", None) or (),
    )
    if getattr(args, "segment_format", None):
        settings = replace(settings, segment_format=args.segment_format)
    if getattr(args, "region", None):
        settings = replace(settings, project=replace(settings.project, region=args.region))
    if getattr(args, "strict_variables", False):
        settings = replace(settings, campaign=replace(settings.campaign, strict_variables=True))
    if not getattr(args, "quiet", False):
        for note in settings.notes:
            say(f"dispatcher: {note}")
    return settings


def _processes(text: str) -> int:
    from dispatcher.processes import processes_arg

    try:
        return processes_arg(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _ledger_arg(args: argparse.Namespace) -> bool | Path:
    if getattr(args, "no_ledger", False):
        return False
    return Path(args.ledger) if args.ledger else True


def _continue_command(args: argparse.Namespace, run_id: str) -> str:
    """The command that picks an interrupted or failed attempt up where it stopped."""
    if args.command == "retry":
        words = ["dispatcher", "retry", run_id, "--out", args.out]
    else:
        words = ["dispatcher", "run", args.config, "--resume", run_id, "--out", args.out]
        for flag in ("segment", "segment_format", "segment_definition", "campaign_json",
                     "settings_json"):
            value = getattr(args, flag, None)
            if value:
                words += [f"--{flag.replace('_', '-')}", value]
        for value in getattr(args, "template_json", None) or ():
            words += ["--template-json", value]
        if getattr(args, "strict_variables", False):
            words.append("--strict-variables")
    if getattr(args, "ignore_pause", False):
        words.append("--ignore-pause")
    if getattr(args, "processes", 1) > 1:
        words += ["--processes", str(args.processes)]
    if args.ledger:
        words += ["--ledger", args.ledger]
    return shlex.join(words)


def _execute(
    args: argparse.Namespace, settings: Settings, out: Output, **kwargs: Any
) -> int:
    """Run ``dispatch()`` under signal handling; map its ending to the exit code."""
    from dispatcher.dispatch import dispatch

    started: list[str] = []

    def on_start(run_id: str) -> None:
        started.append(run_id)
        out(f"RunId {run_id}")

    supervisor = Supervisor(out, grace=settings.dispatch.hook_deadline + 5)

    async def work(stop: anyio.Event) -> Summary:
        return await dispatch(settings, out_dir=args.out, ledger=_ledger_arg(args),
                              on_start=on_start, progress=not args.quiet, stop=stop,
                              on_note=lambda text: out(f"dispatcher: {text}"),
                              **kwargs)  # fmt: skip

    def hint(run_id: str) -> str:
        return f"resume with: {_continue_command(args, run_id)}"

    try:
        summary = supervisor.run(work)
    except OccurrenceSent as exc:
        print_json({"RunId": exc.run_id, "Occurrence": exc.occurrence, "AlreadySent": True,
                    "NextOccurrence": exc.next_occurrence})  # fmt: skip
        out(f"dispatcher: {exc}")
        return EXIT_OK
    except WorkerLost as exc:
        then = f"; {hint(exc.run_id or started[0])}" if exc.run_id or started else ""
        out(f"dispatcher: {exc}{then}", error=True)
        return EXIT_ENVIRONMENT
    except RunInterrupted as exc:
        if isinstance(exc.summary, Summary):
            out(tally(exc.summary, "stopped"))
        out(f"dispatcher: {hint(exc.run_id) if exc.run_id else exc}", error=True)
        raise Interrupted(supervisor.code or 130) from None
    except Interrupted:
        if started:
            out(f"dispatcher: {hint(started[0])}", error=True)
        raise
    except StorageError as exc:
        then = f"; fix the cause, then {hint(started[0])}" if started else ""
        out(f"dispatcher: {exc}{then}", error=True)
        return EXIT_ENVIRONMENT
    print_json(summary.to_json())
    if not getattr(args, "no_report", False):
        _write_report(args, settings, summary, out)
    if summary.skipped_in_doubt:
        out(f"dispatcher: skipped {summary.skipped_in_doubt:,} records whose send is in doubt "
            "(an earlier attempt may have sent them; they are never sent again)")
    for line in summary.empty_variables:
        out(f"dispatcher: {line}")
    out(tally(summary, "dry run finished" if summary.dry_run else "finished"))
    count, percent = args.max_failures
    return EXIT_FAILURES if summary.failed_beyond(count, percent=percent) else EXIT_OK


def _write_report(args: argparse.Namespace, settings: Settings, summary: Summary,
                  out: Output) -> None:  # fmt: skip
    """``DIR/report.html`` at the end of a run; a run never fails because of its report."""
    from dispatcher.errors import DispatchError
    from dispatcher.report import report_data, write_report

    try:
        data = report_data(Path(args.out), run_id=summary.run_id, settings=settings,
                           dry_run=summary.dry_run, state="FINISHED")  # fmt: skip
        path = write_report(Path(args.out), data)
    except (DispatchError, OSError) as exc:
        out(f"dispatcher: no report: {exc}")
        return
    out(f"dispatcher: report {path}")


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args.config, args)
    dry_run: bool | str = False
    if args.dry_run:
        dry_run = True if args.dry_run_mode in (None, "hook") else "no-hook"
    elif args.dry_run_mode is not None:
        raise ConfigError("--dry-run-mode needs --dry-run", key="--dry-run")
    return _execute(
        args, settings, Output(args.quiet),
        segment=args.segment, segment_definition=args.segment_definition,
        run_id=args.resume, resume=bool(args.resume),
        dry_run=dry_run, send_again=args.send_again,
        force_changed_input=args.force_changed_input, now=args.now,
        ignore_pause=args.ignore_pause, processes=args.processes,
    )  # fmt: skip


def _retry(args: argparse.Namespace) -> int:
    statuses = [s.strip().upper() for s in args.status.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in Status.__members__]
    if unknown or not statuses:
        raise ConfigError(f"unknown status {', '.join(unknown) or '(none)'}", key="--status")
    info, _, _, _ = anyio.run(run_info, args)
    config = args.config or info.config
    settings = _settings(config, args)
    return _execute(
        args, settings, Output(args.quiet), segment=args.segment,
        segment_definition=args.segment_definition, run_id=args.run_id,
        retry=statuses, force_changed_input=args.force_changed_input,
        ignore_pause=args.ignore_pause, processes=args.processes,
    )  # fmt: skip


def _preview(args: argparse.Namespace) -> int:
    from dispatcher.dispatch import preview

    if args.n < 1:
        raise ConfigError(f"must be at least 1, got {args.n}", key="-n")
    settings = _settings(args.config, args)
    lines = anyio.run(lambda: preview(settings, limit=args.n, segment=args.segment,
                                      segment_definition=args.segment_definition,
                                      hook=not args.no_hook))  # fmt: skip
    for line in lines:
        print(orjson.dumps(line).decode())
    return EXIT_OK


def _common_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="PATH",
                        help="ledger file (default: OUT/ledger.sqlite); share one to share caps")
    parser.add_argument("--quiet", action="store_true",
                        help="nothing on stderr but errors (no progress, no tally)")
    parser.add_argument("--max-failures", type=max_failures, default=(0, None),
                        metavar="N|N%",
                        help="exit 0, not 3, when at most this many records (or this "
                             "percentage) end in a failure status (default 0)")
    parser.add_argument("--force-changed-input", action="store_true",
                        help="continue a run although its segment or campaign changed")
    parser.add_argument("--no-report", action="store_true",
                        help="do not write OUT/report.html at the end")
    parser.add_argument("--ignore-pause", action="store_true",
                        help="run the campaign although its IsPaused is true")
    aws_flags(parser, region="AWS region for the hook and channels (overrides [project] Region)")
    log_level_flag(parser)
    parser.add_argument("--processes", type=_processes, default=1, metavar="N|auto",
                        help="send across N processes on this machine, sharing the ledger "
                             "(auto: one per core; default 1)")


def _campaign_json_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign-json", metavar="FILE",
                        help="campaign from `aws pinpoint get-campaign` output")
    parser.add_argument("--settings-json", metavar="FILE",
                        help="project settings from `aws pinpoint get-application-settings`")
    parser.add_argument("--template-json", metavar="FILE", action="append",
                        help="a message template from `aws pinpoint get-*-template` output "
                             "(repeatable; see also [templates] dir)")
    parser.add_argument("--strict-variables", action="store_true",
                        help="a message variable that renders empty fails its endpoint")


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run a campaign send over a segment")
    run.add_argument("config", help="campaign config (TOML)")
    run.add_argument("--segment", help="segment source (overrides [segment] source)")
    run.add_argument("--segment-format", choices=("jsonl", "csv"),
                     help="segment format (default: from the file extension)")
    run.add_argument("--segment-definition", metavar="FILE",
                     help="`aws pinpoint get-segment` output: send only the source's endpoints "
                          "in that segment (overrides [segment] definition)")
    run.add_argument("--out", default="out", help="output directory (default: out)")
    run.add_argument("--resume", metavar="RUN_ID", help="finish a run that stopped")
    _campaign_json_flags(run)
    run.add_argument("--no-ledger", action="store_true",
                     help="no ledger: no resume, retry, caps or send-once check (benchmarks)")
    run.add_argument("--send-again", action="store_true",
                     help="start a new run of a campaign that the ledger says was already sent")
    run.add_argument("--dry-run", action="store_true",
                     help="everything but the send (--dry-run=no-hook: nor the hook); writes "
                          "OUT/preview.jsonl and OUT/outcomes.jsonl, records nothing")
    run.add_argument("--dry-run-mode", choices=("hook", "no-hook"), help=argparse.SUPPRESS)
    run.add_argument("--now", action="store_true",
                     help="do not wait for the schedule's StartTime (nor, for a local-time "
                          "campaign, for each time zone's send time): send at once")
    _common_run_flags(run)
    run.set_defaults(func=_run)

    retry = sub.add_parser("retry", help="dispatch again the endpoints of a run that failed")
    retry.add_argument("run_id", metavar="RUN_ID")
    retry.add_argument("--status", default=",".join(RETRYABLE),
                       help=f"statuses to retry (default: {','.join(RETRYABLE)})")
    retry.add_argument("--config", help="config file (default: the one the run used)")
    retry.add_argument("--segment", help="segment source (default: the one the run used)")
    retry.add_argument("--segment-definition", metavar="FILE",
                       help="segment definition (default: the one the run used)")
    retry.add_argument("--out", default="out", help="the run's output directory")
    retry.add_argument("--template-json", metavar="FILE", action="append",
                       help="a message template file, as the run was given")
    _common_run_flags(retry)
    retry.set_defaults(func=_retry)

    preview = sub.add_parser("preview", help="print the first rendered messages; send nothing")
    preview.add_argument("config", help="campaign config (TOML)")
    preview.add_argument("-n", type=int, default=5, help="how many messages (default 5)")
    preview.add_argument("--segment", help="segment source (overrides [segment] source)")
    preview.add_argument("--segment-format", choices=("jsonl", "csv"))
    preview.add_argument("--segment-definition", metavar="FILE",
                         help="`aws pinpoint get-segment` output (overrides [segment] definition)")
    preview.add_argument("--no-hook", action="store_true", help="do not call the hook")
    _campaign_json_flags(preview)
    preview.set_defaults(func=_preview)
