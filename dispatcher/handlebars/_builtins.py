"""The built-in blocks: ``if``, ``unless``, ``each``, ``with``, as Handlebars.java runs them.

``each`` renders at most :data:`EACH_LIMIT` items (Pinpoint's documented cap) and counts
each cut on the render state; ``@first``/``@last`` print ``first``/``last`` (or
nothing), as in Handlebars.java, and ``if`` takes ``includeZero=true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.handlebars._registry import Helper, Options
from dispatcher.handlebars._runtime import EACH_LIMIT, is_empty


def _falsy(value: Any, options: Options) -> bool:
    if options.hash.get("includeZero") is True and isinstance(value, (int, float)):
        return value is False
    return is_empty(value)


def _if(args: list[Any], options: Options) -> Any:
    truthy = not _falsy(args[0], options)
    if options.is_block:
        return options.fn() if truthy else options.inverse()
    # Inline, like Pinpoint's other conditional helpers: yes=/no= or true/false.
    if truthy:
        return options.hash.get("yes", True)
    return options.hash.get("no", False)


def _unless(args: list[Any], options: Options) -> Any:
    return options.inverse() if not _falsy(args[0], options) else options.fn()


def _with(args: list[Any], options: Options) -> Any:
    value = args[0]
    return options.inverse() if is_empty(value) else options.fn(value)


def _each(args: list[Any], options: Options) -> Any:
    value = args[0]
    if isinstance(value, Mapping):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    else:
        return options.inverse()
    if not items:
        return options.inverse()
    if len(items) > EACH_LIMIT:
        items = items[:EACH_LIMIT]
        options.frame.state.truncated += 1
    last = len(items) - 1
    out = []
    for index, (key, item) in enumerate(items):
        data = {
            "index": index,
            "key": key,
            "first": "first" if index == 0 else "",
            "last": "last" if index == last else "",
            "odd": "odd" if index % 2 else "",
            "even": "" if index % 2 else "even",
            "index_1": index + 1,
        }
        out.append(options.fn(item, data))
    return "".join(out)


BUILTINS = (
    Helper("if", _if, 1, 1, block=True, prints=False),
    Helper("unless", _unless, 1, 1, block=True, inline=False, prints=False),
    Helper("with", _with, 1, 1, block=True, inline=False, prints=False),
    Helper("each", _each, 1, 1, block=True, inline=False, prints=False),
)
