"""The syntax tree: Handlebars.js's AST node types, reduced to what the engine supports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ---- expressions -----------------------------------------------------------------------


@dataclass(slots=True)
class Path:
    """``a.b``, ``this``, ``../x``, ``@index``, ``[Last Name].[0]``.

    ``parts`` excludes ``this``/``.``/``..``; ``local`` paths (``this.x``, ``./x``,
    ``../x``) resolve in one context only, others up the context stack.
    """

    parts: list[str]
    original: str
    start: int
    data: bool = False
    depth: int = 0
    local: bool = False


@dataclass(slots=True)
class Literal:
    """A string, number, boolean, null or undefined literal; ``original`` as written."""

    value: Any
    original: str
    start: int


@dataclass(slots=True)
class SubExpr:
    """``(helper a b key=c)``."""

    name: Path
    params: list[Expr]
    hash: list[tuple[str, Expr]]
    start: int


Expr = Path | Literal | SubExpr

# ---- statements ------------------------------------------------------------------------


@dataclass(slots=True)
class Strip:
    """The ``~`` flags on the open (left) and close (right) side of one tag."""

    open: bool = False
    close: bool = False


@dataclass(slots=True)
class Content:
    """Literal text; ``value`` is trimmed by whitespace control, ``original`` is not."""

    value: str
    original: str
    start: int
    left_stripped: bool = False
    right_stripped: bool = False


@dataclass(slots=True)
class Comment:
    """``{{! ... }}``: renders nothing but takes part in whitespace control."""

    strip: Strip
    start: int


@dataclass(slots=True)
class Mustache:
    """``{{expr params hash}}``; ``escaped`` is False for ``{{{ }}}`` and ``{{& }}``."""

    head: Expr
    params: list[Expr]
    hash: list[tuple[str, Expr]]
    escaped: bool
    strip: Strip
    start: int


@dataclass(slots=True)
class Program:
    """A sequence of statements; ``chained`` marks an ``{{else if}}`` program."""

    body: list[Statement]
    chained: bool = False


@dataclass(slots=True)
class Block:
    """``{{#name params}}program{{else}}inverse{{/name}}`` (``{{^name}}`` swaps them)."""

    name: Path | Literal
    params: list[Expr]
    hash: list[tuple[str, Expr]]
    program: Program | None
    inverse: Program | None
    open_strip: Strip
    close_strip: Strip
    start: int
    inverse_strip: Strip = field(default_factory=Strip)


@dataclass(slots=True)
class Partial:
    """``{{> name [context] [key=value]}}``; ``indent`` is set for a standalone line."""

    name: str
    context: Expr | None
    hash: list[tuple[str, Expr]]
    strip: Strip
    start: int
    indent: str = ""


@dataclass(slots=True)
class PartialBlock:
    """``{{#> name}}fallback{{/name}}``: the fallback renders when ``name`` is not defined."""

    partial: Partial
    program: Program
    open_strip: Strip
    close_strip: Strip
    start: int


@dataclass(slots=True)
class InlinePartial:
    """``{{#* inline "name"}}...{{/inline}}``: defines a partial for its enclosing program."""

    name: str
    program: Program
    open_strip: Strip
    close_strip: Strip
    start: int


Statement = Content | Comment | Mustache | Block | Partial | PartialBlock | InlinePartial
