"""Value rules and the context stack a render walks.

The value rules are the dispatcher's (``dispatcher.render.to_text``) so a template renders
the same text whichever engine compiled it; falsiness is Handlebars.java's ``isEmpty``,
the semantics Pinpoint's helpers were written against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.handlebars._errors import HelperError

#: Pinpoint's documented limit on ``#each``: later items are not rendered.
EACH_LIMIT = 15

# Handlebars.js 4 (and Handlebars.java's default strategy) escape exactly these.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;",
            "`": "&#x60;", "=": "&#x3D;"}  # fmt: skip
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_needs_escape = re.compile(r"[&<>\"'`=]").search


def escape_html(text: str) -> str:
    """HTML-escape ``text`` with the Handlebars character set (``& < > " ' ` =``)."""
    if _needs_escape(text) is None:
        return text
    return text.translate(_ESCAPE_TABLE)


def to_text(value: Any) -> str:
    """How one value prints in a message.

    Missing → ""; a list → its values joined with ", "; booleans → true/false; an
    integral float → no ".0". An object (a whole map such as ``{{Attributes}}``) has no
    text: Pinpoint did not send such a message, so it is a render error.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(to_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        raise HelperError("is an object, not a value: print one of its fields")
    return str(value)


def is_empty(value: Any) -> bool:
    """Handlebars.java's ``isEmpty``: null, "", an empty list, false and zero.

    An empty object is *not* empty there (a map is not a collection), nor here.
    """
    if value is None or value is False:
        return True
    if isinstance(value, (str, list, tuple)):
        return len(value) == 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    return False


def is_blank(value: Any) -> bool:
    """True when ``value`` prints as nothing (the missing-variable and defaults test).

    Absent, null, "", an empty list, or a one-item list of such; two empty values
    print ", " and so are not blank.
    """
    if value is None or value == "":
        return True
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or (len(value) == 1 and is_blank(value[0]))
    return False


Segment = tuple[str, int | None]  # a key, and the same key as a list index when numeric


def segment(name: str) -> Segment:
    """A path segment with its list index precomputed (``[0]`` indexes a list)."""
    return (name, int(name) if name.isdigit() else None)


def walk(value: Any, parts: Sequence[Segment]) -> Any:
    """Follow ``parts`` from ``value``: mapping keys, list indexes; None when absent."""
    for key, index in parts:
        cls = value.__class__  # exact-type checks first: isinstance(x, Mapping) is slow
        if cls is dict:
            value = value.get(key)
        elif index is not None and (cls is list or cls is tuple):
            value = value[index] if index < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(key)
        else:
            return None
        if value is None:
            return None
    return value


class State:
    """What one render shares: the root context, ``extra`` fields, the missing list."""

    __slots__ = ("depth", "extra", "missing", "root", "truncated")

    def __init__(self, root: Any, extra: Mapping[str, Any] | None, missing: list[str] | None):
        self.root = root
        self.extra = extra
        self.missing = missing
        self.depth = 0  # partial nesting, bounded so a recursive partial cannot hang a run
        self.truncated = 0  # #each blocks cut at EACH_LIMIT items


class Frame:
    """One context on the stack: ``this``, the frame it was pushed from, ``@data``."""

    __slots__ = ("data", "parent", "state", "this")

    def __init__(self, this: Any, parent: Frame | None, data: Mapping[str, Any], state: State):
        self.this = this
        self.parent = parent
        self.data = data
        self.state = state

    def child(self, this: Any, data: Mapping[str, Any] | None = None) -> Frame:
        """A frame for a block that changes the context (each, with, a section)."""
        return Frame(this, self, self.data if data is None else data, self.state)


def resolve(frame: Frame, parts: Sequence[Segment]) -> Any:
    """A plain path (``a.b``): the innermost context that has it, as Handlebars.java does.

    Each context up the stack is tried with the whole path until one yields a value;
    at the root, ``extra`` (fields outside the endpoint, such as ``Id``) comes first.
    """
    f: Frame | None = frame
    while f is not None:
        if f.parent is None:
            extra = f.state.extra
            if extra:
                head = parts[0][0]
                if head in extra:
                    value = walk(extra[head], parts[1:])
                    if value is not None:
                        return value
        value = walk(f.this, parts)
        if value is not None:
            return value
        f = f.parent
    return None
