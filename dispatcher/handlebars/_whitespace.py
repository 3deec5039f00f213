"""Whitespace control: ``~`` stripping and standalone lines, ported from Handlebars.js.

A block tag, ``{{else}}``, comment or partial alone on its line takes the line with it
(as Mustache and Handlebars both do), so templates can be indented without the
indentation leaking into messages. This mirrors ``whitespace-control.js`` step by step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dispatcher.handlebars._ast import (
    Block,
    Comment,
    Content,
    InlinePartial,
    Mustache,
    Partial,
    PartialBlock,
    Program,
    Statement,
)


@dataclass(slots=True)
class _Info:
    open: bool = False
    close: bool = False
    open_standalone: bool = False
    close_standalone: bool = False
    inline_standalone: bool = False


def apply_whitespace_control(program: Program) -> Program:
    """Strip whitespace in place as ``~`` and standalone lines require; returns ``program``."""
    _visit_program(program, is_root=True)
    return program


def _visit_program(program: Program, *, is_root: bool = False) -> None:
    body = program.body
    for i, current in enumerate(body):
        info = _visit(current)
        if info is None:
            continue
        prev_ws = _is_prev_whitespace(body, i, is_root)
        next_ws = _is_next_whitespace(body, i, is_root)
        open_standalone = info.open_standalone and prev_ws
        close_standalone = info.close_standalone and next_ws
        inline_standalone = info.inline_standalone and prev_ws and next_ws
        if info.close:
            _omit_right(body, i, multiple=True)
        if info.open:
            _omit_left(body, i, multiple=True)
        if inline_standalone:
            _omit_right(body, i)
            if _omit_left(body, i) and isinstance(current, Partial):
                before = body[i - 1]
                assert isinstance(before, Content)
                m = re.search(r"[ \t]+\Z", before.original)
                current.indent = m.group() if m else ""
        if open_standalone and isinstance(current, (Block, PartialBlock, InlinePartial)):
            first = current.program if not isinstance(current, Block) else (
                current.program or current.inverse)  # fmt: skip
            if first is not None:
                _omit_right(first.body, None)
            _omit_left(body, i)
        if close_standalone and isinstance(current, (Block, PartialBlock, InlinePartial)):
            _omit_right(body, i)
            last = current.program if not isinstance(current, Block) else (
                current.inverse or current.program)  # fmt: skip
            if last is not None:
                _omit_left(last.body, None)


def _visit(node: Statement) -> _Info | None:
    if isinstance(node, Content):
        return None
    if isinstance(node, Mustache):
        return _Info(open=node.strip.open, close=node.strip.close)
    if isinstance(node, (Partial, Comment)):
        return _Info(open=node.strip.open, close=node.strip.close, inline_standalone=True)
    if isinstance(node, Block):
        return _visit_block(node.program, node.inverse, node)
    return _visit_block(node.program, None, node)


def _visit_block(
    program_: Program | None, inverse_: Program | None, node: Block | PartialBlock | InlinePartial
) -> _Info:
    for child in (program_, inverse_):
        if child is not None:
            _visit_program(child)
    program = program_ or inverse_
    assert program is not None
    inverse = inverse_ if program_ is not None else None
    first_inverse = last_inverse = inverse
    if inverse is not None and inverse.chained:
        chained = inverse.body[0]
        assert isinstance(chained, Block) and chained.program is not None
        first_inverse = chained.program
        while last_inverse is not None and last_inverse.chained:
            nested = last_inverse.body[-1]
            assert isinstance(nested, Block)
            last_inverse = nested.program
    info = _Info(
        open=node.open_strip.open,
        close=node.close_strip.close,
        open_standalone=_is_next_whitespace(program.body),
        close_standalone=_is_prev_whitespace((first_inverse or program).body),
    )
    if node.open_strip.close:
        _omit_right(program.body, None, multiple=True)
    if inverse is not None and isinstance(node, Block):
        assert first_inverse is not None and last_inverse is not None
        if node.inverse_strip.open:
            _omit_left(program.body, None, multiple=True)
        if node.inverse_strip.close:
            _omit_right(first_inverse.body, None, multiple=True)
        if node.close_strip.open:
            _omit_left(last_inverse.body, None, multiple=True)
        if _is_prev_whitespace(program.body) and _is_next_whitespace(first_inverse.body):
            _omit_left(program.body, None)
            _omit_right(first_inverse.body, None)
    elif node.close_strip.open:
        _omit_left(program.body, None, multiple=True)
    return info


def _is_prev_whitespace(body: list[Statement], i: int | None = None, is_root: bool = False) -> bool:
    if i is None:
        i = len(body)
    prev = body[i - 1] if i - 1 >= 0 else None
    sibling = body[i - 2] if i - 2 >= 0 else None
    if prev is None:
        return is_root
    if isinstance(prev, Content):
        pattern = r"\r?\n\s*?\Z" if (sibling is not None or not is_root) else r"(^|\r?\n)\s*?\Z"
        return re.search(pattern, prev.original) is not None
    return False


def _is_next_whitespace(body: list[Statement], i: int | None = None, is_root: bool = False) -> bool:
    if i is None:
        i = -1
    nxt = body[i + 1] if i + 1 < len(body) else None
    sibling = body[i + 2] if i + 2 < len(body) else None
    if nxt is None:
        return is_root
    if isinstance(nxt, Content):
        pattern = r"^\s*?\r?\n" if (sibling is not None or not is_root) else r"^\s*?(\r?\n|\Z)"
        return re.search(pattern, nxt.original) is not None
    return False


def _omit_right(body: list[Statement], i: int | None, *, multiple: bool = False) -> None:
    index = 0 if i is None else i + 1
    current = body[index] if index < len(body) else None
    if not isinstance(current, Content) or (not multiple and current.right_stripped):
        return
    original = current.value
    current.value = re.sub(r"^\s+" if multiple else r"^[ \t]*\r?\n?", "", original, count=1)
    current.right_stripped = current.value != original


def _omit_left(body: list[Statement], i: int | None, *, multiple: bool = False) -> bool:
    index = len(body) - 1 if i is None else i - 1
    current = body[index] if 0 <= index < len(body) else None
    if not isinstance(current, Content) or (not multiple and current.left_stripped):
        return False
    original = current.value
    current.value = re.sub(r"\s+\Z" if multiple else r"[ \t]+\Z", "", original, count=1)
    current.left_stripped = current.value != original
    return current.left_stripped
