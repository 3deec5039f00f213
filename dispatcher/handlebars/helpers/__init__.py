"""Every helper on Pinpoint's "Using message template helpers" page, registered together.

The engine knows nothing of these: it only calls what a registry declares. Where the
page is silent, the semantics are Handlebars.java's (``StringHelpers``,
``ConditionalHelpers``), the library Pinpoint's helpers came from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from dispatcher.handlebars._builtins import BUILTINS
from dispatcher.handlebars._registry import HelperRegistry
from dispatcher.handlebars.helpers._conditional import CONDITIONAL_HELPERS
from dispatcher.handlebars.helpers._dates import date_helpers
from dispatcher.handlebars.helpers._math import MATH_HELPERS
from dispatcher.handlebars.helpers._strings import STRING_HELPERS

__all__ = ["PINPOINT_HELPERS", "builtin_helpers", "pinpoint_helpers"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def builtin_helpers() -> HelperRegistry:
    """A registry with only the built-in blocks: ``if``, ``unless``, ``each``, ``with``."""
    return HelperRegistry(BUILTINS)


def pinpoint_helpers(*, clock: Callable[[], datetime] = _utc_now) -> HelperRegistry:
    """The built-ins plus every Pinpoint helper; ``clock`` feeds ``now`` (tests fix it)."""
    registry = builtin_helpers()
    for group in (CONDITIONAL_HELPERS, STRING_HELPERS, MATH_HELPERS, date_helpers(clock)):
        for helper in group:
            registry.register(helper)
    return registry


#: The registry ``compile()`` uses by default.
PINPOINT_HELPERS = pinpoint_helpers()
