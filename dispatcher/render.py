"""Message variables: each channel's message rendered per endpoint, as Pinpoint did.

Templates are Handlebars with Pinpoint's helpers (``dispatcher.handlebars``), compiled
once per run. Rules (the engine's, documented in ``docs/templates.md``): a missing value
renders the template's ``DefaultSubstitutions`` default, else nothing; a multi-valued
attribute renders its values joined with ", "; values are HTML-escaped in an email
``HtmlBody`` only (``{{{ }}}`` is raw there); text parts are never escaped.

A render that fails for one endpoint (a helper refusing its value; in strict mode, a
variable that rendered empty) raises ``RenderFailed`` for that endpoint alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher import handlebars
from dispatcher.errors import DispatchError

__all__ = ["Composer", "EmptyVariables", "RenderFailed", "compile_template", "to_text"]


def to_text(value: Any) -> str:
    """How one value prints in a message (hook overrides use it as final text)."""
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


class RenderFailed(DispatchError):
    """One endpoint's message could not be rendered; ``reason`` is its outcome's Reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def compile_template(
    source: Any, *, html: bool = False, where: str = "template", defaults: str | None = None
) -> handlebars.Template | None:
    """Compile a template field that may be absent (``ConfigError`` if it does not parse)."""
    if source is None or source == "":
        return None
    if not isinstance(source, str):
        from dispatcher.errors import ConfigError

        raise ConfigError("must be a string", key=where)
    return handlebars.compile(source, html=html, where=where, defaults=defaults)


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
    channels where Pinpoint honoured them; never to EMAIL. ``strict``: a variable that
    renders empty fails the endpoint (``[campaign] strict_variables``).
    """

    __slots__ = ("channel", "headers", "html", "overridable", "strict", "template", "text",
                 "title")  # fmt: skip

    def __init__(
        self, channel: str, message: Mapping[str, Any], *, overridable: bool, where: str,
        strict: bool = False,
    ) -> None:  # fmt: skip
        self.channel = channel
        self.template = message
        self.overridable = overridable
        self.strict = strict
        defaults = message.get("DefaultSubstitutions")
        defaults = defaults if isinstance(defaults, str) else None

        def part(name: str, *, html: bool = False) -> handlebars.Template | None:
            return compile_template(message.get(name), html=html, where=f"{where}.{name}",
                                    defaults=defaults)  # fmt: skip

        self.title = part("Title")
        self.text = part("Body")
        self.html = part("HtmlBody", html=True)
        # Email headers from a template may hold variables: rendered per endpoint.
        headers = message.get("Headers") if channel == "EMAIL" else None
        self.headers: list[tuple[str, handlebars.Template | None, str]] | None = None
        if isinstance(headers, list) and any("{{" in str(h.get("Value", "")) for h in headers
                                             if isinstance(h, Mapping)):  # fmt: skip
            self.headers = [
                (str(h["Name"]), part_of(str(h.get("Value", "")), f"{where}.Headers[{i}]",
                                         defaults), str(h.get("Value", "")))
                for i, h in enumerate(headers) if isinstance(h, Mapping) and "Name" in h
            ]  # fmt: skip

    def compose(
        self,
        endpoint_id: str,
        definition: Mapping[str, Any],
        missing: list[str] | None = None,
    ) -> tuple[str | None, str | None, str | None]:
        """Return (title, body, html_body) for one endpoint.

        ``missing``, when given, receives the path of every variable that rendered empty.
        Raises ``RenderFailed`` for this endpoint only.
        """
        if self.strict and missing is None:
            missing = []
        extra = {"Id": endpoint_id}
        try:
            title = self.title.render(definition, extra, missing) if self.title else None
            body = self.text.render(definition, extra, missing) if self.text else None
            html_body = self.html.render(definition, extra, missing) if self.html else None
        except handlebars.TemplateRenderError as exc:
            raise RenderFailed(f"message not rendered: {exc}") from None
        if self.strict and missing:
            raise RenderFailed(
                f"message variable {missing[0]} is empty (strict_variables): not sent"
            )
        if self.overridable:
            title = _override(definition, "TitleOverride") or title
            body = _override(definition, "BodyOverride") or body
        return title, body, html_body

    def render_headers(
        self, endpoint_id: str, definition: Mapping[str, Any]
    ) -> list[dict[str, str]] | None:
        """The email headers with their variables rendered (None: none have variables)."""
        if self.headers is None:
            return None
        extra = {"Id": endpoint_id}
        try:
            return [{"Name": name, "Value": t.render(definition, extra) if t else raw}
                    for name, t, raw in self.headers]  # fmt: skip
        except handlebars.TemplateRenderError as exc:
            raise RenderFailed(f"message header not rendered: {exc}") from None


def part_of(source: str, where: str, defaults: str | None) -> handlebars.Template | None:
    return compile_template(source, where=where, defaults=defaults) if "{{" in source else None


class EmptyVariables:
    """Which message variables rendered empty, and in how many of the messages whose
    templates print them (the messages of every route that reported the variable)."""

    def __init__(self) -> None:
        self.empty: dict[str, int] = {}
        self.messages: dict[int, int] = {}
        self.routes: dict[str, set[int]] = {}

    def count(self, composer: Composer, missing: list[str]) -> None:
        route = id(composer)
        self.messages[route] = self.messages.get(route, 0) + 1
        for path in set(missing):
            self.empty[path] = self.empty.get(path, 0) + 1
            self.routes.setdefault(path, set()).add(route)

    def merge(self, other: EmptyVariables) -> None:
        """Add the counts of another pass over the same routes (local-time waves)."""
        for path, n in other.empty.items():
            self.empty[path] = self.empty.get(path, 0) + n
            self.routes.setdefault(path, set()).update(other.routes[path])
        for route, n in other.messages.items():
            self.messages[route] = self.messages.get(route, 0) + n

    def report(self) -> list[str]:
        """One line per variable that was empty at least once, most often first."""
        ranked = sorted(self.empty.items(), key=lambda kv: (-kv[1], kv[0]))
        return [f"{path}: empty in {n} of "
                f"{sum(self.messages[r] for r in self.routes[path])} messages"
                for path, n in ranked]  # fmt: skip
