"""ISO 8601 instants as POSIX seconds: criteria values at load, endpoint values per record.

Pinpoint reads date attributes "as ISO_INSTANT datetimes". We accept what
``datetime.fromisoformat`` accepts (Python 3.11: ``Z``, offsets, a date alone, up to
nanosecond fractions truncated to microseconds); a value without an offset is UTC, as
is a date alone (midnight UTC, like the Pinpoint console's date filters). Instants
are compared as floats: cheaper than aware datetimes, and no naive/aware mix-ups.
"""

from __future__ import annotations

from datetime import UTC, datetime

SECONDS_PER_DAY = 86_400
_CACHE_LIMIT = 1 << 16


def parse_instant(text: str) -> float | None:
    """``text`` as POSIX seconds, or None if it is not an ISO 8601 date or date-time."""
    try:
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (ValueError, OverflowError):  # near year 1 or 9999 an offset can overflow
        return None


def utc_day(seconds: float) -> int:
    """The UTC calendar day of an instant, as days since 1970-01-01 (for ON)."""
    return int(seconds // SECONDS_PER_DAY)


class InstantReader:
    """``parse_instant`` with a bounded memo: date attributes of an export repeat a lot
    (sign-up days, plan dates), and a dict hit costs a tenth of a parse. The memo is
    dropped when full rather than grown, so memory stays bounded on unique values."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[str, float | None] = {}

    def __call__(self, text: str) -> float | None:
        memo = self._memo
        try:
            return memo[text]
        except KeyError:
            pass
        value = parse_instant(text)
        if len(memo) >= _CACHE_LIMIT:
            memo.clear()
        memo[text] = value
        return value


def canonical(when: datetime) -> str:
    """An instant in Pinpoint's own ``EffectiveDate`` form, ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Strings of that exact form sort in time order, so a threshold written this way can
    be compared with such a date as text, without parsing it.
    """
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_canonical(text: str) -> bool:
    """Whether ``text`` has the shape ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (digits unchecked)."""
    return (
        len(text) == 24 and text[23] == "Z" and text[19] == "." and text[10] == "T"
        and text[4] == "-" and text[7] == "-" and text[13] == ":" and text[16] == ":"
    )  # fmt: skip


__all__ = ["InstantReader", "canonical", "is_canonical", "parse_instant", "utc_day"]
