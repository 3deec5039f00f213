"""Conditional helpers: ``and eq gt gte lt lte neq not or`` (``if`` is a built-in).

Semantics are Handlebars.java's ``ConditionalHelpers``, which Pinpoint's page copies:
``eq``/``neq`` use Java ``equals`` (``"22"`` is not ``22``; ``2`` is ``2.0``); ``gt``
and friends use ``compareTo``, so two strings compare lexicographically (``"9"`` >
``"17"``) and a string against a number, or a missing value, is an error; ``and``,
``or``, ``not`` test Handlebars truthiness. As blocks they choose the body or
``{{else}}``; inline they print ``yes=``/``no=`` or ``true``/``false``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatcher.handlebars._errors import HelperError
from dispatcher.handlebars._registry import Helper, Options
from dispatcher.handlebars._runtime import is_empty, to_text


def _result(value: bool, options: Options) -> Any:
    if options.is_block:
        return options.fn() if value else options.inverse()
    if value:
        return options.hash.get("yes", True)
    return options.hash.get("no", False)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def java_equals(a: Any, b: Any) -> bool:
    """``Objects.equals`` plus Handlebars.java's number rule (``2`` equals ``2.0``)."""
    if a is None or b is None:
        return a is b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    if type(a) is not type(b) and not (
        isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
    ):
        return False
    return bool(a == b)


def java_compare(a: Any, b: Any) -> int:
    """``Comparable.compareTo``: numbers by value, strings and booleans with their own kind."""
    if _is_number(a) and _is_number(b):
        fa, fb = float(a), float(b)
        return (fa > fb) - (fa < fb)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if isinstance(a, bool) and isinstance(b, bool):
        return int(a) - int(b)
    shown = ", ".join(repr(to_text(v)) if v is not None and not isinstance(v, dict) else "null"
                      for v in (a, b))  # fmt: skip
    raise HelperError(f"cannot compare {shown}: both must be strings or both numbers")


def _comparison(name: str, test: Callable[[int], bool]) -> Helper:
    def fn(args: list[Any], options: Options) -> Any:
        return _result(test(java_compare(args[0], args[1])), options)

    return Helper(name, fn, 2, 2, block=True, prints=False)


def _eq(args: list[Any], options: Options) -> Any:
    return _result(java_equals(args[0], args[1]), options)


def _neq(args: list[Any], options: Options) -> Any:
    return _result(not java_equals(args[0], args[1]), options)


def _and(args: list[Any], options: Options) -> Any:
    return _result(all(not is_empty(a) for a in args), options)


def _or(args: list[Any], options: Options) -> Any:
    return _result(any(not is_empty(a) for a in args), options)


def _not(args: list[Any], options: Options) -> Any:
    return _result(is_empty(args[0]), options)


CONDITIONAL_HELPERS = (
    Helper("eq", _eq, 2, 2, block=True, prints=False),
    Helper("neq", _neq, 2, 2, block=True, prints=False),
    _comparison("gt", lambda c: c > 0),
    _comparison("gte", lambda c: c >= 0),
    _comparison("lt", lambda c: c < 0),
    _comparison("lte", lambda c: c <= 0),
    Helper("and", _and, 2, None, block=True, prints=False),
    Helper("or", _or, 2, None, block=True, prints=False),
    Helper("not", _not, 1, 1, block=True, prints=False),
)
