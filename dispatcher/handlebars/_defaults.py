"""DefaultSubstitutions: the value a path takes when the context has none.

Pinpoint stores them as a JSON string. Real templates key them by the variable's path
(``{"User.UserAttributes.FirstName": "there"}``) or nest them (``{"User":
{"UserAttributes": {"FirstName": "there"}}}``); both are accepted. The lookup is done
once per path when the template compiles, so defaults cost nothing per render.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dispatcher.handlebars._ast import Path
from dispatcher.handlebars._errors import TemplateError
from dispatcher.handlebars._runtime import segment, walk


def load_defaults(defaults: Mapping[str, Any] | str | None, where: str) -> Mapping[str, Any]:
    """Accept a mapping, Pinpoint's JSON string, or None (no defaults)."""
    if defaults is None or defaults == "":
        return {}
    if isinstance(defaults, str):
        try:
            value = json.loads(defaults)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"DefaultSubstitutions is not JSON: {exc.msg}",
                where=where, line=exc.lineno, column=exc.colno,
            ) from None  # fmt: skip
        if not isinstance(value, dict):
            raise TemplateError("DefaultSubstitutions must be a JSON object", where=where)
        return value
    if not isinstance(defaults, Mapping):
        raise TemplateError("DefaultSubstitutions must be an object", where=where)
    return defaults


def default_for(defaults: Mapping[str, Any], path: Path) -> Any:
    """The default for ``path``: exact key as written, dotted key, then a nested walk.

    Trailing list indexes (``.[0]``) may be left out of the key: a default of
    ``{"User.UserAttributes.FirstName": "there"}`` serves ``FirstName.[0]`` too.
    """
    if not defaults or path.data or path.local or not path.parts:
        return None
    parts = path.parts
    bare = list(parts)
    while len(bare) > 1 and bare[-1].isdigit():
        bare.pop()
    for key, rest in ((path.original, []), (".".join(parts), []),
                      (".".join(bare), parts[len(bare):])):  # fmt: skip
        if key in defaults:
            return _index(defaults[key], rest)
    return _nested(defaults, parts)


def _index(value: Any, rest: list[str]) -> Any:
    # A scalar default stands for every index of the list it replaces.
    if rest and isinstance(value, list):
        return walk(value, [segment(p) for p in rest])
    return value


def _nested(value: Any, parts: list[str]) -> Any:
    for i, part in enumerate(parts):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
        elif value is not None and all(p.isdigit() for p in parts[i:]):
            return value
        else:
            return None
        if value is None:
            return None
    return value
