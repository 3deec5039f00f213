"""Locale data for ``dateFormat``/``now``: names and the four date styles, from CLDR.

The standard library has no locale data of its own (``locale`` depends on what the host
installed), so the few locales supported are written here, as Java's default (CLDR)
provider prints them. ``en_US`` is the default, as on Pinpoint's hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.handlebars._errors import HelperError


@dataclass(frozen=True, slots=True)
class LocaleData:
    """Month and weekday names (Monday first), AM/PM, and the date style patterns."""

    months: tuple[str, ...]
    months_short: tuple[str, ...]
    days: tuple[str, ...]
    days_short: tuple[str, ...]
    ampm: tuple[str, str]
    styles: dict[str, str]


_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")  # fmt: skip
_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

EN_US = LocaleData(
    _EN_MONTHS,
    tuple(m[:3] for m in _EN_MONTHS),
    _EN_DAYS,
    tuple(d[:3] for d in _EN_DAYS),
    ("AM", "PM"),
    {"full": "EEEE, MMMM d, y", "long": "MMMM d, y", "medium": "MMM d, y", "short": "M/d/yy"},
)

EN_GB = LocaleData(
    _EN_MONTHS,
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec"),
    _EN_DAYS,
    tuple(d[:3] for d in _EN_DAYS),
    ("am", "pm"),
    {"full": "EEEE, d MMMM y", "long": "d MMMM y", "medium": "d MMM y", "short": "dd/MM/y"},
)

FR = LocaleData(
    ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
     "octobre", "novembre", "décembre"),
    ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
     "nov.", "déc."),
    ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."),
    ("AM", "PM"),
    {"full": "EEEE d MMMM y", "long": "d MMMM y", "medium": "d MMM y", "short": "dd/MM/y"},
)  # fmt: skip

DE = LocaleData(
    ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
     "Oktober", "November", "Dezember"),
    ("Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.",
     "Dez."),
    ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    ("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."),
    ("AM", "PM"),
    {"full": "EEEE, d. MMMM y", "long": "d. MMMM y", "medium": "dd.MM.y", "short": "dd.MM.yy"},
)  # fmt: skip

ES = LocaleData(
    ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
     "octubre", "noviembre", "diciembre"),
    ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"),
    ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
    ("a. m.", "p. m."),
    {"full": "EEEE, d 'de' MMMM 'de' y", "long": "d 'de' MMMM 'de' y", "medium": "d MMM y",
     "short": "d/M/yy"},
)  # fmt: skip

LOCALES = {"en": EN_US, "en_US": EN_US, "en_GB": EN_GB, "fr": FR, "fr_FR": FR, "de": DE,
           "de_DE": DE, "es": ES, "es_ES": ES}  # fmt: skip


def locale_data(name: str | None) -> LocaleData:
    """Data for a locale id as Commons ``LocaleUtils.toLocale`` reads it (``en_US``, ``fr``)."""
    if not name:
        return EN_US
    key = name.strip().replace("-", "_")
    if "_" in key:
        language, _, country = key.partition("_")
        key = f"{language.lower()}_{country.upper()}"
    else:
        key = key.lower()
    data = LOCALES.get(key)
    if data is None:
        supported = ", ".join(sorted(LOCALES))
        raise HelperError(f"locale {name!r} is not supported (supported: {supported})")
    return data
