"""Argument coercions shared by the helpers.

Pinpoint attribute values are lists of strings, so helpers that want a number or a
string accept numeric strings and one-item lists; anything else is a ``HelperError``
(the render fails for that endpoint, as Pinpoint's did).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from dispatcher.handlebars._errors import HelperError
from dispatcher.handlebars._runtime import to_text


def text(value: Any) -> str:
    """A value as a string, by the engine's value rules."""
    return to_text(value)


def _single(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def decimal(value: Any, what: str = "a number") -> Decimal:
    """A number (int, float, numeric string, one-item list of those) as a Decimal."""
    value = _single(value)
    if isinstance(value, bool) or value is None:
        raise HelperError(f"found {to_text(value) or 'nothing'!r}, expected {what}")
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # 2.3 stays 2.3, not its binary expansion
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise HelperError(f"found {to_text(value)!r}, expected {what}")
    return number


def integer(value: Any, what: str = "a whole number") -> int:
    """An integral number (``22``, ``"22"``, ``22.0``) as an int."""
    number = decimal(value, what)
    if number != number.to_integral_value():
        raise HelperError(f"found {to_text(value)!r}, expected {what}")
    return int(number)


def number_out(value: Decimal) -> int | float:
    """A result: an int when integral, else a float (prints as its shortest form)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)
