"""Pinpoint message templates: Handlebars syntax, Handlebars.java semantics, Pinpoint's helpers.

    from dispatcher import handlebars
    t = handlebars.compile("Hi {{User.UserAttributes.FirstName.[0]}}", html=False,
                           defaults='{"User.UserAttributes.FirstName": "there"}')
    missing: list[str] = []
    t.render(endpoint_definition, {"Id": endpoint_id}, missing)

Compile once per run, render per endpoint. Errors:

    dispatcher.errors.ConfigError
    └── TemplateError         does not compile (syntax, unknown helper, arity): .where .line .column
    dispatcher.errors.DispatchError
    └── TemplateRenderError   one render failed (a helper refused its input): fail that endpoint

The engine (parser, compiler, runtime) is separate from the helpers
(:mod:`dispatcher.handlebars.helpers`), which it only knows through a
:class:`HelperRegistry`. ``docs/templates.md`` records the rules and the evidence.
"""

from dispatcher.handlebars._errors import TemplateError, TemplateRenderError
from dispatcher.handlebars._registry import Helper, HelperRegistry, Options
from dispatcher.handlebars._runtime import EACH_LIMIT, escape_html, is_empty, to_text
from dispatcher.handlebars._template import Template, compile
from dispatcher.handlebars.helpers import PINPOINT_HELPERS, builtin_helpers, pinpoint_helpers

__all__ = [
    "EACH_LIMIT",
    "PINPOINT_HELPERS",
    "Helper",
    "HelperRegistry",
    "Options",
    "Template",
    "TemplateError",
    "TemplateRenderError",
    "builtin_helpers",
    "compile",
    "escape_html",
    "is_empty",
    "pinpoint_helpers",
    "to_text",
]
