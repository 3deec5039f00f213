"""Run settings: TOML in, typed and frozen settings out, every error naming file and key.

Tables that mirror Pinpoint keep Pinpoint's names and shapes (``[project]`` is
ApplicationSettingsResource plus identity, ``[campaign]`` the Campaign resource), so
output of ``aws pinpoint get-campaign`` / ``get-application-settings`` can be pasted.
The dispatcher's own tables (``[segment]``, ``[functions.NAME]``, ``[channels.TYPE]``,
``[dispatch]``, ``[webhook]``) use snake_case keys.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dispatcher.errors import ConfigError
from dispatcher.model import CHANNEL_TYPES, PUSH_CHANNELS
from dispatcher.segments.lines import (
    DEFAULT_MAX_RECORD_BYTES,
    MAX_MAX_RECORD_BYTES,
    MIN_MAX_RECORD_BYTES,
)

MESSAGE_KEYS = {
    "DefaultMessage", "ADMMessage", "APNSMessage", "BaiduMessage", "GCMMessage",
    "EmailMessage", "SMSMessage", "CustomMessage", "InAppMessage", "VoiceMessage",
}  # fmt: skip
"""Campaign MessageConfiguration keys (``VoiceMessage``: a voice template's content, sent
through the outbox or a custom channel; Pinpoint campaigns had no voice channel)."""

PUSH_MESSAGE_KEY = {
    "GCM": "GCMMessage", "APNS": "APNSMessage", "APNS_SANDBOX": "APNSMessage",
    "APNS_VOIP": "APNSMessage", "APNS_VOIP_SANDBOX": "APNSMessage", "ADM": "ADMMessage",
    "BAIDU": "BaiduMessage",
}  # fmt: skip

HOOK_MODES = ("FILTER", "DELIVERY")


@dataclass(frozen=True, slots=True)
class CampaignHook:
    """Pinpoint's CampaignHook: a Lambda function name/ARN or a web URL, and a mode."""

    lambda_function_name: str | None = None
    web_url: str | None = None
    mode: str = "FILTER"

    @property
    def function(self) -> str:
        return self.lambda_function_name or self.web_url or ""


@dataclass(frozen=True, slots=True)
class Limits:
    """Pinpoint's CampaignLimits."""

    daily: int | None = None
    total: int | None = None
    session: int | None = None
    messages_per_second: int | None = None
    maximum_duration: int | None = None


@dataclass(frozen=True, slots=True)
class Project:
    application_id: str
    region: str
    account_id: str
    campaign_hook: CampaignHook | None = None
    limits: Limits = field(default_factory=Limits)
    quiet_time: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str | None
    hook: CampaignHook | None
    message_configuration: Mapping[str, Any]
    limits: Limits = field(default_factory=Limits)
    schedule: Mapping[str, Any] | None = None
    treatment_name: str | None = None
    holdout_percent: int = 0
    additional_treatments: tuple[Mapping[str, Any], ...] = ()
    custom_delivery: Mapping[str, Any] | None = None
    template_configuration: Mapping[str, Any] | None = None
    """As given; its templates are already merged into ``message_configuration``."""
    strict_variables: bool = False
    """A message variable that renders empty fails its endpoint (PERMANENT_FAILURE)."""

    @property
    def custom_types(self) -> frozenset[str]:
        """ChannelTypes delivered through CustomDeliveryConfiguration.DeliveryUri."""
        if not self.custom_delivery:
            return frozenset()
        return frozenset(self.custom_delivery.get("EndpointTypes") or ())

    def message_for(self, channel: str) -> Mapping[str, Any] | None:
        """The campaign's message object for a ChannelType, as Pinpoint picks it.

        Endpoint types of a CustomDeliveryConfiguration use CustomMessage; EMAIL uses
        EmailMessage, SMS uses SMSMessage (else DefaultMessage's body), a push channel
        uses its platform message, else DefaultMessage.
        """
        mc = self.message_configuration
        if channel in self.custom_types:
            return mc.get("CustomMessage") or {"Data": None}
        if channel == "EMAIL":
            return mc.get("EmailMessage")
        if channel == "SMS":
            return mc.get("SMSMessage") or mc.get("DefaultMessage")
        if channel in PUSH_CHANNELS:
            return mc.get(PUSH_MESSAGE_KEY[channel]) or mc.get("DefaultMessage")
        if channel == "VOICE":
            return mc.get("VoiceMessage")
        return None

    @property
    def channels(self) -> frozenset[str]:
        """The ChannelTypes this campaign has a message for."""
        return frozenset(c for c in CHANNEL_TYPES if self.message_for(c))


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """``[functions.NAME]``: where a hook function name runs."""

    name: str
    python: str | None = None
    url: str | None = None
    endpoint_url: str | None = None
    secret: str | None = None
    secret_env: str | None = None
    secret_id: str | None = None
    """An AWS Secrets Manager secret (name or ARN) holding the webhook's signing secret."""
    secret_parameter: str | None = None
    """An SSM Parameter Store parameter (SecureString) holding it."""
    policy: Path | None = None
    client: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """``[channels.TYPE]``: the sender for one ChannelType and its options."""

    channel: str
    sender: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    """``[dispatch]``: the dispatcher's own knobs (Pinpoint's values as defaults)."""

    hook_concurrency: int = 16
    hook_deadline: float = 15.0
    hook_attempts: int = 3
    hook_attempt_timeout: float = 10.0
    send_concurrency: int = 8
    send_attempts: int = 3
    chunk_size: int = 50


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs, validated."""

    file: str
    project: Project
    campaign: Campaign
    segment_source: str | None = None
    segment_format: str | None = None
    segment_max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    """``[segment] max_record_bytes``: a longer record is INVALID and never held whole."""
    functions: Mapping[str, FunctionConfig] = field(default_factory=dict)
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    dispatch: DispatchOptions = field(default_factory=DispatchOptions)
    webhook: Mapping[str, Any] = field(default_factory=dict)
    ledger: Mapping[str, Any] = field(default_factory=dict)
    """``[ledger]``: ``path`` (SQLite file) or ``dynamodb_table`` (a worker fleet)."""
    event_stream: Mapping[str, Any] = field(default_factory=dict)
    """``[event_stream]``: ``path`` (JSON lines) or ``DestinationStreamArn``."""
    notes: tuple[str, ...] = ()
    """Warnings worth telling the operator once (e.g. template vs inline content)."""

    @property
    def hook(self) -> CampaignHook | None:
        """The campaign's Hook if it names a function, else the project default.

        A campaign Hook with neither LambdaFunctionName nor WebUrl (``"Hook": {}`` in
        get-campaign output) does not switch the project default off.
        """
        hook = self.campaign.hook
        if hook is not None and hook.function:
            return hook
        default = self.project.campaign_hook
        return default if default is not None and default.function else None

    @property
    def messages_per_second(self) -> int | None:
        return self.campaign.limits.messages_per_second or self.project.limits.messages_per_second


class _Reader:
    """Typed access to a TOML table that reports errors as ``file: dotted.key: ...``."""

    def __init__(
        self, file: str, table: Mapping[str, Any], prefix: str,
        origins: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.file, self.table, self.prefix = file, table, prefix
        self.origins = origins or {}
        """Dotted key -> the file it came from, when not ``file`` (``--campaign-json``)."""

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def file_of(self, key: str) -> str:
        """The file a dotted key was read from: its own origin, or a parent's, or ours."""
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key.rpartition(".")[0]
        return self.file

    def error(self, name: str, message: str) -> ConfigError:
        key = self.key(name)
        return ConfigError(message, file=self.file_of(key), key=key)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.table.get(name, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(name, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def require(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.get(name, kind)
        if value is None or value == "":
            raise self.error(name, "is required")
        return value

    def int_in(self, name: str, lo: int, hi: int | None = None) -> int | None:
        value = self.get(name, int)
        if value is not None and (value < lo or (hi is not None and value > hi)):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise self.error(name, f"must be {bound}, got {value}")
        return value  # type: ignore[no-any-return]

    def sub(self, name: str) -> _Reader | None:
        value = self.get(name, dict)
        return None if value is None else _Reader(self.file, value, self.key(name), self.origins)

    def no_unknown(self, allowed: set[str]) -> None:
        for name in self.table:
            if name not in allowed:
                hint = _closest(name, allowed)
                raise self.error(
                    name, "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
                )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "a table",
             list: "an array", bool: "a boolean"}  # fmt: skip
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _closest(name: str, allowed: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.75)
    return match[0] if match else None


def _hook(r: _Reader | None) -> CampaignHook | None:
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


def _limits(r: _Reader | None) -> Limits:
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


def _quiet_time(r: _Reader | None) -> Mapping[str, str] | None:
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


def _message_configuration(r: _Reader | None) -> dict[str, Any]:
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


def _campaign(r: _Reader) -> Campaign:
    r.no_unknown(CAMPAIGN_KEYS)
    mc = _message_configuration(r.sub("MessageConfiguration"))
    treatments = r.get("AdditionalTreatments", list) or []
    custom = r.sub("CustomDeliveryConfiguration")
    if custom is not None:
        custom.no_unknown({"DeliveryUri", "EndpointTypes"})
        custom.require("DeliveryUri", str)
        types = custom.get("EndpointTypes", list) or []
        bad = [t for t in types if t not in CHANNEL_TYPES]
        if bad or not types:
            raise custom.error("EndpointTypes", f"must list ChannelTypes, got {types!r}")
    return Campaign(
        id=r.require("Id", str),
        name=r.get("Name", str),
        hook=_hook(r.sub("Hook")),
        message_configuration=mc,
        limits=_limits(r.sub("Limits")),
        schedule=r.get("Schedule", dict),
        treatment_name=r.get("TreatmentName", str),
        holdout_percent=r.int_in("HoldoutPercent", 0, 100) or 0,
        additional_treatments=tuple(treatments),
        custom_delivery=r.get("CustomDeliveryConfiguration", dict),
        template_configuration=r.get("TemplateConfiguration", dict),
        strict_variables=bool(r.get("strict_variables", bool)),
    )


def _project(r: _Reader) -> Project:
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
        campaign_hook=_hook(r.sub("CampaignHook")),
        limits=_limits(r.sub("Limits")),
        quiet_time=_quiet_time(r.sub("QuietTime")),
    )


def _resolve_path(value: str, base: Path) -> Path:
    """A path from the config: relative to the config file's folder, else to the CWD."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    beside = base / path
    return beside if beside.exists() or not path.exists() else path


def _functions(r: _Reader | None, base: Path) -> dict[str, FunctionConfig]:
    out: dict[str, FunctionConfig] = {}
    if r is None:
        return out
    for name in r.table:
        f = r.sub(name)
        assert f is not None
        f.no_unknown({"python", "url", "endpoint_url", *SECRET_KEYS, "policy", "client"})
        _one_secret(f)
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
                python = f"{_resolve_path(target, base)}:{attr}"
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
            policy=_resolve_path(policy, base) if policy else None,
            client=f.get("client", str),
        )
    return out


SENDERS = ("outbox", "ses", "sms", "push")

SECRET_KEYS = ("secret", "secret_env", "secret_id", "secret_parameter")
"""Where a webhook's signing secret comes from: inline (local runs only), an environment
variable, AWS Secrets Manager, or SSM Parameter Store."""


def _one_secret(r: _Reader) -> None:
    given = [k for k in SECRET_KEYS if r.get(k, str)]
    if len(given) > 1:
        raise r.error(given[1], f"give one of {', '.join(SECRET_KEYS)}, not {given}")


def _channels(r: _Reader | None) -> dict[str, ChannelConfig]:
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


def _dispatch(r: _Reader | None) -> DispatchOptions:
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
    return DispatchOptions(**values)


TOP_LEVEL = {
    "templates",
    "project",
    "campaign",
    "segment",
    "functions",
    "channels",
    "dispatch",
    "webhook",
    "ledger",
    "event_stream",
}


def parse_settings(
    data: Mapping[str, Any],
    file: str,
    base: Path,
    *,
    template_files: Sequence[Path] = (),
    origins: Mapping[str, str] | None = None,
) -> Settings:
    """Validate a decoded config document (TOML, or JSON converted by the CLI).

    ``template_files`` are ``--template-json`` files; ``origins`` name the file of keys
    that came from elsewhere than ``file`` (``load_document`` fills it).
    """
    root = _Reader(file, data, "", origins)
    root.no_unknown(TOP_LEVEL)
    project = root.sub("project")
    if project is None:
        raise root.error("project", "table is required")
    campaign = root.sub("campaign")
    if campaign is None:
        raise root.error("campaign", "table is required")
    notes: list[str] = []
    campaign = _with_templates(campaign, root.sub("templates"), base, template_files, notes)
    segment = root.sub("segment")
    source = fmt = None
    max_record_bytes: int | None = None
    if segment is not None:
        segment.no_unknown({"source", "format", "max_record_bytes"})
        max_record_bytes = segment.int_in(
            "max_record_bytes", MIN_MAX_RECORD_BYTES, MAX_MAX_RECORD_BYTES
        )
        source = segment.get("source", str)
        fmt = segment.get("format", str)
        if fmt is not None and fmt not in ("jsonl", "csv"):
            raise segment.error("format", f"must be 'jsonl' or 'csv', got {fmt!r}")
        if source and source != "-" and "://" not in source:
            source = str(_resolve_path(source, base))
    webhook = root.sub("webhook")
    if webhook is not None:
        webhook.no_unknown({*SECRET_KEYS, "timeout"})
        _one_secret(webhook)
    ledger = root.sub("ledger")
    if ledger is not None:
        ledger.no_unknown({"path", "dynamodb_table"})
        if ledger.get("path", str) and ledger.get("dynamodb_table", str):
            raise ledger.error("dynamodb_table", "give path or dynamodb_table, not both")
    ledger_table = dict(ledger.table) if ledger else {}
    if ledger_table.get("path"):
        ledger_table["path"] = str(_resolve_path(ledger_table["path"], base))
    stream = root.sub("event_stream")
    if stream is not None:
        # The other keys of `aws pinpoint get-event-stream` output are accepted and ignored.
        stream.no_unknown(
            {
                "path",
                "DestinationStreamArn",
                "RoleArn",
                "endpoint_url",
                "ApplicationId",
                "ExternalId",
                "LastModifiedDate",
                "LastUpdatedBy",
            }
        )
    settings = Settings(
        file=file,
        project=_project(project),
        campaign=_campaign(campaign),
        segment_source=source,
        segment_format=fmt,
        segment_max_record_bytes=max_record_bytes or DEFAULT_MAX_RECORD_BYTES,
        functions=_functions(root.sub("functions"), base),
        channels=_channels(root.sub("channels")),
        dispatch=_dispatch(root.sub("dispatch")),
        webhook=dict(webhook.table) if webhook else {},
        ledger=ledger_table,
        event_stream=dict(stream.table) if stream else {},
    )
    if not settings.campaign.message_configuration and not settings.campaign.custom_types:
        raise ConfigError("has no message for any channel",
                          file=campaign.file_of("campaign.MessageConfiguration"),
                          key="campaign.MessageConfiguration")  # fmt: skip
    return replace(settings, notes=tuple(notes))


def _with_templates(
    campaign: _Reader, table: _Reader | None, base: Path, files: Sequence[Path],
    notes: list[str],
) -> _Reader:  # fmt: skip
    """The campaign table with its (and its treatments') templates merged into their
    MessageConfiguration (``dispatcher.templates`` has the rules)."""
    from dispatcher.templates import TemplateStore, apply_templates

    directory = None
    if table is not None:
        table.no_unknown({"dir"})
        value = table.get("dir", str)
        directory = _resolve_path(value, base) if value else None
    data = dict(campaign.table)
    treatments = data.get("AdditionalTreatments")
    uses = [data.get("TemplateConfiguration")]
    if isinstance(treatments, list):
        uses += [t.get("TemplateConfiguration") for t in treatments if isinstance(t, Mapping)]
    if not any(isinstance(u, Mapping) and any(u.values()) for u in uses):
        return campaign
    store = TemplateStore(directory, tuple(files), check=_check_template)
    own = campaign.sub("MessageConfiguration")
    inline = _message_configuration(own)
    tc = campaign.get("TemplateConfiguration", dict)

    def apply(mc: Mapping[str, Any], config: Any, key: str) -> dict[str, Any]:
        return apply_templates(mc, config, store, file=campaign.file_of(key), key=key,
                               warn=notes.append)  # fmt: skip

    data["MessageConfiguration"] = apply(inline, tc, "campaign.TemplateConfiguration")
    if isinstance(treatments, list):
        merged_items = []
        for i, item in enumerate(treatments):
            if isinstance(item, Mapping) and (item.get("TemplateConfiguration") or tc):
                key = f"campaign.AdditionalTreatments[{i}].TemplateConfiguration"
                item = dict(item)
                # A treatment inherits the campaign's inline messages and templates
                # unless it gives its own.
                messages = item.get("MessageConfiguration") or inline
                item["MessageConfiguration"] = apply(
                    messages, item.get("TemplateConfiguration") or tc, key)
                item.pop("TemplateConfiguration", None)
            merged_items.append(item)
        data["AdditionalTreatments"] = merged_items
    return _Reader(campaign.file, data, campaign.prefix, campaign.origins)


def _check_template(source: str, file: str, part: str) -> None:
    """A template part must compile: else exit 2 naming the file, the part, the position."""
    from dispatcher.handlebars import TemplateError, compile

    try:
        compile(source, html=part.endswith("HtmlPart"), where=f"{file}: {part}")
    except TemplateError as exc:
        raise ConfigError(str(exc), file=file, key=part) from None


def load_config_data(
    path: str | Path,
    *,
    campaign_json: str | Path | None = None,
    settings_json: str | Path | None = None,
) -> dict[str, Any]:
    """The config document as data (TOML, with Pinpoint JSON merged in), unvalidated.

    ``campaign_json`` / ``settings_json`` replace ``[campaign]`` / merge into
    ``[project]`` from ``aws pinpoint get-campaign`` / ``get-application-settings`` output.
    """
    return load_document(path, campaign_json=campaign_json, settings_json=settings_json)[0]


def load_document(
    path: str | Path,
    *,
    campaign_json: str | Path | None = None,
    settings_json: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``load_config_data``, and where each key laid under the TOML came from."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from None
    origins: dict[str, str] = {}
    if campaign_json or settings_json:
        from dispatcher.pinpoint_json import campaign_table, merge_tables, settings_table

        campaign = campaign_table(campaign_json) if campaign_json else None
        settings = settings_table(settings_json) if settings_json else None
        for table, json_file, name in ((campaign, campaign_json, "campaign"),
                                       (settings, settings_json, "project")):  # fmt: skip
            own = data.get(name)
            own = own if isinstance(own, dict) else {}
            for key in table or {}:
                if key not in own:
                    origins[f"{name}.{key}"] = str(json_file)
        data = merge_tables(data, campaign=campaign, settings=settings)
    return data, origins


def load_settings(
    path: str | Path,
    *,
    campaign_json: str | Path | None = None,
    settings_json: str | Path | None = None,
    template_json: Sequence[str | Path] = (),
) -> Settings:
    """Read and validate a config file (see ``load_config_data``); ``template_json`` are
    get-*-template output files (``--template-json``)."""
    data, origins = load_document(path, campaign_json=campaign_json, settings_json=settings_json)
    return parse_settings(data, str(path), Path(path).parent,
                          template_files=tuple(Path(p) for p in template_json),
                          origins=origins)  # fmt: skip
