"""A config document as ``Settings``: TOML (with Pinpoint JSON laid under it), validated
table by table, message templates merged into the campaign's messages."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dispatcher.config.model import Settings
from dispatcher.config.reader import Reader
from dispatcher.config.tables import (
    SECRET_KEYS,
    one_secret,
    read_campaign,
    read_channels,
    read_dispatch,
    read_functions,
    read_messages,
    read_project,
    resolve_path,
)
from dispatcher.errors import ConfigError
from dispatcher.segments.lines import (
    DEFAULT_MAX_RECORD_BYTES,
    MAX_MAX_RECORD_BYTES,
    MIN_MAX_RECORD_BYTES,
)

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
    root = Reader(file, data, "", origins)
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
    source = fmt = definition = None
    max_record_bytes: int | None = None
    if segment is not None:
        segment.no_unknown({"source", "format", "max_record_bytes", "definition"})
        max_record_bytes = segment.int_in(
            "max_record_bytes", MIN_MAX_RECORD_BYTES, MAX_MAX_RECORD_BYTES
        )
        source = segment.get("source", str)
        fmt = segment.get("format", str)
        if fmt is not None and fmt not in ("jsonl", "csv"):
            raise segment.error("format", f"must be 'jsonl' or 'csv', got {fmt!r}")
        if source and source != "-" and "://" not in source:
            source = str(resolve_path(source, base))
        definition = segment.get("definition", str)
        if definition is not None:
            if not definition.strip():
                raise segment.error("definition", "must name a get-segment JSON file")
            # Loaded (and checked) when a run starts: its errors name the file and key.
            definition = str(resolve_path(definition, base))
    webhook = root.sub("webhook")
    if webhook is not None:
        webhook.no_unknown({*SECRET_KEYS, "timeout"})
        one_secret(webhook)
    ledger = root.sub("ledger")
    if ledger is not None:
        ledger.no_unknown({"path", "dynamodb_table"})
        if ledger.get("path", str) and ledger.get("dynamodb_table", str):
            raise ledger.error("dynamodb_table", "give path or dynamodb_table, not both")
    ledger_table = dict(ledger.table) if ledger else {}
    if ledger_table.get("path"):
        ledger_table["path"] = str(resolve_path(ledger_table["path"], base))
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
        project=read_project(project),
        campaign=read_campaign(campaign),
        segment_source=source,
        segment_format=fmt,
        segment_definition=definition,
        segment_max_record_bytes=max_record_bytes or DEFAULT_MAX_RECORD_BYTES,
        functions=read_functions(root.sub("functions"), base),
        channels=read_channels(root.sub("channels")),
        dispatch=read_dispatch(root.sub("dispatch")),
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
    campaign: Reader, table: Reader | None, base: Path, files: Sequence[Path],
    notes: list[str],
) -> Reader:  # fmt: skip
    """The campaign table with its (and its treatments') templates merged into their
    MessageConfiguration (``dispatcher.templates`` has the rules)."""
    from dispatcher.config.templates import TemplateStore, apply_templates

    directory = None
    if table is not None:
        table.no_unknown({"dir"})
        value = table.get("dir", str)
        directory = resolve_path(value, base) if value else None
    data = dict(campaign.table)
    treatments = data.get("AdditionalTreatments")
    uses = [data.get("TemplateConfiguration")]
    if isinstance(treatments, list):
        uses += [t.get("TemplateConfiguration") for t in treatments if isinstance(t, Mapping)]
    if not any(isinstance(u, Mapping) and any(u.values()) for u in uses):
        return campaign
    store = TemplateStore(directory, tuple(files), check=_check_template)
    own = campaign.sub("MessageConfiguration")
    inline = read_messages(own)
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
    return Reader(campaign.file, data, campaign.prefix, campaign.origins)


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
        from dispatcher.config.pinpoint import campaign_table, merge_tables, settings_table

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
