"""``dispatch()`` and ``run()``: one campaign send, from settings to summary."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import orjson

from dispatcher.aws import AwsClients
from dispatcher.channels import create_sender
from dispatcher.channels.base import Sender, SenderContext
from dispatcher.chunking import Chunker
from dispatcher.config import Settings
from dispatcher.eligibility import Eligibility
from dispatcher.errors import ConfigError
from dispatcher.hooks import create_transport
from dispatcher.hooks.events import EventBuilder
from dispatcher.hooks.invoke import InvokePolicy
from dispatcher.hooks.python import Handler
from dispatcher.model import OVERRIDE_CHANNELS, Summary
from dispatcher.outcomes import OUTCOMES_FILE, OutcomeLog, now_iso, write_summary
from dispatcher.pipeline import Limiter, Route, Stages, run_stages
from dispatcher.progress import Counters, show_progress
from dispatcher.render import Composer
from dispatcher.segments import open_source

RUN_FILE = "run.json"


def new_run_id() -> str:
    """A run id: 32 hex characters, like Pinpoint's own ids (also the ActivityId)."""
    return uuid.uuid4().hex


def _treatments(settings: Settings) -> dict[str, Mapping[str, Any]]:
    """Message configuration per TreatmentId ("0" is the campaign's own)."""
    return {"0": settings.campaign.message_configuration}


def _composers(settings: Settings) -> dict[tuple[str, str], Composer]:
    composers = {}
    campaign = settings.campaign
    for channel in sorted(campaign.channels):
        message = campaign.message_for(channel)
        assert message is not None
        where = f"campaign.MessageConfiguration.{channel}"
        try:
            composers[("0", channel)] = Composer(
                channel, message, overridable=channel in OVERRIDE_CHANNELS, where=where
            )
        except ConfigError as exc:
            raise ConfigError(exc.message, file=settings.file, key=exc.key) from None
    return composers


async def _senders(
    settings: Settings,
    ctx: SenderContext,
    overrides: Mapping[str, Sender],
    stack: AsyncExitStack,
) -> dict[str, Sender]:
    """One sender per ChannelType; channels with the same sender and options share one."""
    shared: dict[bytes, Sender] = {}
    out: dict[str, Sender] = {}
    for channel in sorted(settings.campaign.channels):
        if channel in overrides:
            out[channel] = overrides[channel]
            continue
        cfg = settings.channels.get(channel)
        name, options = (cfg.sender, cfg.options) if cfg else ("outbox", {})
        key = orjson.dumps([name, options], option=orjson.OPT_SORT_KEYS)
        if key not in shared:
            sender = create_sender(name, channel, options, ctx)
            stack.push_async_callback(sender.aclose)
            shared[key] = sender
        out[channel] = shared[key]
    return out


def _prepare_out_dir(out_dir: Path, file: str) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {str(out_dir)!r}: {exc.strerror}",
                          file=file, key="--out") from None
    if not os.access(out_dir, os.W_OK):
        raise ConfigError(f"output directory {str(out_dir)!r} is not writable", file=file,
                          key="--out")


async def dispatch(
    settings: Settings,
    *,
    segment: str | None = None,
    out_dir: str | Path = "out",
    run_id: str | None = None,
    handlers: Mapping[str, Handler] | None = None,
    senders: Mapping[str, Sender] | None = None,
    on_start: Callable[[str], None] | None = None,
    progress: bool = True,
) -> Summary:
    """Run one campaign send and return its summary.

    ``segment`` overrides ``[segment] source``. ``handlers`` maps hook function names to
    Python callables run in process (library use and tests); ``senders`` maps
    ChannelTypes to ready-made senders. Configuration problems raise ``ConfigError``
    before any endpoint data is sent anywhere.
    """
    out = Path(out_dir)
    source_spec = segment or settings.segment_source
    if not source_spec:
        raise ConfigError("no segment source: set [segment] source or pass --segment",
                          file=settings.file, key="segment.source")
    fmt = settings.segment_format
    try:
        source = open_source(source_spec, fmt)
    except ConfigError as exc:
        key = "--segment" if segment else "segment.source"
        raise ConfigError(exc.message, file=settings.file, key=key) from None
    composers = _composers(settings)
    run_id = run_id or new_run_id()
    started_at = now_iso()
    d = settings.dispatch
    clients = AwsClients(settings.project.region,
                         max_pool_connections=max(d.hook_concurrency, d.send_concurrency, 10))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(clients.aclose)
        hook = settings.hook
        transport = None
        if hook is not None:
            transport = create_transport(settings, hook, handlers=handlers, clients=clients)
            stack.push_async_callback(transport.aclose)
        _prepare_out_dir(out, settings.file)
        ctx = SenderContext(
            application_id=settings.project.application_id,
            region=settings.project.region,
            account_id=settings.project.account_id,
            clients=clients,
            out_dir=out,
            config_file=settings.file,
            concurrency=d.send_concurrency,
        )
        by_channel = await _senders(settings, ctx, senders or {}, stack)
        (out / RUN_FILE).write_bytes(orjson.dumps(
            {"RunId": run_id, "Config": settings.file, "Segment": source.name,
             "CampaignId": settings.campaign.id, "ApplicationId": settings.project.application_id,
             "StartedAt": started_at}, option=orjson.OPT_INDENT_2))  # fmt: skip
        if on_start:
            on_start(run_id)
        log = OutcomeLog(out / OUTCOMES_FILE)
        stack.callback(log.close)
        counters = Counters()
        stages = Stages(
            source=source,
            eligibility=Eligibility(settings.campaign.channels),
            chunker=Chunker(d.chunk_size),
            log=log,
            counters=counters,
            routes={key: Route(c, by_channel[key[1]], Limiter()) for key, c in composers.items()},
            transport=transport,
            events=EventBuilder(
                application_id=settings.project.application_id,
                campaign_id=settings.campaign.id,
                activity_id=run_id,
                scheduled_time=started_at,
                configurations=_treatments(settings),
                legacy_message=hook is not None and hook.mode == "DELIVERY",
            ),
            policy=InvokePolicy(d.hook_deadline, d.hook_attempts, d.hook_attempt_timeout),
            delivery_mode=hook is not None and hook.mode == "DELIVERY",
            hook_concurrency=d.hook_concurrency,
            send_concurrency=d.send_concurrency,
            send_attempts=d.send_attempts,
            limiter=Limiter(),
        )
        async with anyio.create_task_group() as tg:
            if progress:
                tg.start_soon(show_progress, counters)
            await run_stages(stages)
            tg.cancel_scope.cancel()
        log.flush()
        summary = Summary(
            run_id=run_id,
            total=log.total,
            by_status=dict(log.counts),
            hook_invocations=counters.hook_invocations,
            started_at=started_at,
            finished_at=now_iso(),
            ignored_hook_ids=stages.ignored_hook_ids,
        )
        write_summary(out, summary)
        return summary


def run(settings: Settings, **kwargs: Any) -> Summary:
    """Synchronous ``dispatch()`` for batch jobs and scripts."""
    return anyio.run(lambda: dispatch(settings, **kwargs))
