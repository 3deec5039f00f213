"""Message variables: Pinpoint's ``{{Attributes.X}}`` placeholders rendered per endpoint.

Templates are Mustache (pystache, a maintained implementation of the spec). Pinpoint
templates are Handlebars; the variable syntax is the same (``{{a.b}}`` escaped in HTML,
``{{{a.b}}}`` raw), and Mustache sections (``{{#Attributes.X}}...{{/Attributes.X}}``)
work; Handlebars helpers (``{{#if}}``, ``{{upper}}``) do not.

Rules: a missing value renders empty; a multi-valued attribute renders its values
joined with ", "; values go in as they are in text (SMS, push, subject, text body) and
HTML-escaped in an email ``HtmlBody`` (triple braces insert raw HTML there).

Templates made only of text and variables (nearly all campaign messages) are compiled
from pystache's parse tree into a flat list of parts: rendering one is a few dict
lookups and a join, which matters at a million endpoints. Anything else is rendered by
pystache itself, with the same value rules.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import pystache
from pystache.parser import _EscapeNode, _LiteralNode

from dispatcher.errors import ConfigError


def to_text(value: Any) -> str:
    """How one value prints in a message."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(to_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Renderer(pystache.Renderer):  # type: ignore[misc]
    def str_coerce(self, val: Any) -> str:
        return to_text(val)


def _lookup(root: Mapping[str, Any], extra: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = extra.get(path[0], root.get(path[0]))
    for part in path[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class Template:
    """A compiled message template."""

    __slots__ = ("_parsed", "_parts", "_renderer", "source")

    def __init__(self, source: str, *, html_mode: bool = False, where: str = "template") -> None:
        self.source = source
        try:
            parsed = pystache.parse(source, raise_on_mismatch=True)
        except Exception as exc:  # pystache raises plain Exception/ParsingError
            raise ConfigError(f"invalid template: {exc}", key=where) from None
        escape: Callable[[str], str] = html.escape if html_mode else str
        self._renderer = _Renderer(escape=escape, missing_tags="ignore")
        self._parsed = parsed
        parts: list[str | tuple[tuple[str, ...], bool]] | None = []
        for node in parsed._parse_tree:
            if isinstance(node, str):
                parts.append(node)  # type: ignore[union-attr]
            elif isinstance(node, (_EscapeNode, _LiteralNode)):
                path = tuple(node.key.split(".")) if node.key != "." else ("",)
                parts.append((path, html_mode and isinstance(node, _EscapeNode)))  # type: ignore[union-attr]
            else:
                parts = None
                break
        self._parts = parts

    @property
    def is_static(self) -> bool:
        return self._parts is not None and all(isinstance(p, str) for p in self._parts)

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable paths the template prints (those of its flat form)."""
        if self._parts is None:
            return ()
        return tuple(dict.fromkeys(".".join(p[0]) for p in self._parts if not isinstance(p, str)))

    def render(
        self,
        definition: Mapping[str, Any],
        extra: Mapping[str, Any],
        missing: list[str] | None = None,
    ) -> str:
        """Render for one endpoint; ``extra`` holds fields outside the definition (Id).

        ``missing``, when given, receives the path of every variable that rendered empty.
        """
        parts = self._parts
        if parts is None:
            return str(self._renderer.render(self._parsed, definition, extra))
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = to_text(_lookup(definition, extra, part[0]))
                if not text and missing is not None:
                    missing.append(".".join(part[0]))
                out.append(html.escape(text) if part[1] else text)
        return "".join(out)


def compile_optional(
    source: Any, *, html_mode: bool = False, where: str = "template"
) -> Template | None:
    """Compile a template field that may be absent."""
    if source is None or source == "":
        return None
    if not isinstance(source, str):
        raise ConfigError("must be a string", key=where)
    return Template(source, html_mode=html_mode, where=where)


OVERRIDE_KEYS = ("TitleOverride", "BodyOverride")


def _override(definition: Mapping[str, Any], key: str) -> str | None:
    """A hook's TitleOverride/BodyOverride, top level or inside Attributes."""
    value = definition.get(key)
    if value is None:
        attrs = definition.get("Attributes")
        if isinstance(attrs, dict):
            value = attrs.get(key)
    if value is None:
        return None
    return to_text(value)


class Composer:
    """Builds one channel's message for an endpoint from the campaign's message object.

    Overrides returned by a hook are final text (not templates) and apply only to the
    channels where Pinpoint honoured them; never to EMAIL.
    """

    __slots__ = ("channel", "html", "overridable", "template", "text", "title", "variables")

    def __init__(
        self, channel: str, message: Mapping[str, Any], *, overridable: bool, where: str
    ) -> None:
        self.channel = channel
        self.template = message
        self.overridable = overridable
        self.title = compile_optional(message.get("Title"), where=f"{where}.Title")
        self.text = compile_optional(message.get("Body"), where=f"{where}.Body")
        self.html = compile_optional(
            message.get("HtmlBody"), html_mode=True, where=f"{where}.HtmlBody"
        )
        paths = [t.variables for t in (self.title, self.text, self.html) if t is not None]
        self.variables: tuple[str, ...] = tuple(dict.fromkeys(p for g in paths for p in g))
        """Every variable path the channel's templates print."""

    def compose(
        self,
        endpoint_id: str,
        definition: Mapping[str, Any],
        missing: list[str] | None = None,
    ) -> tuple[str | None, str | None, str | None]:
        """Return (title, body, html_body) for one endpoint (``missing``: see ``render``)."""
        extra = {"Id": endpoint_id}
        title = self.title.render(definition, extra, missing) if self.title else None
        body = self.text.render(definition, extra, missing) if self.text else None
        html_body = self.html.render(definition, extra, missing) if self.html else None
        if self.overridable:
            title = _override(definition, "TitleOverride") or title
            body = _override(definition, "BodyOverride") or body
        return title, body, html_body
