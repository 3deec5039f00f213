"""Render-time building blocks the compiler closes over: joins, lookups, sections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatcher.handlebars._ast import Path
from dispatcher.handlebars._registry import ProgramFn
from dispatcher.handlebars._runtime import Frame, Segment, is_empty, resolve, segment, walk

Getter = Callable[[Frame], Any]


def empty(frame: Frame) -> str:
    """The program with nothing in it."""
    return ""


def join(parts: list[str | ProgramFn]) -> ProgramFn:
    """One function rendering ``parts`` in order (adjacent text merged)."""
    merged: list[str | ProgramFn] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += part
                continue
        merged.append(part)
    if not merged:
        return empty
    if len(merged) == 1:
        only = merged[0]
        if isinstance(only, str):
            return lambda frame: only
        return only
    steps = tuple(merged)

    def run(frame: Frame) -> str:
        return "".join([p if isinstance(p, str) else p(frame) for p in steps])

    return run


def collector(getters: list[Getter]) -> Callable[[Frame], list[Any]]:
    """A function evaluating a helper's arguments into a list."""
    # Helpers take one or two arguments nearly always: skip the comprehension for those.
    if not getters:
        return lambda frame: []
    if len(getters) == 1:
        (a,) = getters
        return lambda frame: [a(frame)]
    if len(getters) == 2:
        a, b = getters
        return lambda frame: [a(frame), b(frame)]
    return lambda frame: [g(frame) for g in getters]


def lookup(node: Path) -> Getter:
    """The lookup for a path: ``@data``, ``@root``, local (``this``, ``..``) or plain."""
    parts = [segment(p) for p in node.parts]
    depth = node.depth
    if node.data:
        if node.parts and node.parts[0] == "root" and not depth:
            rest = parts[1:]
            return lambda frame: resolve_root(frame, rest)
        if not depth and len(parts) == 1:
            key = parts[0][0]
            return lambda frame: frame.data.get(key)
        return lambda frame: walk(up(frame, depth).data, parts)
    if node.local:
        if not depth:
            return (lambda frame: frame.this) if not parts else lambda f: walk(f.this, parts)
        return lambda frame: walk(up(frame, depth).this, parts)
    return lambda frame: resolve(frame, parts)


def resolve_root(frame: Frame, parts: list[Segment]) -> Any:
    """``@root.x``: the render's root context, its ``extra`` fields first (as for ``x``)."""
    state = frame.state
    if parts and state.extra and parts[0][0] in state.extra:
        value = walk(state.extra[parts[0][0]], parts[1:])
        if value is not None:
            return value
    return walk(state.root, parts)


def up(frame: Frame, depth: int) -> Frame:
    """The frame ``depth`` contexts out (``../``), the root at most."""
    for _ in range(depth):
        if frame.parent is None:
            break
        frame = frame.parent
    return frame


def section(value: Getter, program: ProgramFn, inverse: ProgramFn) -> ProgramFn:
    """A block on a value, not a helper: Mustache's section (``blockHelperMissing``).

    True renders in place, empty renders the inverse, a list renders once per item,
    anything else renders with it as the context.
    """

    def run(frame: Frame) -> str:
        v = value(frame)
        if v is True:
            return program(frame)
        if is_empty(v):
            return inverse(frame)
        if isinstance(v, (list, tuple)):
            last = len(v) - 1
            return "".join([
                program(frame.child(item, {"index": i, "key": i, "first": "first" if i == 0 else "",
                                           "last": "last" if i == last else ""}))
                for i, item in enumerate(v)
            ])  # fmt: skip
        return program(frame.child(v))

    return run


def indent(text: str, indent: str) -> str:
    """A standalone partial's indentation, applied to each of its lines (Handlebars.js)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line and i + 1 == len(lines):
            break
        lines[i] = indent + line
    return "\n".join(lines)
