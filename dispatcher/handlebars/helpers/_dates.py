"""``dateFormat`` and ``now``: Java ``SimpleDateFormat`` patterns, on the standard library.

``{{dateFormat date [format] [locale] outputFormat= inputFormat= tz= locale=}}``: the
format is ``full|long|medium|short`` (default ``medium``) or a pattern. Without
``inputFormat`` the date is ISO 8601 text (``2020-09-19``, ``2020-09-19T10:00:00Z``) or
epoch milliseconds. A date without a zone is read in ``tz`` (so ``09/19/2020`` stays
the 19th), then printed in ``tz`` (UTC when absent, as on Pinpoint's hosts). An unknown
zone read from data falls back to UTC, as Java's ``TimeZone.getTimeZone`` does; a
literal one is a compile error. Supported pattern letters: ``G y M L d D F E u a H k
K h m s S z Z X`` and quoted text; ``zzzz``, ``Y``, ``w``, ``W`` are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatcher.handlebars._errors import HelperError
from dispatcher.handlebars._registry import UNKNOWN, Helper, Options
from dispatcher.handlebars._runtime import is_empty
from dispatcher.handlebars.helpers._locales import LocaleData, locale_data
from dispatcher.handlebars.helpers._values import text

Token = str | tuple[str, int]  # literal text, or (pattern letter, repeat count)
_LETTERS = set("GyMLdDFEuaHkKhmsSzZX")
_REFUSED = set("YwWcebBOVQqgnNvx")
_STYLES = ("full", "long", "medium", "short")
_OFFSET = re.compile(r"(?:GMT|UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")


def tokenize(pattern: str) -> list[Token]:
    """Split a SimpleDateFormat pattern into letters runs and literal text."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            end = i + 1
            literal = []
            while end < n:
                if pattern[end] == "'":
                    if end + 1 < n and pattern[end + 1] == "'":
                        literal.append("'")
                        end += 2
                        continue
                    break
                literal.append(pattern[end])
                end += 1
            if end >= n and i + 1 < n and pattern[i + 1] != "'":
                raise HelperError(f"unterminated quote in pattern {pattern!r}")
            tokens.append("'" if end == i + 1 else "".join(literal))
            i = end + 1
        elif c.isascii() and c.isalpha():
            run = len(pattern) - i - len(pattern[i:].lstrip(c))
            if c not in _LETTERS:
                kind = "is not supported" if c in _REFUSED else "is not a pattern letter"
                raise HelperError(f"'{c}' in pattern {pattern!r} {kind}")
            if c == "z" and run >= 4:
                raise HelperError("long zone names (zzzz) are not supported")
            tokens.append((c, run))
            i += run
        else:
            tokens.append(c)
            i += 1
    return tokens


def style_or_pattern(fmt: str, locale: LocaleData) -> list[Token]:
    """The tokens of a named style in ``locale``, or of a pattern."""
    return tokenize(locale.styles.get(fmt, fmt))


def zone(name: Any, *, strict: bool) -> tzinfo:
    """A zone from an IANA id, UTC/GMT, or an offset (``GMT+2``, ``-07:00``)."""
    value = text(name).strip()
    if value in ("UTC", "GMT", "Z", "UT"):
        return UTC
    m = _OFFSET.match(value)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        if strict:
            raise HelperError(f"unknown time zone {value!r}") from None
        return UTC


def _pad(n: int, width: int) -> str:
    return str(n).zfill(width)


def _offset(dt: datetime, colon: bool, short: bool, z_for_utc: bool) -> str:
    delta = dt.utcoffset() or timedelta(0)
    if z_for_utc and not delta:
        return "Z"
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    if short:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}{':' if colon else ''}{mins:02d}"


def _field(dt: datetime, letter: str, n: int, loc: LocaleData) -> str:
    if letter == "G":
        return "AD"
    if letter == "y":
        return _pad(dt.year % 100, 2) if n == 2 else _pad(dt.year, n)
    if letter in "ML":
        return (loc.months[dt.month - 1] if n >= 4 else loc.months_short[dt.month - 1]
                if n == 3 else _pad(dt.month, n))  # fmt: skip
    if letter == "E":
        return loc.days[dt.weekday()] if n >= 4 else loc.days_short[dt.weekday()]
    simple: dict[str, Callable[[], int]] = {
        "d": lambda: dt.day, "D": lambda: dt.timetuple().tm_yday,
        "F": lambda: (dt.day - 1) // 7 + 1, "u": dt.isoweekday, "H": lambda: dt.hour,
        "k": lambda: dt.hour or 24, "K": lambda: dt.hour % 12, "h": lambda: dt.hour % 12 or 12,
        "m": lambda: dt.minute, "s": lambda: dt.second, "S": lambda: dt.microsecond // 1000,
    }  # fmt: skip
    if letter in simple:
        return _pad(simple[letter](), n)
    if letter == "a":
        return loc.ampm[dt.hour >= 12]
    if letter == "z":
        return dt.tzname() or _offset(dt, True, False, False)
    if letter == "Z":
        return _offset(dt, False, False, False)
    return _offset(dt, n >= 3, n == 1, True)  # X


def format_date(dt: datetime, tokens: list[Token], loc: LocaleData) -> str:
    """Format an aware datetime with pattern tokens."""
    return "".join(t if isinstance(t, str) else _field(dt, t[0], t[1], loc) for t in tokens)


_NUMERIC = set("yMLdDFuHkKhmsS")


def _parser(tokens: list[Token], loc: LocaleData) -> re.Pattern[str]:
    parts = []
    for i, token in enumerate(tokens):
        if isinstance(token, str):
            parts.append(re.escape(token))
            continue
        letter, n = token
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        abutting = isinstance(nxt, tuple) and nxt[0] in _NUMERIC
        if letter in "ML" and n >= 3:
            names = sorted(loc.months + loc.months_short, key=len, reverse=True)
            parts.append(f"(?P<M{i}>{'|'.join(map(re.escape, names))})")
        elif letter in _NUMERIC:
            digits = rf"\d{{{n}}}" if abutting else r"\d+"
            parts.append(f"(?P<{letter}{i}>{digits})")
        elif letter == "E":
            parts.append(f"(?:{'|'.join(map(re.escape, loc.days + loc.days_short))})")
        elif letter == "a":
            parts.append(f"(?P<a{i}>{'|'.join(map(re.escape, loc.ampm))})")
        elif letter in "zZX":
            parts.append(rf"(?P<z{i}>Z|[+-]\d{{2}}:?(?:\d{{2}})?|[A-Za-z_/]+(?:[+-][\d:]+)?)")
        else:
            parts.append(r"\w+")  # G: the era
    return re.compile("".join(parts), re.IGNORECASE)


def parse_date(value: str, tokens: list[Token], loc: LocaleData, tz: tzinfo) -> datetime:
    """Parse ``value`` with pattern tokens (SimpleDateFormat: trailing text is ignored)."""
    m = _parser(tokens, loc).match(value.strip())
    if not m:
        raise HelperError(f"{value!r} does not match the input format")
    f: dict[str, Any] = {"y": 1970, "M": 1, "d": 1, "H": 0, "m": 0, "s": 0, "S": 0}
    pm: bool | None = None
    zone_: tzinfo = tz
    for key, got in m.groupdict().items():
        letter = key[0]
        if letter == "M" and not got.isdigit():
            low = got.lower()
            names = [n.lower() for n in loc.months], [n.lower() for n in loc.months_short]
            f["M"] = (names[0].index(low) if low in names[0] else names[1].index(low)) + 1
        elif letter == "a":
            pm = got.lower() == loc.ampm[1].lower()
        elif letter == "z":
            zone_ = zone(got, strict=True)
        elif letter == "y" and len(got) == 2 and ("y", 2) in tokens:
            f["y"] = 2000 + int(got) if 2000 + int(got) <= datetime.now(UTC).year + 20 else (
                1900 + int(got))  # fmt: skip
        else:
            f[{"k": "H", "K": "H", "h": "H", "L": "M"}.get(letter, letter)] = int(got)
    hour = f["H"] % 24
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    try:
        return datetime(f["y"], f["M"], f["d"], hour, f["m"], f["s"], f["S"] * 1000, zone_)
    except ValueError as exc:
        raise HelperError(f"{value!r}: {exc}") from None


def to_datetime(value: Any, input_format: str | None, loc: LocaleData, tz: tzinfo) -> datetime:
    """The helper's date argument as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)  # Java's Date(long): milliseconds
    raw = text(value).strip()
    if input_format:
        return parse_date(raw, tokenize(input_format), loc, tz)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise HelperError(f"{raw!r} is not an ISO 8601 date (give inputFormat=)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _format_arg(args: list[Any], options: Options, at: int) -> str:
    if len(args) > at and args[at] is not None:
        return text(args[at])
    return text(options.hash.get("outputFormat", options.hash.get("format", "medium")))


def _render(moment: Any, args: list[Any], options: Options, at: int) -> str:
    hash_ = options.hash
    loc = locale_data(text(args[at + 1]) if len(args) > at + 1 else text(hash_.get("locale")))
    tz = zone(hash_["tz"], strict=False) if hash_.get("tz") is not None else UTC
    fmt = _format_arg(args, options, at)
    if isinstance(moment, datetime):
        dt = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        input_format = text(hash_["inputFormat"]) if hash_.get("inputFormat") else None
        dt = to_datetime(moment, input_format, loc, tz)
    return format_date(dt.astimezone(tz), style_or_pattern(fmt, loc), loc)


def _check(at: int) -> Callable[[list[Any], Mapping[str, Any]], None]:
    def check(args: list[Any], hash_: Mapping[str, Any]) -> None:
        if "time" in hash_:
            raise HelperError("time= (date-time styles) is not supported")
        loc_arg = args[at + 1] if len(args) > at + 1 else hash_.get("locale", None)
        if isinstance(loc_arg, str):
            locale_data(loc_arg)
        fmt = args[at] if len(args) > at else hash_.get("outputFormat", hash_.get("format"))
        for pattern in (fmt, hash_.get("inputFormat")):
            if isinstance(pattern, str) and pattern not in _STYLES:
                tokenize(pattern)
        if isinstance(hash_.get("tz"), str):
            zone(hash_["tz"], strict=True)
        for value in (*args, *hash_.values()):
            if value is not UNKNOWN and not isinstance(value, (str, int, float, type(None))):
                raise HelperError(f"unexpected argument {value!r}")

    return check


_TEXT_KEYS = frozenset({"tz", "locale", "format", "outputFormat", "inputFormat"})


def date_helpers(clock: Callable[[], datetime]) -> tuple[Helper, ...]:
    """``dateFormat`` and ``now``, the latter reading ``clock`` (injectable for tests)."""

    def date_format(args: list[Any], options: Options) -> str:
        if is_empty(args[0]):
            return ""
        return _render(args[0], args, options, 1)

    def now(args: list[Any], options: Options) -> str:
        return _render(clock(), args, options, 0)

    return (
        Helper("dateFormat", date_format, 1, 3, text_fallback=_TEXT_KEYS, check=_check(1)),
        Helper("now", now, 0, 2, text_fallback=_TEXT_KEYS, check=_check(0)),
    )
