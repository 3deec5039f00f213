"""Typed access to a config table: every error names ``file: dotted.key``, and a key laid
under the TOML from another file (``--campaign-json``) names that file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.errors import ConfigError


class Reader:
    """Typed access to a TOML table that reports errors as ``file: dotted.key: ...``."""

    def __init__(
        self, file: str, table: Mapping[str, Any], prefix: str,
        origins: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.file, self.table, self.prefix = file, table, prefix
        self.origins = origins or {}
        """Dotted key -> the file it came from, when not ``file`` (``--campaign-json``)."""

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def file_of(self, key: str) -> str:
        """The file a dotted key was read from: its own origin, or a parent's, or ours."""
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key.rpartition(".")[0]
        return self.file

    def error(self, name: str, message: str) -> ConfigError:
        key = self.key(name)
        return ConfigError(message, file=self.file_of(key), key=key)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.table.get(name, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(name, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def require(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.get(name, kind)
        if value is None or value == "":
            raise self.error(name, "is required")
        return value

    def int_in(self, name: str, lo: int, hi: int | None = None) -> int | None:
        value = self.get(name, int)
        if value is not None and (value < lo or (hi is not None and value > hi)):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise self.error(name, f"must be {bound}, got {value}")
        return value  # type: ignore[no-any-return]

    def sub(self, name: str) -> Reader | None:
        value = self.get(name, dict)
        return None if value is None else Reader(self.file, value, self.key(name), self.origins)

    def no_unknown(self, allowed: set[str]) -> None:
        for name in self.table:
            if name not in allowed:
                hint = _closest(name, allowed)
                raise self.error(
                    name, "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
                )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "a table",
             list: "an array", bool: "a boolean"}  # fmt: skip
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _closest(name: str, allowed: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.75)
    return match[0] if match else None
