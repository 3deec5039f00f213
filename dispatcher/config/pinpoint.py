"""Pinpoint's own JSON as campaign definitions: ``--campaign-json`` / ``--settings-json``.

``aws pinpoint get-campaign`` prints ``{"CampaignResponse": {...}}`` and
``aws pinpoint get-application-settings`` prints ``{"ApplicationSettingsResource": {...}}``;
both are accepted wrapped or bare. ``campaign_table`` / ``settings_table`` turn them into
the ``[campaign]`` / ``[project]`` tables that ``dispatcher.config.parse_settings``
accepts (``dispatcher.config.load_settings(..., campaign_json=, settings_json=)`` reads
them); ``merge_tables`` is one way to lay them under a TOML document:

* every semantic field is kept as it is: Hook / CampaignHook, Limits, Schedule (with
  QuietTime), MessageConfiguration, HoldoutPercent, TreatmentName, AdditionalTreatments,
  CustomDeliveryConfiguration;
* read-only response fields are dropped (Arn, CreationDate, LastModifiedDate, State,
  DefaultState, Version, a treatment's State, JourneyLimits), and so are JSON nulls (TOML
  has none) and empty objects (``"Hook": {}``, ``"QuietTime": {}``);
* a Limits field of 0 is dropped: 0 means "not set" (inherit the project's), and the
  parser would refuse a MessagesPerSecond or MaximumDuration of 0;
* with ``merge_tables`` the TOML document wins key by key: its ``[campaign]`` keys
  override the JSON's, its ``[project]`` keys override the settings JSON's (Region and
  AccountId come from it); ``[project] ApplicationId`` defaults to the settings JSON's,
  then to the campaign's.

Errors are ``ConfigError`` naming the JSON file and the JSON key
(``campaign.json: CampaignResponse.Limits.Daily: must be between 0 and 100, got 500``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from dispatcher.campaign.treatments import Treatments
from dispatcher.config.reader import Reader
from dispatcher.config.tables import (
    CAMPAIGN_KEYS,
    read_campaign,
    read_hook,
    read_limits,
    read_quiet_time,
)
from dispatcher.errors import ConfigError

__all__ = ["campaign_table", "merge_tables", "settings_table"]

CAMPAIGN_READ_ONLY = frozenset(
    {"Arn", "CreationDate", "LastModifiedDate", "State", "DefaultState", "Version"}
)
SETTINGS_KEYS = frozenset({"ApplicationId", "CampaignHook", "Limits", "QuietTime"})
SETTINGS_DROPPED = frozenset(
    {"LastModifiedDate", "JourneyLimits", "CloudWatchMetricsEnabled", "EventTaggingEnabled"}
)
"""Read-only or journey/analytics-only settings fields (the last two are the PUT body's)."""


def _read(path: str | Path) -> Any:
    path = Path(path)
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", file=str(path)) from None


def _unwrap(
    data: Any, wrapper: str, looks_bare: frozenset[str], file: str
) -> tuple[dict[str, Any], str]:
    if isinstance(data, dict) and set(data) == {wrapper}:
        inner = data[wrapper]
        if not isinstance(inner, dict):
            raise ConfigError(f"expected an object, got {type(inner).__name__}", file=file,
                              key=wrapper)  # fmt: skip
        return inner, wrapper
    if isinstance(data, dict) and data.keys() & looks_bare:
        return data, ""
    raise ConfigError(f'expected {{"{wrapper}": {{...}}}} (or the bare object)', file=file)


def _clean(value: Any) -> Any:
    """Drop nulls and empty objects, recursively (TOML has no null)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _clean(v)
            if v is None or (isinstance(v, dict) and not v):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_clean(v) for v in value if v is not None]
    return value


def _clean_limits(table: dict[str, Any]) -> None:
    limits = table.get("Limits")
    if isinstance(limits, dict):
        for key in [k for k, v in limits.items() if v == 0 and not isinstance(v, bool)]:
            del limits[key]
        if not limits:
            del table["Limits"]


def _clean_quiet_time(table: dict[str, Any], key: str = "QuietTime") -> None:
    qt = table.get(key)
    if isinstance(qt, dict) and not (qt.get("Start") or qt.get("End")):
        del table[key]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def campaign_table(path: str | Path) -> dict[str, Any]:
    """``get-campaign`` output as a ``[campaign]`` table (validated; errors name the file)."""
    file = str(path)
    data, prefix = _unwrap(_read(path), "CampaignResponse", frozenset({"Id"}), file)
    for key in data:
        if key not in CAMPAIGN_KEYS:
            raise ConfigError("unknown campaign field", file=file, key=_join(prefix, key))
    table: dict[str, Any] = _clean(data)
    for key in CAMPAIGN_READ_ONLY:
        table.pop(key, None)
    _clean_limits(table)
    schedule = table.get("Schedule")
    if isinstance(schedule, dict):
        _clean_quiet_time(schedule)
    treatments = table.get("AdditionalTreatments")
    if isinstance(treatments, list):
        for item in treatments:
            if isinstance(item, dict):
                item.pop("State", None)
                if isinstance(item.get("Schedule"), dict):
                    _clean_quiet_time(item["Schedule"])
    # Validate with the config parser's own rules, naming the JSON file and keys.
    reader = Reader(file, table, prefix)
    campaign = read_campaign(reader)
    if isinstance(schedule, dict) and isinstance(schedule.get("QuietTime"), dict):
        read_quiet_time(Reader(file, schedule["QuietTime"], _join(prefix, "Schedule.QuietTime")))
    Treatments.from_campaign(campaign, file, key_prefix=prefix)
    return table


def settings_table(path: str | Path) -> dict[str, Any]:
    """``get-application-settings`` output as a partial ``[project]`` table."""
    file = str(path)
    data, prefix = _unwrap(
        _read(path), "ApplicationSettingsResource", SETTINGS_KEYS | SETTINGS_DROPPED, file
    )
    for key in data:
        if key not in SETTINGS_KEYS | SETTINGS_DROPPED:
            raise ConfigError("unknown application settings field", file=file,
                              key=_join(prefix, key))  # fmt: skip
    table: dict[str, Any] = _clean(data)
    for key in SETTINGS_DROPPED:
        table.pop(key, None)
    _clean_limits(table)
    _clean_quiet_time(table)
    reader = Reader(file, table, prefix)
    reader.get("ApplicationId", str)
    read_hook(reader.sub("CampaignHook"))
    read_limits(reader.sub("Limits"))
    read_quiet_time(reader.sub("QuietTime"))
    return table


def merge_tables(
    document: Mapping[str, Any],
    *,
    campaign: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The TOML document with the JSON tables laid under it (the TOML wins key by key)."""
    out = dict(document)
    toml_project = out.get("project")
    toml_campaign = out.get("campaign")
    if campaign is not None:
        out["campaign"] = {**campaign, **(toml_campaign if isinstance(toml_campaign, dict) else {})}
    if settings is not None or campaign is not None:
        project = dict(settings or {})
        if isinstance(toml_project, dict):
            project.update(toml_project)
        elif toml_project is not None:
            return out  # not a table: let the parser report it
        if not project.get("ApplicationId") and campaign and campaign.get("ApplicationId"):
            project["ApplicationId"] = campaign["ApplicationId"]
        out["project"] = project
    return out
