"""Helpers as the engine sees them: a declaration (name, arity, block or inline) and a call.

The engine checks what a declaration states when it compiles a template, so a wrong
argument count or an unknown helper never reaches a send; the function itself only
runs at render time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.handlebars._runtime import Frame

#: A compiled program: renders one block body for a frame.
ProgramFn = Callable[[Frame], str]


class Unknown:
    """Stands for an argument only known at render time, in compile-time checks."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()
_SAME: Any = object()  # Options.fn/inverse default: stay in the current context


class Options:
    """What a helper receives beside its positional arguments: the hash and the block.

    ``fn`` renders the block body and ``inverse`` its ``{{else}}`` part, by default in
    the current context; ``is_block`` tells ``{{#h}}`` from ``{{h}}``.
    """

    __slots__ = ("_frame", "_inverse", "_program", "hash")

    def __init__(
        self,
        hash_: dict[str, Any],
        frame: Frame,
        program: ProgramFn | None = None,
        inverse: ProgramFn | None = None,
    ) -> None:
        self.hash = hash_
        self._frame = frame
        self._program = program
        self._inverse = inverse

    @property
    def is_block(self) -> bool:
        """True when the helper was called as a block (``{{#name}}``)."""
        return self._program is not None

    @property
    def this(self) -> Any:
        """The current context (``this``)."""
        return self._frame.this

    @property
    def frame(self) -> Frame:
        """The current frame (for the built-in blocks, which push contexts)."""
        return self._frame

    def fn(self, this: Any = _SAME, data: Mapping[str, Any] | None = None) -> str:
        """Render the block body, in ``this`` when given (a new context on the stack)."""
        if self._program is None:
            return ""
        return self._program(self._push(this, data))

    def inverse(self, this: Any = _SAME) -> str:
        """Render the ``{{else}}`` part (empty when there is none)."""
        if self._inverse is None:
            return ""
        return self._inverse(self._push(this, None))

    def _push(self, this: Any, data: Mapping[str, Any] | None) -> Frame:
        frame = self._frame
        if data is None and (this is _SAME or this is frame.this):
            return frame  # same context: `if` does not add a level for `..`
        return frame.child(frame.this if this is _SAME else this, data)


HelperFn = Callable[[list[Any], Options], Any]
CheckFn = Callable[[list[Any], Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Helper:
    """A helper declaration.

    ``min_args``/``max_args`` bound the positional arguments (``max_args=None``: any);
    ``required_hash`` names hash keys that must be present. ``block``/``inline`` say how
    it may be called. ``prints`` marks value helpers: their path arguments count for the
    missing-variable report (a condition's do not). An unresolved bare path given after
    the first argument stands for its own name (Handlebars.java's ``stringParams``:
    ``{{inflect 3 apple apples}}``); ``text_fallback`` names hash keys that do the same
    (``tz=America/Los_Angeles``).
    ``check`` validates literal arguments at compile time (others are ``UNKNOWN``) by
    raising ``HelperError``.
    """

    name: str
    fn: HelperFn
    min_args: int = 0
    max_args: int | None = None
    required_hash: frozenset[str] = frozenset()
    block: bool = False
    inline: bool = True
    prints: bool = True
    text_fallback: frozenset[str] = frozenset()
    check: CheckFn | None = field(default=None, compare=False)


class HelperRegistry:
    """The helpers a template may call, by name."""

    def __init__(self, helpers: Iterable[Helper] = ()) -> None:
        self._helpers: dict[str, Helper] = {}
        for helper in helpers:
            self.register(helper)

    def register(self, helper: Helper) -> None:
        """Add or replace a helper."""
        self._helpers[helper.name] = helper

    def get(self, name: str) -> Helper | None:
        """The helper called ``name``, if any."""
        return self._helpers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._helpers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._helpers))

    def __len__(self) -> int:
        return len(self._helpers)

    def copy(self) -> HelperRegistry:
        """An independent registry with the same helpers (to add to without side effects)."""
        return HelperRegistry(self._helpers.values())
