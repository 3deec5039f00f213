"""Parser: tokens to the syntax tree (Handlebars.js 4's ``handlebars.yy``, recursive descent)."""

from __future__ import annotations

from dispatcher.handlebars import _lexer as lx
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
    Strip,
    SubExpr,
)
from dispatcher.handlebars._errors import TemplateError
from dispatcher.handlebars._whitespace import apply_whitespace_control

_PROGRAM_END = {lx.OPEN_ENDBLOCK, lx.INVERSE, lx.OPEN_INVERSE_CHAIN, lx.EOF}
_EXPR_END = {lx.CLOSE, lx.CLOSE_UNESCAPED, "CLOSE_SEXPR"}
_LITERALS = {"true": True, "false": False, "null": None, "undefined": None}
_SEGMENT_KINDS = {"ID", "LITERAL_ID", "NUMBER", "LITERAL"}


def parse(source: str, where: str = "template") -> Program:
    """Parse ``source`` into a Program, whitespace control applied."""
    return _Parser(source, where).parse()


def _open_strip(token: lx.Token) -> bool:
    return token.value[2:3] == "~"


def _close_strip(token: lx.Token) -> bool:
    return token.value.endswith("~}}")


class _Parser:
    def __init__(self, source: str, where: str) -> None:
        self.lexer = lx.Lexer(source, where)
        self.source = source
        self.tokens = self.lexer.run()
        self.i = 0

    def error(self, message: str, offset: int) -> TemplateError:
        return self.lexer.error(message, offset)

    def peek(self, ahead: int = 0) -> lx.Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> lx.Token:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, *kinds: str, what: str) -> lx.Token:
        token = self.next()
        if token.kind not in kinds:
            found = "the end of the template" if token.kind == lx.EOF else repr(token.value)
            raise self.error(f"expected {what}, found {found}", token.start)
        return token

    # ---- statements ----------------------------------------------------------------------

    def parse(self) -> Program:
        program = self.program()
        token = self.peek()
        if token.kind == lx.OPEN_ENDBLOCK:
            raise self.error(
                f"{self._tag(token)} closes a block that was never opened", token.start
            )
        if token.kind != lx.EOF:
            raise self.error(f"{self._tag(token)} outside a block", token.start)
        return apply_whitespace_control(program)

    def _tag(self, token: lx.Token) -> str:
        end = self.source.find("}}", token.start)
        return self.source[token.start : end + 2 if end >= 0 else token.end]

    def program(self) -> Program:
        body: list[Statement] = []
        while self.peek().kind not in _PROGRAM_END:
            body.append(self.statement())
        return Program(body)

    def statement(self) -> Statement:
        token = self.next()
        kind = token.kind
        if kind == lx.CONTENT:
            return Content(token.value, token.value, token.start)
        if kind == lx.COMMENT:
            return Comment(Strip(_open_strip(token), token.value.endswith("~}}")), token.start)
        if kind in (lx.OPEN, lx.OPEN_UNESCAPED):
            return self.mustache(token)
        if kind in (lx.OPEN_BLOCK, lx.OPEN_INVERSE):
            return self.block(token)
        if kind == lx.OPEN_INLINE:
            return self.inline_partial(token)
        if kind == lx.OPEN_PARTIAL:
            return self.partial(token)
        if kind == lx.OPEN_PARTIAL_BLOCK:
            return self.partial_block(token)
        raise self.error(f"unexpected {token.value!r}", token.start)  # pragma: no cover

    def mustache(self, open_: lx.Token) -> Mustache:
        if self.peek().kind in _EXPR_END:
            raise self.error("empty mustache: expected an expression", self.peek().start)
        head = self.expr()
        params, hash_ = self.arguments()
        closer = lx.CLOSE_UNESCAPED if open_.kind == lx.OPEN_UNESCAPED else lx.CLOSE
        close = self.expect(closer, what="'}}}'" if closer == lx.CLOSE_UNESCAPED else "'}}'")
        escaped = open_.kind == lx.OPEN and not open_.value.endswith("&")
        strip = Strip(_open_strip(open_), _close_strip(close))
        return Mustache(head, params, hash_, escaped, strip, open_.start)

    def block(self, open_: lx.Token) -> Block:
        name = self.helper_name()
        params, hash_ = self.arguments()
        close = self.expect(lx.CLOSE, what="'}}'")
        open_strip = Strip(_open_strip(open_), _close_strip(close))
        program: Program | None = self.program()
        inverse: Program | None = None
        inverse_strip = Strip()
        token = self.peek()
        if token.kind == lx.OPEN_INVERSE_CHAIN:
            if open_.kind == lx.OPEN_INVERSE:
                raise self.error("{{else ...}} chains need a {{#block}}", token.start)
            inverse_strip, inverse = self.inverse_chain()
        elif token.kind == lx.INVERSE:
            self.next()
            inverse_strip = Strip(_open_strip(token), _close_strip(token))
            inverse = self.program()
        close_strip = self.close_block(name, open_)
        if inverse is not None and inverse.chained:
            chained = inverse.body[0]
            assert isinstance(chained, Block)
            self._last_in_chain(chained).close_strip = close_strip
        if open_.kind == lx.OPEN_INVERSE:
            program, inverse = inverse, program
        return Block(name, params, hash_, program, inverse, open_strip, close_strip, open_.start,
                     inverse_strip)  # fmt: skip

    @staticmethod
    def _last_in_chain(block: Block) -> Block:
        while block.inverse is not None and block.inverse.chained:
            nested = block.inverse.body[0]
            assert isinstance(nested, Block)
            block = nested
        return block

    def inverse_chain(self) -> tuple[Strip, Program]:
        open_ = self.next()
        name = self.helper_name()
        params, hash_ = self.arguments()
        close = self.expect(lx.CLOSE, what="'}}'")
        strip = Strip(_open_strip(open_), _close_strip(close))
        program = self.program()
        inverse, inverse_strip = None, Strip()
        token = self.peek()
        if token.kind == lx.OPEN_INVERSE_CHAIN:
            inverse_strip, inverse = self.inverse_chain()
        elif token.kind == lx.INVERSE:
            self.next()
            inverse_strip = Strip(_open_strip(token), _close_strip(token))
            inverse = self.program()
        block = Block(name, params, hash_, program, inverse, strip, Strip(), open_.start,
                      inverse_strip)  # fmt: skip
        return strip, Program([block], chained=True)

    def close_block(self, name: Path | Literal, open_: lx.Token) -> Strip:
        token = self.peek()
        if token.kind != lx.OPEN_ENDBLOCK:
            opened = self._tag(open_)
            raise self.error(f"{opened} is never closed", open_.start)
        self.next()
        close_name = self.helper_name()
        close = self.expect(lx.CLOSE, what="'}}'")
        if close_name.original != name.original:
            raise self.error(
                f"{{{{/{close_name.original}}}}} does not close {{{{#{name.original}}}}}",
                token.start,
            )
        return Strip(_open_strip(token), _close_strip(close))

    def inline_partial(self, open_: lx.Token) -> InlinePartial:
        token = self.next()
        if token.kind != "ID" or token.value != "inline":
            raise self.error("only the inline decorator ({{#* inline}}) is supported", token.start)
        name = self.expect("STRING", what="a partial name in quotes")
        close = self.expect(lx.CLOSE, what="'}}'")
        program = self.program()
        if self.peek().kind in (lx.INVERSE, lx.OPEN_INVERSE_CHAIN):
            raise self.error("{{else}} is not allowed in an inline partial", self.peek().start)
        close_strip = self.close_block(Path(["inline"], "inline", token.start), open_)
        return InlinePartial(name.value, program, Strip(_open_strip(open_), _close_strip(close)),
                             close_strip, open_.start)  # fmt: skip

    def partial(self, open_: lx.Token) -> Partial:
        name = self.partial_name()
        params, hash_ = self.arguments()
        if len(params) > 1:
            raise self.error("a partial takes at most one context argument", params[1].start)
        close = self.expect(lx.CLOSE, what="'}}'")
        strip = Strip(_open_strip(open_), _close_strip(close))
        return Partial(name, params[0] if params else None, hash_, strip, open_.start)

    def partial_block(self, open_: lx.Token) -> PartialBlock:
        start = self.peek().start
        partial = self.partial(open_)
        open_strip = partial.strip
        program = self.program()
        if self.peek().kind in (lx.INVERSE, lx.OPEN_INVERSE_CHAIN):
            raise self.error("{{else}} is not allowed in a partial block", self.peek().start)
        close_strip = self.close_block(Path([partial.name], partial.name, start), open_)
        return PartialBlock(partial, program, open_strip, close_strip, open_.start)

    def partial_name(self) -> str:
        token = self.peek()
        if token.kind == "OPEN_SEXPR":
            raise self.error("dynamic partials ({{> (expr)}}) are not supported", token.start)
        if token.kind == "STRING":
            self.next()
            return token.value
        path = self.helper_name()
        if not isinstance(path, Path) or path.data:
            raise self.error("expected a partial name", token.start)
        return path.original

    # ---- expressions ---------------------------------------------------------------------

    def arguments(self) -> tuple[list[Expr], list[tuple[str, Expr]]]:
        params: list[Expr] = []
        while self.peek().kind not in _EXPR_END and not self._at_hash():
            if self.peek().kind == lx.EOF:
                break
            params.append(self.expr())
        hash_: list[tuple[str, Expr]] = []
        while self._at_hash():
            key = self.next()
            self.next()
            hash_.append((key.value, self.expr()))
        return params, hash_

    def _at_hash(self) -> bool:
        return self.peek().kind in ("ID", "LITERAL_ID") and self.peek(1).kind == "EQUALS"

    def expr(self) -> Expr:
        token = self.peek()
        if token.kind == "OPEN_SEXPR":
            self.next()
            name = self.helper_name()
            if isinstance(name, Literal):  # `(false)` names a helper called "false"
                name = Path([name.original], name.original, name.start)
            params, hash_ = self.arguments()
            self.expect("CLOSE_SEXPR", what="')'")
            return SubExpr(name, params, hash_, token.start)
        return self.helper_name()

    def helper_name(self) -> Path | Literal:
        token = self.peek()
        if token.kind == "STRING":
            self.next()
            return Literal(token.value, self.source[token.start : token.end], token.start)
        if token.kind == "NUMBER":
            self.next()
            value = float(token.value) if "." in token.value else int(token.value)
            return Literal(value, token.value, token.start)
        if token.kind == "LITERAL":
            self.next()
            return Literal(_LITERALS[token.value], token.value, token.start)
        if token.kind == "DATA":
            self.next()
            return self.path(data=True, start=token.start)
        if token.kind in ("ID", "LITERAL_ID"):
            return self.path(data=False, start=token.start)
        found = "the end of the template" if token.kind == lx.EOF else repr(token.value)
        raise self.error(f"expected a name or a value, found {found}", token.start)

    def path(self, *, data: bool, start: int) -> Path:
        segments = [self.expect("ID", "LITERAL_ID", what="a name")]
        while self.peek().kind == "SEP" and self.peek(1).kind in _SEGMENT_KINDS:
            self.next()
            segments.append(self.next())
        parts: list[str] = []
        depth, local = 0, False
        for token in segments:
            special = token.kind == "ID" and token.value in ("..", ".", "this")
            if special:
                if parts:
                    original = self.source[start : token.end]
                    raise self.error(f"invalid path: {original}", start)
                local = True
                depth += token.value == ".."
            else:
                parts.append(token.value)
        return Path(parts, self.source[start : segments[-1].end], start, data, depth, local)
