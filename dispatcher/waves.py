"""Local-time sends (``Schedule.IsLocalTime``): one planning pass, then a pass per wave.

    plan pass ──▶ every record settled (INVALID, OPT_OUT, ..., NO_TIMEZONE) or placed
                  in the wave of its local start time (WavePlan: 2 bytes per line)
    wave k    ──▶ sleep until its time, then the whole pipeline again over the segment,
                  dispatching only wave k's lines (quiet time and caps checked now)

Each pass reads the whole segment and replays eligibility in segment order, so
duplicate addresses are decided exactly as in a one-pass run; the ledger settles each
line once, so a run killed while it waits resumes with the waves still to come, and
nothing is sent twice. The segment is read once per wave (at most one per UTC offset in
use, ~40): memory stays flat where holding the endpoints for a day would not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import anyio

from dispatcher.campaign.schedule import Clock, WavePlan, sleep_until, utc_iso
from dispatcher.config import Settings
from dispatcher.context import RunContext, execute
from dispatcher.errors import ConfigError
from dispatcher.ledger import Ledger
from dispatcher.outcomes import OutcomeLog
from dispatcher.progress import Counters, Notice, span
from dispatcher.segments import SegmentSource
from dispatcher.stages import Stages
from dispatcher.timeline import Timeline

__all__ = ["send_in_waves"]

logger = logging.getLogger("dispatcher.run")


def check_waves(settings: Settings, *, processes: int, source: str, flag: bool) -> None:
    """``ConfigError`` for what a local-time send cannot do: more than one process, or a
    source it cannot read once per wave (``flag``: the source came from --segment)."""
    if processes > 1:
        raise ConfigError("a local-time campaign is sent in waves by one process; run it "
                          "without --processes", file=settings.file, key="--processes")
    if source == "-":
        raise ConfigError("a local-time campaign reads its segment once per wave: give a "
                          "file or an S3 location, not standard input", file=settings.file,
                          key="--segment" if flag else "segment.source")  # fmt: skip


async def send_in_waves(
    ctx: RunContext,
    plan: WavePlan,
    *,
    source: SegmentSource,
    log: OutcomeLog,
    ledger: Ledger | None,
    skip: Callable[[int], bool] | None,
    progress: bool,
    counters: Counters,
    history: Ledger | None,
    stop: anyio.Event | None,
    timeline: Timeline | None,
    clock: Clock,
) -> Stages:
    """Plan the waves, then send each at its time; the planning pass's ``Stages``, with
    what the wave passes add (``complete`` False if a stop came first)."""
    end = ctx.settings.schedule.end
    run_pass = partial(execute, ctx, source=source, log=log, ledger=ledger, progress=progress,
                       counters=counters, history=history, stop=stop, timeline=timeline,
                       clock=clock)  # fmt: skip
    planned = await run_pass(skip=skip, plan=plan)
    read = counters.read
    waves = plan.waves()
    notice = Notice() if progress else None
    if notice is not None and waves:
        total = sum(w.count for _, w in waves)
        first, last = utc_iso(waves[0][1].due), utc_iso(waves[-1][1].due)
        when = f"in {len(waves)} waves, {first} to {last}" if len(waves) > 1 else (
            "now" if plan.immediate else f"in one wave at {first}")  # fmt: skip
        notice.show(f"dispatcher: local time: {total:,} endpoints {when}")
        notice.done()
    logger.info("local time: %d wave(s) planned: %s", len(waves),
             "; ".join(f"{utc_iso(w.due)} {w.count:,}" for _, w in waves))  # fmt: skip
    for number, (index, wave) in enumerate(waves, 1):
        if not planned.complete or planned.stopping():
            planned.complete = False
            break
        ended = end is not None and wave.due >= end
        if not ended:
            where = ", ".join(wave.zones) + (", ..." if len(wave.zones) == 3 else "")

            def countdown(left: float, wave_number: int = number, when: str = where,
                          n: int = wave.count, due: str = utc_iso(wave.due)) -> None:  # fmt: skip
                if notice is not None:
                    notice.show(f"dispatcher: wave {wave_number}/{len(waves)} at {due} "
                                f"({when}): {n:,} endpoints, in {span(left)}")  # fmt: skip

            waited = await sleep_until(wave.due, clock, stop=stop, show=countdown)
            if notice is not None:
                notice.done()
            if not waited:
                planned.complete = False
                break
        logger.info("wave %d/%d (%s): %s endpoints%s", number, len(waves), utc_iso(wave.due),
                 f"{wave.count:,}", ", past EndTime: EXPIRED" if ended else "")  # fmt: skip
        sent = await run_pass(skip=plan.skip_for(index), ended=ended)
        counters.read = read  # the segment was read again, not further
        planned.ignored_hook_ids += sent.ignored_hook_ids
        planned.complete = planned.complete and sent.complete
        if planned.empty_variables is not None and sent.empty_variables is not None:
            planned.empty_variables.merge(sent.empty_variables)
    return planned
