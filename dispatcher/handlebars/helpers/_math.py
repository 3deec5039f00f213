"""Math and encoding helpers (Pinpoint's own: not in Handlebars.java's core).

Arithmetic is decimal, so ``{{add 5 2.3}}`` is ``7.3``, not ``7.300000000000001``.
``divide`` rounds to 8 places, as the page's example shows (``2.17391304``), half up;
rounding (``round``) is half up too. Results print without trailing zeros. Arguments
may be numbers or numeric strings (attribute values are strings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, DivisionByZero
from decimal import InvalidOperation as DecimalInvalid
from typing import Any

from dispatcher.handlebars._errors import HelperError
from dispatcher.handlebars._registry import Helper, Options
from dispatcher.handlebars.helpers._values import decimal, number_out, text

_EIGHT_PLACES = Decimal("0.00000001")


def _binary(name: str, op: Callable[[Decimal, Decimal], Decimal]) -> Helper:
    def fn(args: list[Any], options: Options) -> Any:
        try:
            return number_out(op(decimal(args[0]), decimal(args[1])))
        except (DivisionByZero, DecimalInvalid):
            raise HelperError("division by zero") from None

    return Helper(name, fn, 2, 2)


def _unary(name: str, rounding: str) -> Helper:
    def fn(args: list[Any], options: Options) -> Any:
        return number_out(decimal(args[0]).to_integral_value(rounding=rounding))

    return Helper(name, fn, 1, 1)


def _divide(a: Decimal, b: Decimal) -> Decimal:
    if b == 0:
        raise HelperError("division by zero")
    return (a / b).quantize(_EIGHT_PLACES, rounding=ROUND_HALF_UP)


def _modulo(a: Decimal, b: Decimal) -> Decimal:
    if b == 0:
        raise HelperError("division by zero")
    return a % b  # the dividend's sign, like Java's %


def _decode64(args: list[Any], options: Options) -> str:
    try:
        return base64.b64decode(text(args[0]), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise HelperError("not valid base64 of UTF-8 text") from None


def _digest(name: str) -> Helper:
    def fn(args: list[Any], options: Options) -> str:
        return hashlib.new(name, text(args[0]).encode("utf-8")).hexdigest()

    return Helper(name, fn, 1, 1)


MATH_HELPERS = (
    _binary("add", lambda a, b: a + b),
    _binary("subtract", lambda a, b: a - b),
    _binary("multiply", lambda a, b: a * b),
    _binary("divide", _divide),
    _binary("modulo", _modulo),
    _unary("ceiling", ROUND_CEILING),
    _unary("floor", ROUND_FLOOR),
    _unary("round", ROUND_HALF_UP),
    Helper("encode64", lambda a, o: base64.b64encode(text(a[0]).encode("utf-8")).decode(), 1, 1),
    Helper("decode64", _decode64, 1, 1),
    _digest("md5"),
    _digest("sha256"),
    _digest("sha512"),
    Helper("uuid", lambda a, o: str(uuid.uuid4()), 0, 0),
)
