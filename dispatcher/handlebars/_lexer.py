"""Tokenizer: Handlebars.js 4's lexer (``handlebars.l``), rewritten as a hand scanner.

Text outside mustaches becomes CONTENT (``\\{{`` escapes a mustache, ``\\\\{{`` prints a
backslash before a real one); inside a mustache, whitespace separates tokens. Offsets
are kept so errors can name a line and column.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dispatcher.handlebars._errors import TemplateError


class Token(NamedTuple):
    """One token: its kind, its text (strings unquoted, segment literals unbracketed), where."""

    kind: str
    value: str
    start: int
    end: int


# Kinds of the tokens that open or close a mustache.
OPEN = "OPEN"  # {{ or {{& (value in .value: "{{" / "{{&")
OPEN_UNESCAPED = "OPEN_UNESCAPED"  # {{{
OPEN_BLOCK = "OPEN_BLOCK"  # {{#
OPEN_INLINE = "OPEN_INLINE"  # {{#*
OPEN_ENDBLOCK = "OPEN_ENDBLOCK"  # {{/
OPEN_INVERSE = "OPEN_INVERSE"  # {{^name
OPEN_INVERSE_CHAIN = "OPEN_INVERSE_CHAIN"  # {{else name
INVERSE = "INVERSE"  # {{^}} or {{else}}
OPEN_PARTIAL = "OPEN_PARTIAL"  # {{>
OPEN_PARTIAL_BLOCK = "OPEN_PARTIAL_BLOCK"  # {{#>
CLOSE = "CLOSE"
CLOSE_UNESCAPED = "CLOSE_UNESCAPED"
COMMENT = "COMMENT"
CONTENT = "CONTENT"
EOF = "EOF"

# An ID is anything but the control characters (handlebars.l), then a lookahead.
_ID = re.compile(r"""[^\s!"#%-,./;->@\[-\^`{-~]+(?=[=~}\s/.)\]|])""")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?=[~}\s)\]])")
_LITERAL = re.compile(r"(true|false|null|undefined)(?=[~}\s)\]])")
_DOT = re.compile(r"\.(?=[=~}\s/.)\]|])")
_SEGMENT_LITERAL = re.compile(r"\[((?:\\\]|[^\]])*)\]")
_STRING = {'"': re.compile(r'"((?:\\"|[^"])*)"'), "'": re.compile(r"'((?:\\'|[^'])*)'")}
_SPACE = re.compile(r"\s+")
_INVERSE_ALONE = re.compile(r"\{\{~?(?:\^|\s*else)\s*~?\}\}")
_ELSE_CHAIN = re.compile(r"\{\{~?\s*else(?=[\s~])")
_COMMENT_LONG = re.compile(r"\{\{~?!--.*?--~?\}\}", re.S)
_COMMENT_SHORT = re.compile(r"\{\{~?!.*?\}\}", re.S)


class Lexer:
    """Turns a template into tokens; ``error`` raises a TemplateError at an offset."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        self.tokens: list[Token] = []

    def error(self, message: str, offset: int) -> TemplateError:
        """A TemplateError located at ``offset``."""
        line, column = position(self.source, offset)
        return TemplateError(message, where=self.where, line=line, column=column)

    def run(self) -> list[Token]:
        """Tokenize the whole source."""
        src, i = self.source, 0
        while i < len(src):
            j = src.find("{{", i)
            if j < 0:
                self._content(src[i:], i, len(src))
                break
            if j - 2 >= i and src[j - 2 : j] == "\\\\":
                self._content(src[i : j - 1], i, j)  # \\{{ : one backslash, then a mustache
            elif j - 1 >= i and src[j - 1] == "\\":
                self._content(src[i : j - 1], i, j - 1)
                i = self._escaped(j)  # \{{ : the mustache is text
                continue
            else:
                self._content(src[i:j], i, j)
            i = self._mustache(j)
        self.tokens.append(Token(EOF, "", len(src), len(src)))
        return self.tokens

    def _content(self, text: str, start: int, end: int) -> None:
        if text:
            self.tokens.append(Token(CONTENT, text, start, end))

    def _escaped(self, j: int) -> int:
        # Text from the escaped "{{" up to the next "{{", "\{{" or "\\{{" (handlebars.l <emu>).
        src = self.source
        k = src.find("{{", j + 2)
        if k < 0:
            k = len(src)
        else:
            for back in (2, 1):
                if k - back >= j + 2 and src[k - back : k] == "\\" * back:
                    k -= back
                    break
        self._content(src[j:k], j, k)
        return k

    def _mustache(self, j: int) -> int:
        src = self.source
        p0 = j + 2 + src.startswith("~", j + 2)
        if src.startswith("!", p0):
            pattern = _COMMENT_LONG if src.startswith("!--", p0) else _COMMENT_SHORT
            m = pattern.match(src, j)
            if not m:
                raise self.error("unclosed comment", j)
            self.tokens.append(Token(COMMENT, m.group(), j, m.end()))
            return m.end()
        if src.find("}}", j + 2) < 0:
            raise self.error("unclosed mustache: expected '}}'", j)
        if src.startswith("{{{{", j):
            raise self.error("raw blocks ({{{{raw}}}}) are not supported", j)
        m = _INVERSE_ALONE.match(src, j)
        if m:
            self.tokens.append(Token(INVERSE, m.group(), j, m.end()))
            return m.end()
        kind, opener_end = self._opener(j, p0)
        self.tokens.append(Token(kind, src[j:opener_end], j, opener_end))
        return self._inside(opener_end, kind)

    def _opener(self, j: int, p: int) -> tuple[str, int]:
        src = self.source
        m = _ELSE_CHAIN.match(src, j)
        if m:
            return OPEN_INVERSE_CHAIN, m.end()
        for prefix, kind in (("#>", OPEN_PARTIAL_BLOCK), ("#*", OPEN_INLINE), (">", OPEN_PARTIAL),
                             ("#", OPEN_BLOCK), ("/", OPEN_ENDBLOCK), ("^", OPEN_INVERSE),
                             ("{", OPEN_UNESCAPED), ("&", OPEN)):  # fmt: skip
            if src.startswith(prefix, p):
                return kind, p + len(prefix)
        if src.startswith("*", p):
            raise self.error("decorators are not supported (only {{#* inline}})", j)
        return OPEN, p

    def _inside(self, p: int, opener: str) -> int:
        src, n = self.source, len(self.source)
        while True:
            m = _SPACE.match(src, p)
            if m:
                p = m.end()
            if p >= n:
                raise self.error("unclosed mustache: expected '}}'", p)
            if opener == OPEN_UNESCAPED and (src.startswith("}}}", p) or src.startswith("}~}}", p)):
                end = p + (4 if src[p + 1] == "~" else 3)
                self.tokens.append(Token(CLOSE_UNESCAPED, src[p:end], p, end))
                return end
            if src.startswith("}}", p) or src.startswith("~}}", p):
                end = p + (3 if src[p] == "~" else 2)
                if opener == OPEN_UNESCAPED:
                    raise self.error("expected '}}}' to close '{{{'", p)
                self.tokens.append(Token(CLOSE, src[p:end], p, end))
                return end
            p = self._one(p)

    def _one(self, p: int) -> int:
        src, c = self.source, self.source[p]
        simple = {"(": "OPEN_SEXPR", ")": "CLOSE_SEXPR", "=": "EQUALS", "@": "DATA"}
        if c in simple:
            return self._emit(simple[c], c, p, p + 1)
        if src.startswith("..", p):
            return self._emit("ID", "..", p, p + 2)
        m = _DOT.match(src, p)
        if m:
            return self._emit("ID", ".", p, p + 1)
        if src.startswith(".#", p):
            raise self.error("private paths (.#) are not supported", p)
        if c in "./":
            return self._emit("SEP", c, p, p + 1)
        if c in _STRING:
            m = _STRING[c].match(src, p)
            if not m:
                raise self.error("unterminated string", p)
            return self._emit("STRING", m.group(1).replace("\\" + c, c), p, m.end())
        if c == "[":
            m = _SEGMENT_LITERAL.match(src, p)
            if not m:
                raise self.error("unterminated segment literal: expected ']'", p)
            value = re.sub(r"\\([\\\]])", r"\1", m.group(1))
            return self._emit("LITERAL_ID", value, p, m.end())
        if src.startswith("as", p) and re.match(r"as\s+\|", src[p:]):
            raise self.error("block parameters (as |x|) are not supported", p)
        for pattern, kind in ((_LITERAL, "LITERAL"), (_NUMBER, "NUMBER"), (_ID, "ID")):
            m = pattern.match(src, p)
            if m:
                return self._emit(kind, m.group(), p, m.end())
        raise self.error(f"unexpected character {c!r}", p)

    def _emit(self, kind: str, value: str, start: int, end: int) -> int:
        self.tokens.append(Token(kind, value, start, end))
        return end


def position(source: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of ``offset`` in ``source``."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column
