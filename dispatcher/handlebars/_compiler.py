"""Compiler: the syntax tree to nested Python closures, built once per template.

Every statement becomes either a constant string or a function of the current frame;
a program joins them. Helper names, arities, partial names and defaults are all
settled here, so a render only looks values up and calls helpers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from dispatcher.handlebars import _ops as ops
from dispatcher.handlebars._ast import (
    Block,
    Comment,
    Content,
    Expr,
    InlinePartial,
    Literal,
    Mustache,
    Partial,
    PartialBlock,
    Path,
    Program,
    Statement,
    SubExpr,
)
from dispatcher.handlebars._defaults import default_for
from dispatcher.handlebars._errors import HelperError, TemplateError, TemplateRenderError
from dispatcher.handlebars._lexer import position
from dispatcher.handlebars._ops import Getter
from dispatcher.handlebars._registry import UNKNOWN, Helper, HelperRegistry, Options, ProgramFn
from dispatcher.handlebars._runtime import (
    Frame,
    escape_html,
    is_blank,
    to_text,
)

MAX_PARTIAL_DEPTH = 32
# What a helper may raise on bad input: it fails that render, never the run.
_HELPER_FAILURES = (HelperError, ValueError, TypeError, ArithmeticError, LookupError)


class _Cell:
    """An inline partial's compiled body, filled after its name is known (recursion)."""

    __slots__ = ("fn",)

    def __init__(self) -> None:
        self.fn: ProgramFn = ops.empty


class Compiler:
    """Compiles one template source with a helper registry and defaults."""

    def __init__(
        self, source: str, *, html: bool, where: str, helpers: HelperRegistry,
        defaults: Mapping[str, Any],
    ) -> None:  # fmt: skip
        self.source = source
        self.html = html
        self.where = where
        self.helpers = helpers
        self.defaults = defaults
        self.scopes: list[dict[str, _Cell]] = []

    # ---- errors ----------------------------------------------------------------------

    def error(self, message: str, offset: int) -> TemplateError:
        """A compile error at ``offset``."""
        line, column = position(self.source, offset)
        return TemplateError(message, where=self.where, line=line, column=column)

    def render_error(self, message: str, offset: int) -> TemplateRenderError:
        """A render error for the expression at ``offset``."""
        line, column = position(self.source, offset)
        return TemplateRenderError(message, where=self.where, line=line, column=column)

    def unknown_helper(self, name: Path | Literal) -> TemplateError:
        """The error for a call to something that is not a helper, with a suggestion."""
        text = name.original
        close = difflib.get_close_matches(text, list(self.helpers), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return self.error(f"unknown helper '{text}'{hint}", name.start)

    # ---- programs and statements -------------------------------------------------------

    def program(self, program: Program | None) -> ProgramFn:
        """Compile a program; its inline partials are visible to all of it (and nested)."""
        if program is None:
            return ops.empty
        scope = {s.name: _Cell() for s in program.body if isinstance(s, InlinePartial)}
        if scope:
            self.scopes.append(scope)
        try:
            for statement in program.body:
                if isinstance(statement, InlinePartial):
                    scope[statement.name].fn = self.program(statement.program)
            return ops.join([self.statement(s) for s in program.body])
        finally:
            if scope:
                self.scopes.pop()

    def statement(self, node: Statement) -> str | ProgramFn:
        """Compile one statement to text or a render function."""
        if isinstance(node, Content):
            return node.value
        if isinstance(node, (Comment, InlinePartial)):
            return ""
        if isinstance(node, Mustache):
            return self.mustache(node)
        if isinstance(node, Block):
            return self.block(node)
        if isinstance(node, PartialBlock):
            return self.partial(node.partial, fallback=self.program(node.program))
        return self.partial(node, fallback=None)

    def helper_for(self, name: Expr) -> Helper | None:
        """The helper a bare single-segment name refers to, if any."""
        if isinstance(name, Path) and not name.data and not name.local and len(name.parts) == 1:
            return self.helpers.get(name.parts[0])
        return None

    @staticmethod
    def literal_as_path(name: Path | Literal) -> Path | Literal:
        """``{{"foo bar"}}`` / ``{{12}}`` without arguments look the key up (Handlebars.js)."""
        if isinstance(name, Literal):
            key = name.value if isinstance(name.value, str) else name.original
            return Path([key], name.original, name.start)
        return name

    def mustache(self, node: Mustache) -> ProgramFn:
        """``{{expr}}``: a helper call or a path, printed (escaped in HTML unless raw)."""
        if isinstance(node.head, SubExpr):
            raise self.error("a mustache cannot start with a subexpression", node.head.start)
        head = node.head
        if not node.params and not node.hash:
            head = self.literal_as_path(head)
        helper = self.helper_for(head)
        if helper is not None:
            value = self.call(helper, head, node.params, node.hash, report=True)
        elif node.params or node.hash or isinstance(head, Literal):
            raise self.unknown_helper(head)
        else:
            value = self.path(head, report=True)
        return self.printer(value, escape=self.html and node.escaped, offset=node.start)

    def printer(self, value: Getter, *, escape: bool, offset: int) -> ProgramFn:
        """Print a value by the dispatcher's value rules."""

        def as_text(v: Any) -> str:
            try:
                return to_text(v)
            except HelperError as exc:
                raise self.render_error(str(exc), offset) from None

        def run(frame: Frame) -> str:
            v = value(frame)
            text: str = v if type(v) is str else as_text(v)
            return escape_html(text) if escape else text

        return run

    def block(self, node: Block) -> ProgramFn:
        """``{{#name}}``: a block helper, else a Mustache section over a value."""
        name = self.literal_as_path(node.name) if not node.params else node.name
        program, inverse = self.program(node.program), self.program(node.inverse)
        helper = self.helper_for(name)
        if helper is not None:
            call = self.call(helper, name, node.params, node.hash, program=program,
                             inverse=inverse, report=False)  # fmt: skip
            return self.printer(call, escape=False, offset=node.start)  # block output: no escape
        if node.params or node.hash or not isinstance(name, Path):
            raise self.unknown_helper(name)
        return ops.section(self.path(name, report=False), program, inverse)

    def partial(self, node: Partial, *, fallback: ProgramFn | None) -> ProgramFn:
        """``{{> name}}``: an inline partial in scope, in the given context and hash."""
        cell = next((s[node.name] for s in reversed(self.scopes) if node.name in s), None)
        if cell is None:
            if fallback is None:
                define = f'{{{{#* inline "{node.name}"}}}}'
                raise self.error(
                    f"unknown partial '{node.name}' (define it with {define})", node.start
                )
            cell = _Cell()
            cell.fn = fallback
        context = self.expr(node.context, report=False) if node.context is not None else None
        pairs = [(k, self.expr(v, report=False)) for k, v in node.hash]
        indent, offset = node.indent, node.start

        def run(frame: Frame) -> str:
            state = frame.state
            if state.depth >= MAX_PARTIAL_DEPTH:
                raise self.render_error(f"partials nested over {MAX_PARTIAL_DEPTH} deep", offset)
            if context is not None or pairs:
                this = context(frame) if context is not None else frame.this
                if pairs:
                    this = {**(this if isinstance(this, Mapping) else {}),
                            **{k: g(frame) for k, g in pairs}}  # fmt: skip
                frame = frame.child(this)
            state.depth += 1
            try:
                out = cell.fn(frame)
            finally:
                state.depth -= 1
            return ops.indent(out, indent) if indent else out

        return run

    # ---- expressions -----------------------------------------------------------------

    def call(
        self, helper: Helper, name: Path | Literal, params: list[Expr],
        hash_: list[tuple[str, Expr]], *, program: ProgramFn | None = None,
        inverse: ProgramFn | None = None, report: bool,
    ) -> Getter:  # fmt: skip
        """A helper call, checked against the helper's declaration now."""
        self.check_call(helper, name, params, hash_, block=program is not None)
        prints = report and helper.prints
        # Handlebars.java with stringParams (Pinpoint's `{{inflect 3 apple apples}}` needs
        # it): an unresolved bare path after the first argument stands for its own name.
        args = [self.expr(p, report=prints and not (i and _plain(p)), as_text=i > 0)
                for i, p in enumerate(params)]  # fmt: skip
        fallback = helper.text_fallback
        pairs = [(k, self.expr(v, report=prints and not (k in fallback and _plain(v)),
                               as_text=k in fallback))
                 for k, v in hash_]  # fmt: skip
        fn, label, offset = helper.fn, helper.name, name.start
        block_inverse = inverse if program is not None else None

        collect = ops.collector(args)

        def run(frame: Frame) -> Any:
            hashed = {k: g(frame) for k, g in pairs} if pairs else {}
            try:
                return fn(collect(frame), Options(hashed, frame, program, block_inverse))
            except _HELPER_FAILURES as exc:
                raise self.render_error(f"{label}: {exc}", offset) from None

        return run

    def check_call(
        self, helper: Helper, name: Path | Literal, params: list[Expr],
        hash_: list[tuple[str, Expr]], *, block: bool,
    ) -> None:  # fmt: skip
        """Compile-time checks: block/inline use, argument count, required hash keys."""
        label = helper.name
        if block and not helper.block:
            raise self.error(
                f"'{label}' is not a block helper: use {{{{{label} ...}}}}", name.start
            )
        if not block and not helper.inline:
            usage = f"{{{{#{label} ...}}}}...{{{{/{label}}}}}"
            raise self.error(f"'{label}' is a block helper: use {usage}", name.start)
        n, low, high = len(params), helper.min_args, helper.max_args
        if n < low or (high is not None and n > high):
            want = (f"{low}" if low == high else f"at least {low}" if high is None
                    else f"{low} to {high}")  # fmt: skip
            noun = "argument" if want == "1" else "arguments"
            at = params[high].start if high is not None and n > high else name.start
            raise self.error(f"'{label}' takes {want} {noun}, got {n}", at)
        given = {k for k, _ in hash_}
        for key in sorted(helper.required_hash - given):
            raise self.error(f"'{label}' needs {key}=", name.start)
        if helper.check is not None:
            literals = [p.value if isinstance(p, Literal) else UNKNOWN for p in params]
            hashed = {k: v.value if isinstance(v, Literal) else UNKNOWN for k, v in hash_}
            try:
                helper.check(literals, hashed)
            except HelperError as exc:
                raise self.error(f"{label}: {exc}", name.start) from None

    def expr(self, node: Expr, *, report: bool, as_text: bool = False) -> Getter:
        """An argument: a literal, a subexpression or a path."""
        if isinstance(node, Literal):
            value = node.value
            return lambda frame: value
        if isinstance(node, SubExpr):
            helper = self.helper_for(node.name)
            if helper is None:
                raise self.unknown_helper(node.name)
            return self.call(helper, node.name, node.params, node.hash, report=report)
        getter = self.path(node, report=report)
        if as_text and _plain(node):
            text = node.original

            def or_text(frame: Frame) -> Any:
                v = getter(frame)
                return text if v is None else v

            return or_text
        return getter

    def path(self, node: Path, *, report: bool) -> Getter:
        """A path lookup, then its default, then the missing-variable report."""
        getter = ops.lookup(node)
        default = default_for(self.defaults, node)
        if default is not None:
            base = getter

            def with_default(frame: Frame) -> Any:
                v = base(frame)
                return default if is_blank(v) else v

            getter = with_default
        if report and not node.data:
            looked_up, original = getter, node.original

            def reported(frame: Frame) -> Any:
                v = looked_up(frame)
                missing = frame.state.missing
                if missing is not None and is_blank(v):
                    missing.append(original)
                return v

            getter = reported
        return getter


def _plain(node: Expr) -> bool:
    return isinstance(node, Path) and not node.data and not node.local and bool(node.parts)
