"""String helpers, with Handlebars.java's ``StringHelpers`` semantics (and Apache Commons').

Common rule (jknack's ``apply``): an empty value (missing, "", false, 0, empty list)
renders nothing. One deviation, on purpose: jknack then prints the first parameter
(``{{abbreviate Missing 6}}`` would print ``6``); here it prints nothing. Values print by
the engine's rules, so a one-item attribute list is its item (jknack would print
``[Santos]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from dispatcher.handlebars._errors import HelperError
from dispatcher.handlebars._registry import UNKNOWN, Helper, Options
from dispatcher.handlebars._runtime import is_blank, is_empty
from dispatcher.handlebars.helpers._values import decimal, integer, text

_TAG = re.compile(r"<[^>]*>", re.S)


def _value_helper(
    name: str, body: Callable[[str, list[Any], Options], Any], low: int, high: int | None,
    **declaration: Any,
) -> Helper:  # fmt: skip
    def fn(args: list[Any], options: Options) -> Any:
        if is_empty(args[0]):
            return ""
        return body(text(args[0]), args[1:], options)

    return Helper(name, fn, low, high, **declaration)


def _title(c: str) -> str:
    # Java's Character.toTitleCase maps one char to one char.
    t = c.title()
    return t if len(t) == 1 else c


def capitalize_words(value: str) -> str:
    """Commons ``WordUtils.capitalize``: the first letter of each whitespace-separated word."""
    out, start = [], True
    for c in value:
        out.append(_title(c) if start and not c.isspace() else c)
        start = c.isspace()
    return "".join(out)


def left_pad(value: str, size: int, pad: str) -> str:
    """Commons ``StringUtils.leftPad``: pad repeated and cut to fit; "" pads with spaces."""
    pad = pad or " "
    n = size - len(value)
    if n <= 0:
        return value
    return (pad * (n // len(pad) + 1))[:n] + value


def right_pad(value: str, size: int, pad: str) -> str:
    """Commons ``StringUtils.rightPad``."""
    pad = pad or " "
    n = size - len(value)
    if n <= 0:
        return value
    return value + (pad * (n // len(pad) + 1))[:n]


def center(value: str, size: int, pad: str) -> str:
    """Commons ``StringUtils.center``: the odd extra pad goes right."""
    n = size - len(value)
    if n <= 0:
        return value
    return right_pad(left_pad(value, len(value) + n // 2, pad), size, pad)


def _size(options: Options) -> int:
    return integer(options.hash["size"], "a whole number for size=")


def _pad(options: Options) -> str:
    return text(options.hash.get("pad", " "))


def _abbreviate(value: str, args: list[Any], options: Options) -> str:
    width = integer(args[0], "a whole number for the width")
    if width < 4:
        raise HelperError("the width must be at least 4")
    return value if len(value) <= width else value[: width - 3] + "..."


def _substring(value: str, args: list[Any], options: Options) -> str:
    start = integer(args[0], "a whole number for the start")
    end = integer(args[1], "a whole number for the end") if len(args) > 1 else len(value)
    if start < 0 or end > len(value) or start > end:
        # Java's subSequence refuses these; so did Pinpoint's render.
        raise HelperError(f"range {start}..{end} is outside {value!r} (length {len(value)})")
    return value[start:end]


def _replace(value: str, args: list[Any], options: Options) -> str:
    target, replacement = text(args[0]), text(args[1])
    if not target:
        return value
    return value.replace(target, replacement)


def _slugify(value: str, args: list[Any], options: Options) -> str:
    # jknack keeps letters only (digits and "_" go, whatever the page says); spaces → "-".
    out = []
    for c in value.strip():
        if c.isalpha():
            out.append(c.lower())
        if c.isspace():
            out.append("-")
    return "".join(out)


def _cut(args: list[Any], options: Options) -> str:
    if is_empty(args[0]):
        return ""
    strip = text(args[1]) if len(args) > 1 else " "
    return text(args[0]).replace(strip, "") if strip else text(args[0])


def _join(args: list[Any], options: Options) -> str:
    context, separator = args[0], args[-1]
    if is_empty(context):
        return ""
    if not isinstance(separator, str):
        raise HelperError(f"found {text(separator)!r}, expected the separator (a string) last")
    prefix, suffix = text(options.hash.get("prefix", "")), text(options.hash.get("suffix", ""))
    items = context if isinstance(context, (list, tuple)) else [context, *args[1:-1]]
    return prefix + separator.join(text(i) for i in items) + suffix


def _yesno(args: list[Any], options: Options) -> str:
    value = args[0]
    if isinstance(value, (list, tuple)) and len(value) <= 1:
        value = value[0] if value else None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"  # attribute values are strings
    if value is None:
        return text(options.hash.get("maybe", "maybe"))
    if not isinstance(value, bool):
        raise HelperError(f"found {text(value)!r}, expected true or false")
    return text(options.hash.get("yes" if value else "no", "yes" if value else "no"))


def _inflect(args: list[Any], options: Options) -> str:
    count = decimal(args[0], "a count")
    word = text(args[1] if count == 1 else args[2])
    if options.hash.get("includeCount") is True:
        return f"{text(args[0])} {word}"
    return word


def ordinal(n: int) -> str:
    """English ordinal: 1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 101st."""
    tens = abs(n) % 100
    suffix = "th" if 11 <= tens <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(abs(n) % 10, "th")
    return f"{n}{suffix}"


def _capitalize(value: str, args: list[Any], options: Options) -> str:
    # fully=true lowers the rest of each word first (Commons' capitalizeFully).
    return capitalize_words(value.lower() if options.hash.get("fully") is True else value)


def _ordinalize(args: list[Any], options: Options) -> str:
    # Humanize's, not a StringHelper: zero is a number here ("0th"), only nothing is empty.
    if is_blank(args[0]):
        return ""
    return ordinal(integer(args[0]))


def _check_width(args: list[Any], hash_: Mapping[str, Any]) -> None:
    width = args[1] if len(args) > 1 else UNKNOWN
    if width is not UNKNOWN and (not isinstance(width, int) or width < 4):
        raise HelperError("the width must be a whole number, at least 4")


def _check_size(args: list[Any], hash_: Mapping[str, Any]) -> None:
    size = hash_.get("size", UNKNOWN)
    if size is not UNKNOWN and (not isinstance(size, int) or isinstance(size, bool)):
        raise HelperError("size= must be a whole number")


def _check_range(args: list[Any], hash_: Mapping[str, Any]) -> None:
    for bound in args[1:]:
        if bound is not UNKNOWN and (not isinstance(bound, int) or isinstance(bound, bool)):
            raise HelperError("start and end must be whole numbers")


def _check_join(args: list[Any], hash_: Mapping[str, Any]) -> None:
    if args[-1] is not UNKNOWN and not isinstance(args[-1], str):
        raise HelperError("the separator (last argument) must be a string")


_SIZED = {"required_hash": frozenset({"size"}), "check": _check_size}

STRING_HELPERS = (
    _value_helper("abbreviate", _abbreviate, 2, 2, check=_check_width),
    _value_helper("capitalize", _capitalize, 1, 1),
    _value_helper("capitalizeFirst", lambda v, a, o: _title(v[:1]) + v[1:], 1, 1),
    _value_helper("center", lambda v, a, o: center(v, _size(o), _pad(o)), 1, 1, **_SIZED),
    Helper("cut", _cut, 1, 2),
    Helper("join", _join, 2, None, check=_check_join),
    _value_helper("ljust", lambda v, a, o: right_pad(v, _size(o), _pad(o)), 1, 1, **_SIZED),
    _value_helper("rjust", lambda v, a, o: left_pad(v, _size(o), _pad(o)), 1, 1, **_SIZED),
    _value_helper("lower", lambda v, a, o: v.lower(), 1, 1),
    _value_helper("upper", lambda v, a, o: v.upper(), 1, 1),
    _value_helper("replace", _replace, 3, 3),
    _value_helper("slugify", _slugify, 1, 1),
    _value_helper("stripTags", lambda v, a, o: _TAG.sub("", v), 1, 1),
    _value_helper("substring", _substring, 2, 3, check=_check_range),
    Helper("yesno", _yesno, 1, 1),
    Helper("inflect", _inflect, 3, 3),
    Helper("ordinalize", _ordinalize, 1, 1),
)
