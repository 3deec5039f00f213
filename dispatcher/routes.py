"""A run's routes: per (TreatmentId, ChannelType), the composer that renders its
messages, the sender that delivers them, and the rate limiter in front of the sender.
Built once per run by ``dispatcher.context.open_context`` / ``execute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack

import orjson

from dispatcher.campaign import Treatments
from dispatcher.channels import create_sender
from dispatcher.channels.base import PacedSender, RatedSender, Sender, SenderContext
from dispatcher.config import Settings
from dispatcher.errors import ConfigError
from dispatcher.hooks import create_transport
from dispatcher.model import OVERRIDE_CHANNELS
from dispatcher.ratelimit import (
    CAMPAIGN,
    CeilingFactory,
    Limiter,
    NoLimit,
    Pacing,
    RateLimiter,
    all_of,
    local_ceilings,
)
from dispatcher.render import Composer
from dispatcher.stages import Route

__all__ = ["build_composers", "build_routes", "build_senders"]


def build_composers(settings: Settings, treatments: Treatments) -> dict[tuple[str, str], Composer]:
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


async def build_senders(
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


def build_routes(
    settings: Settings,
    composers: Mapping[tuple[str, str], Composer],
    by_channel: Mapping[str, tuple[str, Sender]],
    *,
    paced: bool = True,
    ceilings: CeilingFactory = local_ceilings,
) -> dict[tuple[str, str], Route]:
    """A route per (treatment, channel), with its sender's rate limiter.

    ``MessagesPerSecond`` is one ceiling for the whole campaign, every treatment and
    channel; a sender's own ``max_per_second`` (a provider quota) composes under it, with
    the sender's own throttling feedback. ``ceilings`` makes each ceiling (one process's,
    or ``SharedCeilings`` across processes and fleet workers). A ``PacedSender`` takes a
    permit per provider request itself (its route holds ``NoLimit``); any other sender
    is held under its limiter for each whole ``send`` call. A dry run is not paced.
    """
    if not paced:
        return {key: Route(composer, by_channel[key[1]][1], NoLimit(), by_channel[key[1]][0])
                for key, composer in composers.items()}  # fmt: skip
    mps = settings.messages_per_second
    campaign = ceilings(CAMPAIGN, mps) if mps else NoLimit()
    limiters: dict[int, tuple[Limiter, int]] = {}
    routes = {}
    for key, composer in composers.items():
        name, sender = by_channel[key[1]]
        if id(sender) not in limiters:
            own = sender.max_per_second if isinstance(sender, RatedSender) else None
            rates = [r for r in (mps, own) if r]
            # A sender's own limiter carries its own throttling feedback: a (shared) ceiling
            # when it has a quota of its own, else a pacer in front of the campaign's.
            mine: Limiter = ceilings(f"sender/{name}/{key[1]}", min(rates)) if own else (
                RateLimiter(mps, hard=False) if mps else NoLimit())  # fmt: skip
            limiter = all_of(mine, campaign)
            if isinstance(sender, PacedSender):
                sender.pace(Pacing(limiter, ceilings))
                limiter = NoLimit()
            limiters[id(sender)] = (limiter, int(min(rates)) if rates else 1 << 30)
        limiter, max_grant = limiters[id(sender)]
        routes[key] = Route(composer, sender, limiter, name, max_grant)
    return routes
