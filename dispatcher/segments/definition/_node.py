"""Typed access to decoded JSON that knows where each value is: file and key path.

Every check a definition needs (an object, a list, a string, a finite number, one of
a closed set of words, no unknown keys) is here once, and each failure is a
``ConfigError`` reading ``FILE: KEY: message`` with the key as a path into the
document (``SegmentResponse.SegmentGroups.Groups[1].Dimensions[0]...``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import Any

from dispatcher.errors import ConfigError


def _kind(value: object) -> str:
    """JSON's name for a decoded value's type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _step(key: str, name: str) -> str:
    # Attribute names are free text: quote those that would make the path ambiguous.
    if name.isidentifier():
        return f"{key}.{name}" if key else name
    return f"{key}[{name!r}]"


class Node:
    """One decoded JSON value, the file it came from and its key path in that file."""

    __slots__ = ("file", "key", "value")

    def __init__(self, value: Any, file: str, key: str = "") -> None:
        self.value = value
        self.file = file
        self.key = key

    def error(self, message: str) -> ConfigError:
        """A ``ConfigError`` about this value."""
        return ConfigError(message, file=self.file, key=self.key or None)

    def member(self, name: str) -> Node:
        """The value under ``name`` (``None`` if absent) of this object."""
        return Node(self.obj().get(name), self.file, _step(self.key, name))

    def present(self) -> bool:
        return self.value is not None

    def obj(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.error(f"must be an object, got {_kind(self.value)}")
        return self.value

    def only(self, known: Collection[str], what: str = "key") -> dict[str, Any]:
        """This object, after checking it has no key outside ``known``."""
        value = self.obj()
        for name in value:
            if name not in known:
                raise Node(None, self.file, _step(self.key, name)).error(
                    f"unknown {what} {name!r}; expected one of {', '.join(sorted(known))}"
                )
        return value

    def items(self) -> Iterator[tuple[str, Node]]:
        """(name, value) of each member of this object."""
        for name, value in self.obj().items():
            yield name, Node(value, self.file, _step(self.key, name))

    def elements(self) -> list[Node]:
        """The items of this list (an absent list is empty)."""
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.error(f"must be an array, got {_kind(self.value)}")
        return [Node(v, self.file, f"{self.key}[{i}]") for i, v in enumerate(self.value)]

    def string(self) -> str:
        if not isinstance(self.value, str):
            raise self.error(f"must be a string, got {_kind(self.value)}")
        return self.value

    def strings(self) -> tuple[str, ...]:
        """A non-empty list of strings (criteria ``Values``)."""
        items = self.elements()
        if not items:
            raise self.error("must be a non-empty array of strings")
        return tuple(item.string() for item in items)

    def number(self) -> float:
        """A finite JSON number (a boolean is not one)."""
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.error(f"must be a number, got {_kind(v)}")
        if not math.isfinite(v):
            raise self.error("must be a finite number")
        return float(v)

    def integer(self) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"must be an integer, got {_kind(v)}")
        return v

    def word(self, choices: tuple[str, ...], default: str | None = None) -> str:
        """One of ``choices`` (the first of them is not implied: absent means
        ``default``, an error when there is none)."""
        if self.value is None and default is not None:
            return default
        if self.value is None:
            raise self.error(f"is required; use one of {', '.join(choices)}")
        word = self.string()
        if word not in choices:
            raise self.error(f"must be one of {', '.join(choices)}, got {word!r}")
        return word


__all__ = ["Node"]
