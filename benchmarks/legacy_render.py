"""The message renderer as it landed before Handlebars: Mustache through pystache, with
its flat fast path. Kept as the "before" of ``bench_render.py`` and as the oracle of
``tests/templates/test_mustache_compat.py`` (today's templates must render the same
through the new engine). Not used by the dispatcher.
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
