"""What the commands share: exit codes, stderr for people, signals, the closing tally."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import anyio
import orjson

from dispatcher.model import Summary

EXIT_OK, EXIT_ENVIRONMENT, EXIT_USAGE, EXIT_FAILURES = 0, 1, 2, 3
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}

T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with one line, like every other refusal."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class Interrupted(Exception):
    """The command was stopped by a signal; ``code`` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class Output:
    """stderr for people: silenced by ``--quiet`` except for errors."""

    quiet: bool = False

    def __call__(self, text: str, *, error: bool = False) -> None:
        if error or not self.quiet:
            say(text, error=error)


def say(text: str, *, error: bool = False) -> None:
    """One line on stderr (never stdout: that is for machines)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr closed: nothing else to do with it


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                        help="log on stderr from this level (default warning; info: the "
                             "run's phases; debug: also each distinct hook failure's "
                             "traceback, once)")  # fmt: skip


def setup_logging(level: str | None) -> None:
    """Log records of the dispatcher's loggers on stderr, timestamped, from ``level``.

    Only the ``dispatcher`` loggers take ``level``: the libraries' (botocore, aiohttp)
    stay at warning, so ``--log-level debug`` shows the run, not every HTTP header."""
    import logging

    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr,
    )  # fmt: skip
    logging.getLogger("dispatcher").setLevel(getattr(logging, (level or "warning").upper()))


def aws_flags(parser: argparse.ArgumentParser, *, region: str) -> None:
    """``--profile`` and ``--region``, as the AWS CLI has them."""
    parser.add_argument("--profile", help="AWS named profile (~/.aws/config) for credentials")
    parser.add_argument("--region", help=region)


def use_profile(args: argparse.Namespace) -> None:
    """``--profile NAME``: every AWS client of this process and its workers uses it (as
    ``AWS_PROFILE`` would); an unknown profile is a usage error now, not a failed call."""
    profile = getattr(args, "profile", None)
    if not profile:
        return
    from botocore.exceptions import ProfileNotFound
    from botocore.session import Session

    try:
        Session(profile=profile).get_scoped_config()
    except ProfileNotFound:
        from dispatcher.errors import ConfigError

        raise ConfigError(f"profile {profile!r} is not in the AWS config or credentials files",
                          key="--profile") from None  # fmt: skip
    os.environ["AWS_PROFILE"] = profile


def region_of(args: argparse.Namespace) -> str:
    """``--region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the profile's
    region, as the AWS CLI reads them."""
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region and getattr(args, "profile", None):
        from botocore.session import Session

        region = Session(profile=args.profile).get_config_variable("region")
    if not region:
        from dispatcher.errors import ConfigError

        raise ConfigError("set --region or AWS_REGION", key="--region")
    return str(region)


def max_failures(text: str) -> tuple[int, float | None]:
    """``--max-failures N`` (records) or ``N%`` (of the run's records)."""
    value = text.strip()
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return 0, percent
        count = int(value)
        if count < 0:
            raise ValueError
        return count, None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of records (e.g. 10) or a percentage (e.g. 2%), got {text!r}"
        ) from None


def tally(summary: Summary, verb: str = "finished") -> str:
    """The closing one-line tally: counts by status, rate, the top failure reasons."""
    counts = ", ".join(f"{status} {n:,}" for status, n in sorted(
        summary.by_status.items(), key=lambda kv: (-kv[1], kv[0])))  # fmt: skip
    rate = summary.read / summary.elapsed if summary.elapsed > 0 else 0.0
    # With a segment definition, the records scanned outside the segment say why Total
    # is smaller than the export (a stopped run's counts are partial: not compared).
    scanned = (f" of {summary.scanned:,} scanned"
               if summary.scanned > summary.total and verb != "stopped" else "")  # fmt: skip
    line = (f"dispatcher: run {summary.run_id} {verb}: {summary.total:,} records{scanned} "
            f"({counts or 'none'}); {rate:,.0f} endpoints/s")  # fmt: skip
    if summary.top_failures:
        top = "; ".join(f"{n:,} x {status} {_clip(reason)}"
                        for status, reason, n in summary.top_failures[:3])  # fmt: skip
        line += f"; top failures: {top}"
    return line


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(slots=True)
class Supervisor:
    """Runs a command's work under SIGINT/SIGTERM handling.

    The first signal sets ``stop``: reading stops, what is in flight finishes (at most
    ``grace`` seconds), the run records itself INTERRUPTED. A second signal cancels the
    work at once (still cleanly: claims and outcomes stay consistent). A third exits the
    process immediately.
    """

    out: Output
    grace: float = 20.0
    received: list[int] = field(default_factory=list)

    def run(self, work: Callable[[anyio.Event], Awaitable[T]]) -> T:
        """Run ``work(stop)``; raise ``Interrupted`` if a signal cut it short."""
        outcome: list[Any] = []

        async def main() -> None:
            stop = anyio.Event()
            work_scope = anyio.CancelScope()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, stop, work_scope, tg)
                with work_scope:
                    try:
                        outcome.append(await work(stop))
                    except Exception as exc:  # re-raised below, outside the task group
                        outcome.append(exc)
                tg.cancel_scope.cancel()

        anyio.run(main)
        if outcome and isinstance(outcome[0], BaseException):
            raise outcome[0]
        if not outcome:  # cancelled by a second signal
            raise Interrupted(EXIT_SIGNAL.get(signal.Signals(self.received[0]), 130))
        return outcome[0]  # type: ignore[no-any-return]

    async def _watch(
        self, stop: anyio.Event, work_scope: anyio.CancelScope, tg: Any
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.received.append(signum)
                if len(self.received) == 1:
                    stop.set()
                    self.out("dispatcher: stopping: finishing what is in flight "
                             "(press Ctrl-C again to stop now)")  # fmt: skip
                    tg.start_soon(self._cancel_later, work_scope)
                elif len(self.received) == 2:
                    work_scope.cancel()
                else:
                    say("dispatcher: stopped", error=True)
                    os._exit(EXIT_SIGNAL.get(signal.Signals(self.received[0]), 130))

    async def _cancel_later(self, scope: anyio.CancelScope) -> None:
        await anyio.sleep(self.grace)
        scope.cancel()

    @property
    def code(self) -> int | None:
        """The exit code the signals received call for (None: no signal)."""
        if not self.received:
            return None
        return EXIT_SIGNAL.get(signal.Signals(self.received[0]), 130)
