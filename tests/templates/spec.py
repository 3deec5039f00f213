"""Helpers for the cases ported from the Handlebars.js spec (``spec/*.js``).

A case is (template, input, expected); ``expectTemplate(t).withInput(i).toCompileTo(e)``
becomes ``Case(t, i, e)``. Spec templates are HTML templates (escaping on). Helpers the
spec defines in JavaScript are written here in Python with the same behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from dispatcher import handlebars
from dispatcher.handlebars import Helper, HelperRegistry, Options


class Case(NamedTuple):
    template: str
    input: Any
    expected: str


def registry(**helpers: Helper) -> HelperRegistry:
    """Pinpoint's registry plus the spec's own helpers."""
    reg = handlebars.pinpoint_helpers().copy()
    for helper in helpers.values():
        reg.register(helper)
    return reg


def simple(name: str, fn: Callable[..., Any]) -> Helper:
    """A helper called as ``fn(*args)``, like a spec helper that ignores ``options``."""
    return Helper(name, lambda args, options: fn(*args), 0, None)


def with_options(name: str, fn: Callable[..., Any], *, block: bool = True) -> Helper:
    """A helper called as ``fn(*args, options)``."""
    return Helper(name, lambda args, options: fn(*args, options), 0, None, block=block)


def render(template: str, data: Any = None, *, helpers: HelperRegistry | None = None) -> str:
    compiled = handlebars.compile(template, html=True, helpers=helpers)
    return compiled.render(data if data is not None else {})


def ids(cases: list[Case]) -> list[str]:
    return [c.template[:40] for c in cases]


__all__ = ["Case", "Options", "ids", "registry", "render", "simple", "with_options"]
