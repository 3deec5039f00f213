"""IANA time zones by name, as endpoints carry them in ``Demographic.Timezone``.

One bounded cache for the whole process: quiet time and local-time schedules ask it
per endpoint, and there are ~600 valid names (the bound keeps garbage from growing it).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["endpoint_zone_name", "zone_of"]

_CACHE_MAX = 4096
_ZONES: dict[str, ZoneInfo | None] = {}


def zone_of(name: object) -> ZoneInfo | None:
    """The time zone named ``name``, or None when it is not a valid IANA name."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return _ZONES[name]
    except KeyError:
        pass
    try:
        zone: ZoneInfo | None = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        zone = None
    if len(_ZONES) < _CACHE_MAX:
        _ZONES[name] = zone
    return zone


def endpoint_zone_name(definition: dict[str, Any] | None) -> object:
    """The endpoint's ``Demographic.Timezone`` as given (None when absent)."""
    demographic = (definition or {}).get("Demographic")
    return demographic.get("Timezone") if isinstance(demographic, dict) else None
