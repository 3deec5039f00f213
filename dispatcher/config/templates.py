"""Pinpoint message templates, from the files ``aws pinpoint get-*-template`` wrote.

A campaign (and each A/B treatment) may reference templates in its
``TemplateConfiguration`` (``EmailTemplate``, ``SMSTemplate``, ``PushTemplate``,
``VoiceTemplate``; each ``{"Name": ..., "Version": ...}``), as the Pinpoint console's
"choose an existing template" produced. The templates themselves come from files
holding the exact output of ``aws pinpoint get-email-template`` (``get-sms-template``,
``get-push-template``, ``get-voice-template``), wrapped (``{"EmailTemplateResponse":
{...}}``) or bare:

* ``[templates] dir = "templates/"`` (relative to the config file): one file per
  template and version, ``NAME.TYPE.json`` for the *active* version (what
  ``get-email-template --template-name NAME`` prints) and ``NAME.TYPE.vN.json`` for
  version N (``--version N``); TYPE is ``email``, ``sms``, ``push`` or ``voice``;
* ``--template-json FILE`` (repeatable): any file of that shape; its name, type and
  version are read from its content.

Versions: a reference with ``Version`` uses exactly that version (a ``--template-json``
file or ``NAME.TYPE.vN.json``, or ``NAME.TYPE.json`` if that is the version it holds);
without one it uses the active version (``NAME.TYPE.json``, or the one
``--template-json`` file of that template); ``"latest"`` the highest version found.

Templates and ``MessageConfiguration`` together: a template's non-empty content parts
win (email ``Subject``/``HtmlPart``/``TextPart``, SMS and voice ``Body``, push
``Title``/``Body``/``RawContent``...), an inline field fills a part the template leaves
empty, and settings templates do not have (``FromAddress``, ``OriginationNumber``,
``MessageType``, ``SenderId``...) always come from ``MessageConfiguration``. A push
template's channel block (``GCM``, ``APNS``, ``ADM``, ``Baidu``) is merged over its
``Default`` block field by field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dispatcher.errors import ConfigError

__all__ = ["TEMPLATE_TYPES", "Template", "TemplateStore", "apply_templates", "load_template"]

TEMPLATE_TYPES = {
    "EmailTemplate": ("EMAIL", "email", "EmailTemplateResponse"),
    "SMSTemplate": ("SMS", "sms", "SMSTemplateResponse"),
    "PushTemplate": ("PUSH", "push", "PushNotificationTemplateResponse"),
    "VoiceTemplate": ("VOICE", "voice", "VoiceTemplateResponse"),
}
"""TemplateConfiguration key -> (TemplateType, file name part, CLI response wrapper)."""

_WRAPPERS = {wrapper: kind for kind, _, wrapper in TEMPLATE_TYPES.values()}
_FILE_PART = {kind: part for kind, part, _ in TEMPLATE_TYPES.values()}
_PARTS = {
    "EMAIL": ("Subject", "HtmlPart", "TextPart"),
    "SMS": ("Body",),
    "VOICE": ("Body",),
    "PUSH": (),
}
_PUSH_BLOCKS = ("Default", "APNS", "GCM", "ADM", "Baidu")
_PUSH_FIELDS = ("Action", "Body", "Sound", "Title", "Url", "MediaUrl", "RawContent",
                "ImageIconUrl", "ImageUrl", "SmallImageIconUrl")  # fmt: skip
_VERSIONED = re.compile(r"^(?P<name>.+)\.(?P<type>email|sms|push|voice)(?:\.v(?P<v>\d+))?\.json$")

Check = Callable[[str, str, str], None]
"""Validates one template part: (source text, file, part name); raises ConfigError."""


@dataclass(frozen=True, slots=True)
class Template:
    """One template version, as read from a file."""

    name: str
    type: str
    version: str | None
    content: Mapping[str, Any]
    file: str

    @property
    def defaults(self) -> str | None:
        """``DefaultSubstitutions``: a JSON string of variable -> default value."""
        value = self.content.get("DefaultSubstitutions")
        return value if isinstance(value, str) and value.strip() else None


def load_template(path: Path, check: Check | None = None) -> Template:
    """Read one get-*-template output file; ConfigError naming the file if it is not one."""
    file = str(path)
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError("template file not found", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read template: {exc.strerror}", file=file) from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", file=file) from None
    kind = None
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in _WRAPPERS:
        wrapper = next(iter(data))
        kind, data = _WRAPPERS[wrapper], data[wrapper]
    if not isinstance(data, dict) or not isinstance(data.get("TemplateName"), str):
        raise ConfigError(
            "not a Pinpoint template: expected the output of `aws pinpoint get-email-template` "
            '(or get-sms/push/voice-template): {"EmailTemplateResponse": {"TemplateName": ...}}',
            file=file,
        )
    declared = data.get("TemplateType")
    kind = kind or declared
    if kind not in _PARTS or (declared is not None and declared != kind):
        raise ConfigError(f"TemplateType must be EMAIL, SMS, PUSH or VOICE, got {declared!r}",
                          file=file, key="TemplateType")  # fmt: skip
    version = data.get("Version")
    if version is not None and not (isinstance(version, str) and version.isdigit()):
        raise ConfigError(f"Version must be a string holding a number, got {version!r}",
                          file=file, key="Version")  # fmt: skip
    template = Template(data["TemplateName"], kind, version, data, file)
    _validate(template, check)
    return template


def _validate(t: Template, check: Check | None) -> None:
    content = t.content
    parts: list[tuple[str, Any]] = [(p, content.get(p)) for p in _PARTS[t.type]]
    if t.type == "PUSH":
        for block in _PUSH_BLOCKS:
            value = content.get(block)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError("must be an object", file=t.file, key=block)
            parts += [(f"{block}.{f}", value.get(f)) for f in ("Title", "Body", "RawContent",
                                                                "Url")]  # fmt: skip
    if t.type == "EMAIL":
        headers = content.get("Headers") or []
        if not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("Name"), str) for h in headers
        ):
            raise ConfigError("must be a list of {Name, Value}", file=t.file, key="Headers")
        parts += [(f"Headers[{i}].Value", h.get("Value")) for i, h in enumerate(headers)]
    defaults = content.get("DefaultSubstitutions")
    if defaults is not None:
        try:
            decoded = orjson.loads(defaults) if isinstance(defaults, str) else None
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"is not JSON: {exc}", file=t.file,
                              key="DefaultSubstitutions") from None  # fmt: skip
        if not isinstance(decoded, dict):
            raise ConfigError("must be a JSON string of an object", file=t.file,
                              key="DefaultSubstitutions")  # fmt: skip
    for part, value in parts:
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, got {type(value).__name__}", file=t.file,
                              key=part)  # fmt: skip
        if check is not None:
            check(value, t.file, part)


@dataclass(slots=True)
class TemplateStore:
    """Where a run's templates come from: a directory and explicit files."""

    directory: Path | None = None
    files: Iterable[Path] = ()
    check: Check | None = None
    _explicit: dict[tuple[str, str], list[Template]] = field(default_factory=dict)
    _cache: dict[Path, Template] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in self.files:
            t = self._load(path)
            self._explicit.setdefault((t.type, t.name), []).append(t)

    def _load(self, path: Path) -> Template:
        if path not in self._cache:
            self._cache[path] = load_template(path, self.check)
        return self._cache[path]

    def resolve(
        self, kind: str, name: str, version: str | None, *, file: str, key: str
    ) -> Template:
        """The template version a reference means; ConfigError naming ``key`` and the
        file it looked for when there is none."""
        wanted = None if version in (None, "") else str(version)
        found = self._explicit.get((kind, name), [])
        if self.directory is not None:
            found = found + self._from_directory(kind, name, wanted)
        if wanted == "latest":
            versioned = [t for t in found if t.version is not None]
            if versioned:
                return max(versioned, key=lambda t: int(t.version or 0))
        elif wanted is not None:
            for t in found:
                if t.version == wanted:
                    return t
        else:
            active = [t for t in found if Path(t.file).name == f"{name}.{_FILE_PART[kind]}.json"]
            if active:
                return active[0]
            if len({t.version for t in found}) == 1 and found:
                return found[0]
        looked = self._looked_for(kind, name, wanted)
        which = {None: "active version", "latest": "latest version"}.get(
            wanted, f"version {wanted}")  # fmt: skip
        raise ConfigError(
            f"template {name!r} ({kind}, {which}) not found: looked for {looked}", file=file,
            key=key,
        )  # fmt: skip

    def _from_directory(self, kind: str, name: str, wanted: str | None) -> list[Template]:
        assert self.directory is not None
        part = _FILE_PART[kind]
        candidates = [self.directory / f"{name}.{part}.json"]
        if wanted == "latest":
            candidates += sorted(self.directory.glob(f"{glob_escape(name)}.{part}.v*.json"))
        elif wanted is not None:
            candidates.append(self.directory / f"{name}.{part}.v{wanted}.json")
        out = []
        for path in candidates:
            match = _VERSIONED.match(path.name)
            if path.is_file() and match is not None and match["name"] == name:
                t = self._load(path)
                if t.type != kind or t.name != name:
                    raise ConfigError(f"holds {t.type} template {t.name!r}, not {kind} {name!r}",
                                      file=str(path))  # fmt: skip
                out.append(t)
        return out

    def _looked_for(self, kind: str, name: str, wanted: str | None) -> str:
        where = []
        if self.directory is not None:
            part = _FILE_PART[kind]
            suffix = f".v{wanted}" if wanted not in (None, "latest") else ""
            if wanted == "latest":
                where.append(str(self.directory / f"{name}.{part}.v*.json"))
            where.append(str(self.directory / f"{name}.{part}{suffix}.json"))
        where.append("--template-json files" if self.files else "no --template-json files")
        if self.directory is None:
            where.append("no [templates] dir")
        return ", ".join(where)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# -- merging templates into a MessageConfiguration --------------------------------------


def apply_templates(
    message_configuration: Mapping[str, Any],
    template_configuration: Mapping[str, Any] | None,
    store: TemplateStore,
    *,
    file: str,
    key: str,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The MessageConfiguration with the referenced templates' content merged in.

    ``key`` is the config key of the TemplateConfiguration (for errors); ``warn`` hears
    once about every content field given both inline and by a template.
    """
    merged = {k: dict(v) if isinstance(v, Mapping) else v
              for k, v in message_configuration.items()}  # fmt: skip
    for ref_key, ref in (template_configuration or {}).items():
        where = f"{key}.{ref_key}"
        if ref_key == "InAppTemplate":
            if ref:
                raise ConfigError("in-app templates are not sent by campaigns here", file=file,
                                  key=where)  # fmt: skip
            continue
        if ref_key not in TEMPLATE_TYPES:
            raise ConfigError(f"unknown template kind; use one of {', '.join(TEMPLATE_TYPES)}",
                              file=file, key=where)  # fmt: skip
        if not ref:
            continue
        if not isinstance(ref, Mapping) or not isinstance(ref.get("Name"), str):
            raise ConfigError('must be {"Name": "...", "Version": "..."}', file=file, key=where)
        version = ref.get("Version")
        if version is not None and not isinstance(version, str | int):
            raise ConfigError("Version must be a string", file=file, key=f"{where}.Version")
        kind = TEMPLATE_TYPES[ref_key][0]
        template = store.resolve(kind, ref["Name"], None if version is None else str(version),
                                 file=file, key=where)  # fmt: skip
        for message_key, content in _messages(template):
            own = merged.get(message_key) or {}
            merged[message_key] = _merge(own, content, f"{where} ({template.file})", message_key,
                                         warn)  # fmt: skip
    return merged


def _messages(t: Template) -> list[tuple[str, dict[str, Any]]]:
    """(campaign message key, content fields) the template provides."""
    c = t.content
    defaults = {"DefaultSubstitutions": t.defaults} if t.defaults else {}
    if t.type == "EMAIL":
        fields = {"Title": c.get("Subject"), "HtmlBody": c.get("HtmlPart"),
                  "Body": c.get("TextPart")}  # fmt: skip
        headers = c.get("Headers")
        extra = {"Headers": headers} if headers else {}
        return [("EmailMessage", {**_present(fields), **extra, **defaults})]
    if t.type in ("SMS", "VOICE"):
        fields = {"Body": c.get("Body")}
        if t.type == "VOICE":
            fields |= {"LanguageCode": c.get("LanguageCode"), "VoiceId": c.get("VoiceId")}
        message_key = "SMSMessage" if t.type == "SMS" else "VoiceMessage"
        return [(message_key, {**_present(fields), **defaults})]
    default = c.get("Default") or {}
    out = [("DefaultMessage", {**_push_fields(default), **defaults})]
    for block, message_key in (("APNS", "APNSMessage"), ("GCM", "GCMMessage"),
                               ("ADM", "ADMMessage"), ("Baidu", "BaiduMessage")):  # fmt: skip
        own = c.get(block)
        if own:
            # Field by field: the channel block over the Default block.
            out.append((message_key, {**_push_fields(default), **_push_fields(own), **defaults}))
    return out


def _push_fields(block: Mapping[str, Any]) -> dict[str, Any]:
    fields = {f: block.get(f) for f in _PUSH_FIELDS}
    # The campaign Message shape spells the small icon ImageSmallIconUrl.
    fields["ImageSmallIconUrl"] = fields.pop("SmallImageIconUrl")
    return _present(fields)


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v not in (None, "")}


_CONTENT = frozenset({"Title", "Body", "HtmlBody", "RawContent"})


def _merge(
    inline: Mapping[str, Any], template: Mapping[str, Any], where: str, message_key: str,
    warn: Callable[[str], None] | None,
) -> dict[str, Any]:  # fmt: skip
    merged = dict(inline)
    for name, value in template.items():
        if name in _CONTENT and inline.get(name) not in (None, "") and inline[name] != value:
            if warn is not None:
                warn(f"{where}: {message_key}.{name} is given inline and by the template; "
                     "the template's is used")  # fmt: skip
        if name == "Headers" and inline.get("Headers"):
            continue  # the campaign's own headers stay (settings come from it)
        merged[name] = value
    return merged

