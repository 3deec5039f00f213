"""``compile()`` and the compiled Template, with its fast path.

Nearly every campaign message is text and variables only. Such a template is kept as a
flat list of parts and rendered by one loop with the lookups inlined: no frames, no
closures, a few dict lookups and a join (it must cost no more than the Mustache renderer
it replaces). Anything else runs the compiled closures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.handlebars._ast import Comment, Content, Mustache, Path, Program
from dispatcher.handlebars._compiler import Compiler
from dispatcher.handlebars._defaults import default_for, load_defaults
from dispatcher.handlebars._errors import HelperError, TemplateRenderError
from dispatcher.handlebars._lexer import position
from dispatcher.handlebars._parser import parse
from dispatcher.handlebars._registry import HelperRegistry, ProgramFn
from dispatcher.handlebars._runtime import Frame, Segment, State, escape_html, segment, to_text

# (first key, further segments, HTML-escape, default text, path as written, offset)
_Var = tuple[str, tuple[Segment, ...], bool, str, str, int]


class Template:
    """A compiled template: ``render`` it once per endpoint.

    ``truncated`` counts the ``#each`` blocks cut at Pinpoint's 15-item limit over all
    renders so far.
    """

    __slots__ = ("_flat", "_fn", "html", "source", "truncated", "where")

    def __init__(
        self, source: str, *, html: bool, where: str, flat: list[str | _Var] | None,
        fn: ProgramFn,
    ) -> None:  # fmt: skip
        self.source = source
        self.html = html
        self.where = where
        self.truncated = 0
        self._flat = flat
        self._fn = fn

    def __repr__(self) -> str:
        kind = "flat" if self._flat is not None else "compiled"
        return f"<Template {self.where!r} {kind} html={self.html} truncated={self.truncated}>"

    @property
    def is_static(self) -> bool:
        """True when the template has no variables at all."""
        return self._flat is not None and all(isinstance(p, str) for p in self._flat)

    def render(
        self,
        context: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
        missing: list[str] | None = None,
    ) -> str:
        """Render for one context (an endpoint definition).

        ``extra`` holds fields outside the context (``Id``), looked up first at the top
        level. When ``missing`` is a list, the path (as written) of every printed variable
        that rendered empty after defaults is appended to it. Raises
        :class:`TemplateRenderError` when a helper refuses its input.
        """
        if self._flat is None:
            state = State(context, extra, missing)
            out = self._fn(Frame(context, None, {}, state))
            self.truncated += state.truncated
            return out
        out_parts: list[str] = []
        append = out_parts.append
        for part in self._flat:
            if isinstance(part, str):
                append(part)
                continue
            key, rest, escape, default, original, offset = part
            v: Any = extra[key] if extra and key in extra else context.get(key)
            for name, index in rest:
                cls = v.__class__
                if cls is dict:
                    v = v.get(name)
                elif index is not None and (cls is list or cls is tuple):
                    v = v[index] if index < len(v) else None
                elif isinstance(v, Mapping):
                    v = v.get(name)
                else:
                    v = None
                    break
            cls = v.__class__
            if cls is str:
                text = v
            elif cls is list and len(v) == 1 and v[0].__class__ is str:
                text = v[0]
            else:
                try:
                    text = to_text(v)
                except HelperError as exc:
                    line, column = position(self.source, offset)
                    raise TemplateRenderError(str(exc), where=self.where, line=line,
                                              column=column) from None  # fmt: skip
            if not text:
                text = default
                if not text and missing is not None:
                    missing.append(original)
            append(escape_html(text) if escape else text)
        return "".join(out_parts)


def compile(
    source: str,
    *,
    html: bool,
    defaults: Mapping[str, Any] | str | None = None,
    where: str = "template",
    helpers: HelperRegistry | None = None,
) -> Template:
    """Compile a Handlebars template once, for many renders.

    ``html``: HTML-escape ``{{ }}`` output (email HtmlPart); ``{{{ }}}``/``{{& }}`` are
    raw either way. ``defaults``: DefaultSubstitutions, a mapping or Pinpoint's JSON
    string. ``where`` names the template and part in errors. ``helpers``: the registry
    (Pinpoint's helpers when omitted). Raises :class:`TemplateError` with the position.
    """
    if helpers is None:
        from dispatcher.handlebars.helpers import PINPOINT_HELPERS

        helpers = PINPOINT_HELPERS
    table = load_defaults(defaults, where)
    program = parse(source, where)
    compiler = Compiler(source, html=html, where=where, helpers=helpers, defaults=table)
    fn = compiler.program(program)
    flat = _flatten(program, compiler, html, table)
    return Template(source, html=html, where=where, flat=flat, fn=fn)


def _flatten(
    program: Program, compiler: Compiler, html: bool, defaults: Mapping[str, Any]
) -> list[str | _Var] | None:
    """The flat parts of a text-and-variables template, or None for anything else."""
    parts: list[str | _Var] = []
    for node in program.body:
        if isinstance(node, Content):
            if node.value:
                parts.append(node.value)
            continue
        if isinstance(node, Comment):
            continue
        if not isinstance(node, Mustache) or node.params or node.hash:
            return None
        head = node.head
        if not isinstance(head, Path) or head.data or head.local or not head.parts:
            return None
        if compiler.helper_for(head) is not None:
            return None
        default = default_for(defaults, head)
        try:
            default_text = to_text(default)
        except HelperError:
            return None  # an object default: let the general path report it per render
        segments = tuple(segment(p) for p in head.parts)
        escape = html and node.escaped
        parts.append((head.parts[0], segments[1:], escape, default_text, head.original,
                      node.start))  # fmt: skip
    return parts
