"""The frozen settings a run reads: what ``parse_settings`` makes of a config document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispatcher.model import CHANNEL_TYPES, PUSH_CHANNELS
from dispatcher.segments.lines import DEFAULT_MAX_RECORD_BYTES

if TYPE_CHECKING:
    from dispatcher.campaign.schedule import CampaignSchedule

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

    def over(self, default: Limits) -> Limits:
        """These limits over ``default``, field by field: an unset (or 0) field inherits
        (the campaign's Limits over the project's, as Pinpoint applied them)."""
        return Limits(
            daily=self.daily or default.daily,
            total=self.total or default.total,
            session=self.session or default.session,
            messages_per_second=self.messages_per_second or default.messages_per_second,
            maximum_duration=self.maximum_duration or default.maximum_duration,
        )


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
    is_paused: bool = False
    """``IsPaused``: a paused campaign is not run (``--ignore-pause`` overrides)."""

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

    hook_concurrency: int = 0
    """Chunks in flight to the hook, fixed. 0 (not set): adaptive, from 16 up to
    ``hook_concurrency_max`` (``dispatcher.hooks.concurrency``)."""
    hook_concurrency_max: int = 0
    """The adaptive bound; 0 (not set): per transport, Lambda 1,000, webhook 64, in
    process 16."""
    hook_deadline: float = 15.0
    hook_attempts: int = 3
    hook_attempt_timeout: float = 10.0
    send_concurrency: int = 8
    send_attempts: int = 3
    chunk_size: int = 50

    @property
    def hook_concurrency_text(self) -> str:
        """The hook concurrency as a person reads it: ``16 (fixed)``, ``adaptive, up to 64``."""
        if self.hook_concurrency:
            return f"{self.hook_concurrency} (fixed)"
        if self.hook_concurrency_max:
            return f"adaptive, up to {self.hook_concurrency_max}"
        return "adaptive, up to the transport's default"


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
    segment_definition: str | None = None
    """``[segment] definition``: an ``aws pinpoint get-segment`` file (resolved path) that
    narrows the source to the segment's endpoints (``dispatcher.segments.definition``)."""
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
    def limits(self) -> Limits:
        """The campaign's Limits over the project's: what the run enforces."""
        return self.campaign.limits.over(self.project.limits)

    @property
    def schedule(self) -> CampaignSchedule:
        """The campaign's ``Schedule`` (validated when the settings were loaded)."""
        from dispatcher.campaign.schedule import CampaignSchedule

        return CampaignSchedule.parse(self.campaign.schedule, file=self.file)

    @property
    def messages_per_second(self) -> int | None:
        return self.limits.messages_per_second
