"""One parser per config table: ``Reader`` in, settings model values out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dispatcher.config.model import (
    HOOK_MODES,
    MESSAGE_KEYS,
    Campaign,
    CampaignHook,
    ChannelConfig,
    DispatchOptions,
    FunctionConfig,
    Limits,
    Project,
)
from dispatcher.config.reader import Reader
from dispatcher.model import CHANNEL_TYPES


def read_hook(r: Reader | None) -> CampaignHook | None:
    if r is None:
        return None
    r.no_unknown({"LambdaFunctionName", "WebUrl", "Mode"})
    mode = r.get("Mode", str) or "FILTER"
    if mode not in HOOK_MODES:
        raise r.error("Mode", f"must be FILTER or DELIVERY, got {mode!r}")
    name, url = r.get("LambdaFunctionName", str), r.get("WebUrl", str)
    if name and url:
        raise r.error("WebUrl", "give LambdaFunctionName or WebUrl, not both")
    return CampaignHook(name or None, url or None, mode)


def read_limits(r: Reader | None) -> Limits:
    if r is None:
        return Limits()
    r.no_unknown({"Daily", "Total", "Session", "MessagesPerSecond", "MaximumDuration"})
    return Limits(
        daily=r.int_in("Daily", 0, 100),
        total=r.int_in("Total", 0, 100),
        session=r.int_in("Session", 0),
        messages_per_second=r.int_in("MessagesPerSecond", 1, 20_000),
        maximum_duration=r.int_in("MaximumDuration", 60),
    )


def read_quiet_time(r: Reader | None) -> Mapping[str, str] | None:
    if r is None:
        return None
    r.no_unknown({"Start", "End"})
    out = {}
    for name in ("Start", "End"):
        value = r.require(name, str)
        hh, _, mm = value.partition(":")
        if not (len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()) or (
            int(hh) > 23 or int(mm) > 59
        ):
            raise r.error(name, f"must be HH:MM (24-hour), got {value!r}")
        out[name] = value
    return out


def read_messages(r: Reader | None) -> dict[str, Any]:
    if r is None:
        return {}
    r.no_unknown(MESSAGE_KEYS)
    out: dict[str, Any] = {}
    for key in MESSAGE_KEYS:
        msg = r.sub(key)
        if msg is None:
            continue
        for text_key in ("Title", "Body", "HtmlBody"):
            msg.get(text_key, str)
        out[key] = dict(msg.table)
    return out


CAMPAIGN_KEYS = {
    "Id", "Name", "Hook", "MessageConfiguration", "Limits", "Schedule", "TreatmentName",
    "TreatmentDescription", "HoldoutPercent", "AdditionalTreatments",
    "CustomDeliveryConfiguration", "Description", "TemplateConfiguration", "IsPaused",
    "State", "DefaultState", "Version", "Arn", "ApplicationId", "CreationDate",
    "LastModifiedDate", "SegmentId", "SegmentVersion", "tags", "Tags", "Priority",
    "strict_variables",
}  # fmt: skip


def read_campaign(r: Reader) -> Campaign:
    r.no_unknown(CAMPAIGN_KEYS)
    mc = read_messages(r.sub("MessageConfiguration"))
    treatments = r.get("AdditionalTreatments", list) or []
    custom = r.sub("CustomDeliveryConfiguration")
    if custom is not None:
        custom.no_unknown({"DeliveryUri", "EndpointTypes"})
        custom.require("DeliveryUri", str)
        types = custom.get("EndpointTypes", list) or []
        bad = [t for t in types if t not in CHANNEL_TYPES]
        if bad or not types:
            raise custom.error("EndpointTypes", f"must list ChannelTypes, got {types!r}")
    schedule = r.get("Schedule", dict)
    from dispatcher.campaign.schedule import CampaignSchedule

    CampaignSchedule.parse(schedule, file=r.file_of(r.key("Schedule")), key=r.key("Schedule"))
    return Campaign(
        id=r.require("Id", str),
        name=r.get("Name", str),
        hook=read_hook(r.sub("Hook")),
        message_configuration=mc,
        limits=read_limits(r.sub("Limits")),
        schedule=schedule,
        treatment_name=r.get("TreatmentName", str),
        holdout_percent=r.int_in("HoldoutPercent", 0, 100) or 0,
        additional_treatments=tuple(treatments),
        custom_delivery=r.get("CustomDeliveryConfiguration", dict),
        template_configuration=r.get("TemplateConfiguration", dict),
        strict_variables=bool(r.get("strict_variables", bool)),
        is_paused=bool(r.get("IsPaused", bool)),
    )


def read_project(r: Reader) -> Project:
    r.no_unknown(
        {"ApplicationId", "Region", "AccountId", "CampaignHook", "Limits", "QuietTime",
         "LastModifiedDate", "JourneyLimits"}
    )  # fmt: skip
    account = r.get("AccountId", str) or "000000000000"
    if not (len(account) == 12 and account.isdigit()):
        raise r.error("AccountId", f"must be a 12-digit AWS account id, got {account!r}")
    return Project(
        application_id=r.require("ApplicationId", str),
        region=r.require("Region", str),
        account_id=account,
        campaign_hook=read_hook(r.sub("CampaignHook")),
        limits=read_limits(r.sub("Limits")),
        quiet_time=read_quiet_time(r.sub("QuietTime")),
    )


def resolve_path(value: str, base: Path) -> Path:
    """A path from the config: relative to the config file's folder, else to the CWD."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    beside = base / path
    return beside if beside.exists() or not path.exists() else path


def read_functions(r: Reader | None, base: Path) -> dict[str, FunctionConfig]:
    out: dict[str, FunctionConfig] = {}
    if r is None:
        return out
    for name in r.table:
        f = r.sub(name)
        assert f is not None
        f.no_unknown({"python", "url", "endpoint_url", *SECRET_KEYS, "policy", "client"})
        one_secret(f)
        kinds = [k for k in ("python", "url", "endpoint_url") if f.table.get(k)]
        if len(kinds) > 1:
            raise f.error(kinds[1], f"give only one of python, url, endpoint_url (got {kinds})")
        python = f.get("python", str)
        if python is not None:
            target, sep, attr = python.rpartition(":")
            if not sep or not target or not attr:
                raise f.error(
                    "python", f"must be 'file.py:handler' or 'module:handler', got {python!r}"
                )
            if target.endswith(".py"):
                python = f"{resolve_path(target, base)}:{attr}"
        policy = f.get("policy", str)
        out[name] = FunctionConfig(
            name=name,
            python=python,
            url=f.get("url", str),
            endpoint_url=f.get("endpoint_url", str),
            secret=f.get("secret", str),
            secret_env=f.get("secret_env", str),
            secret_id=f.get("secret_id", str),
            secret_parameter=f.get("secret_parameter", str),
            policy=resolve_path(policy, base) if policy else None,
            client=f.get("client", str),
        )
    return out


SENDERS = ("outbox", "ses", "sms", "push")


SECRET_KEYS = ("secret", "secret_env", "secret_id", "secret_parameter")
"""Where a webhook's signing secret comes from: inline (local runs only), an environment
variable, AWS Secrets Manager, or SSM Parameter Store."""


def one_secret(r: Reader) -> None:
    given = [k for k in SECRET_KEYS if r.get(k, str)]
    if len(given) > 1:
        raise r.error(given[1], f"give one of {', '.join(SECRET_KEYS)}, not {given}")


def read_channels(r: Reader | None) -> dict[str, ChannelConfig]:
    out: dict[str, ChannelConfig] = {}
    if r is None:
        return out
    for channel in r.table:
        if channel not in CHANNEL_TYPES:
            raise r.error(
                channel, f"unknown ChannelType; use one of {', '.join(sorted(CHANNEL_TYPES))}"
            )
        c = r.sub(channel)
        assert c is not None
        sender = c.require("sender", str)
        if sender not in SENDERS:
            raise c.error("sender", f"unknown sender {sender!r}; use one of {', '.join(SENDERS)}")
        options = {k: v for k, v in c.table.items() if k != "sender"}
        out[channel] = ChannelConfig(channel, sender, options)
    return out


def read_dispatch(r: Reader | None) -> DispatchOptions:
    if r is None:
        return DispatchOptions()
    defaults = DispatchOptions()
    r.no_unknown(set(DispatchOptions.__dataclass_fields__))
    values: dict[str, Any] = {}
    for name, default in ((n, getattr(defaults, n)) for n in DispatchOptions.__dataclass_fields__):
        kind = (int, float) if isinstance(default, float) else int
        value = r.get(name, kind)
        if value is None:
            continue
        if value <= 0:
            raise r.error(name, f"must be > 0, got {value}")
        values[name] = value
    if values.get("chunk_size", 50) > 50:
        raise r.error("chunk_size", "must be at most 50 (Pinpoint's event size)")
    if values.get("hook_attempts", 3) > 10:
        raise r.error("hook_attempts", "must be at most 10")
    if "hook_concurrency" in values and "hook_concurrency_max" in values:
        raise r.error(
            "hook_concurrency_max",
            "set hook_concurrency (a fixed number of chunks in flight) or "
            "hook_concurrency_max (the bound of the adaptive one), not both",
        )
    return DispatchOptions(**values)
