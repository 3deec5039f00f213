"""The template errors, both hung on the dispatcher's own tree.

ConfigError (dispatcher.errors)
└── TemplateError         the source does not compile: syntax, unknown helper, arity (exit 2)
DispatchError (dispatcher.errors)
└── TemplateRenderError   one render failed for one context (that endpoint fails, not the run)
"""

from __future__ import annotations

from dispatcher.errors import ConfigError, DispatchError


class TemplateError(ConfigError):
    """A template that does not compile; ``line`` and ``column`` are 1-based."""

    def __init__(
        self,
        reason: str,
        *,
        where: str = "template",
        line: int = 0,
        column: int = 0,
        file: str | None = None,
    ) -> None:
        self.reason = reason
        self.where = where
        self.line = line
        self.column = column
        at = f" at line {line}, column {column}" if line else ""
        super().__init__(f"invalid template{at}: {reason}", file=file, key=where)


class TemplateRenderError(DispatchError):
    """A render that failed for one context (a helper refused its input).

    Pinpoint did not send such a message (SES reports a rendering failure); the caller
    fails that endpoint only. ``line``/``column`` locate the expression in the source.
    """

    def __init__(self, reason: str, *, where: str = "template", line: int = 0, column: int = 0):
        self.reason = reason
        self.where = where
        self.line = line
        self.column = column
        at = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}: {at}{reason}")


class HelperError(Exception):
    """Raised by a helper for bad input; the engine adds the position and template name.

    At compile time (a literal argument that can never work) it becomes a
    :class:`TemplateError`, at render time a :class:`TemplateRenderError`.
    """
