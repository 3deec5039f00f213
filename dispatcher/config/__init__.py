"""Run settings: TOML in, typed and frozen settings out, every error naming file and key.

Tables that mirror Pinpoint keep Pinpoint's names and shapes (``[project]`` is
ApplicationSettingsResource plus identity, ``[campaign]`` the Campaign resource), so
output of ``aws pinpoint get-campaign`` / ``get-application-settings`` can be pasted, or
given as files. The dispatcher's own tables (``[segment]``, ``[templates]``,
``[functions.NAME]``, ``[channels.TYPE]``, ``[dispatch]``, ``[webhook]``, ``[ledger]``,
``[event_stream]``) use snake_case keys. Everything is validated when the document is
read; a run never meets a config error after it started.

    model      the frozen settings (Settings, Project, Campaign, Limits, ...)
    reader     typed table access whose errors name ``file: dotted.key``
    tables     one parser per table
    parse      the document: parse_settings, load_settings, templates merged in
    pinpoint   get-campaign / get-application-settings JSON as tables (a front end)
    templates  get-*-template files and TemplateConfiguration
"""

from dispatcher.config.model import (
    HOOK_MODES,
    MESSAGE_KEYS,
    PUSH_MESSAGE_KEY,
    Campaign,
    CampaignHook,
    ChannelConfig,
    DispatchOptions,
    FunctionConfig,
    Limits,
    Project,
    Settings,
)
from dispatcher.config.parse import (
    TOP_LEVEL,
    load_config_data,
    load_document,
    load_settings,
    parse_settings,
)
from dispatcher.config.tables import CAMPAIGN_KEYS, SECRET_KEYS, SENDERS

__all__ = [
    "CAMPAIGN_KEYS",
    "HOOK_MODES",
    "MESSAGE_KEYS",
    "PUSH_MESSAGE_KEY",
    "SECRET_KEYS",
    "SENDERS",
    "TOP_LEVEL",
    "Campaign",
    "CampaignHook",
    "ChannelConfig",
    "DispatchOptions",
    "FunctionConfig",
    "Limits",
    "Project",
    "Settings",
    "load_config_data",
    "load_document",
    "load_settings",
    "parse_settings",
]
