"""The ``dispatcher`` command: a thin shell over the library.

stdout is for machines (the summary JSON, preview lines), stderr for people (progress,
hints, the closing tally, errors). Exit codes:

    0    the run completed and no record ended in a failure status
    3    the run completed, but more records than ``--max-failures`` (default 0) ended
         HOOK_FAILURE, TEMPORARY_FAILURE, PERMANENT_FAILURE or THROTTLED
    2    a bad config or usage, or a run refused (already run, in use, changed input)
    1    an environment failure (disk full, unreadable ledger, permissions): one line
         naming the file; nothing is lost, resume after fixing the cause
    130  interrupted (SIGINT), 143 terminated (SIGTERM): resumable, with a hint
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from dispatcher.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    Interrupted,
    Parser,
    say,
    setup_logging,
)
from dispatcher.errors import ConfigError, DispatchError, RunRefused, StorageError


def _version() -> str:
    from importlib import metadata  # ~0.1 s: only for --version

    try:
        return metadata.version("segment-dispatcher")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """argparse's ``version`` action, with the version looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, help="show program's version number and exit")  # fmt: skip

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        sys.stdout.write(f"dispatcher {_version()}\n")  # stdout, as argparse's own
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from dispatcher.cli import fleet, ledger, report, runs, schedule, status

    parser = Parser(prog="dispatcher", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    runs.register(sub)
    status.register(sub)
    schedule.register(sub)
    report.register(sub)
    fleet.register(sub)
    ledger.register(sub)
    try:
        from dispatcher.lambda_host.command import register
    except ImportError:  # pragma: no cover - the local host is optional while building
        pass
    else:
        register(sub)
    return parser


def _split_dry_run(argv: list[str]) -> list[str]:
    """``--dry-run=no-hook`` as two flags: argparse cannot give a flag an optional value
    without swallowing the CONFIG that may follow it."""
    out = []
    for arg in argv:
        if arg.startswith("--dry-run="):
            out += ["--dry-run", f"--dry-run-mode={arg.partition('=')[2]}"]
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (never raises for a user or environment error)."""
    parser = build_parser()
    args = parser.parse_args(_split_dry_run(list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "log_level", None):
        setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except Interrupted as stop:
        return stop.code
    except (ConfigError, RunRefused) as exc:
        say(f"dispatcher: {exc}", error=True)
        return EXIT_USAGE
    except StorageError as exc:
        say(f"dispatcher: {exc}", error=True)
        return EXIT_ENVIRONMENT
    except DispatchError as exc:
        say(f"dispatcher: {exc}", error=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("dispatcher: interrupted", error=True)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped to `head`): not an error of the run.
        sys.stdout = open(os.devnull, "w")
        return 0


def entry() -> None:
    """The console script: ``main()``, then exit at once.

    ``os._exit`` rather than ``sys.exit``: a sync hook that never returns keeps a worker
    thread busy, and the interpreter would wait for it forever at shutdown. Everything
    the run writes is flushed and closed before ``main()`` returns.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
