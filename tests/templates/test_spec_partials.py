"""Handlebars.js ``spec/subexpressions.js`` and ``spec/partials.js``, ported.

Pinpoint templates have no registered partials, only inline ones, so the spec's
``withPartials({dude: ...})`` becomes ``{{#*inline "dude"}}...{{/inline}}`` in front
of the template. Left out: dynamic partials ``{{> (expr)}}``, ``@partial-block``,
block parameters and compile options.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.handlebars import Helper, TemplateError, TemplateRenderError, escape_html
from tests.templates.spec import Case, ids, registry, render, simple


def _equal(x: Any, y: Any) -> bool:
    return bool(x == y and type(x) is type(y))


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


SUB_HELPERS = registry(
    foo=simple("foo", lambda val: val + val),
    bar=simple("bar", lambda: "LOL"),
    blog=simple("blog", lambda *vals: "val is " + ", ".join(_text(v) for v in vals)),
    equal=simple("equal", _equal),
    dash=simple("dash", lambda a, b: f"{a}-{b}"),
    concat=simple("concat", lambda a, b: f"{a}{b}"),
)

SUBEXPRESSIONS = [
    Case("{{foo (bar)}}!", {}, "LOLLOL!"),
    Case("{{blog (equal a b)}}", {"a": "LOL", "b": "LOL"}, "val is true"),
    Case("{{blog (equal (equal true true) true)}}", {"bar": "LOL"}, "val is true"),
    Case("{{dash 'abc' (concat a b)}}", {"a": "a", "b": "b"}, "abc-ab"),
    Case("{{dash d (concat a b)}}", {"a": "a", "b": "b", "d": "d"}, "d-ab"),
    Case("{{dash c.c (concat a b)}}", {"a": "a", "b": "b", "c": {"c": "c"}}, "c-ab"),
    Case("{{dash (concat a b) c.c}}", {"a": "a", "b": "b", "c": {"c": "c"}}, "ab-c"),
    Case("{{dash (concat a e.e) c.c}}", {"a": "a", "c": {"c": "c"}, "e": {"e": "e"}}, "ae-c"),
    Case("{{equal (equal true true) true}}", {}, "true"),
    Case("{{blog (equal (equal true true) true fun='yes')}}", {"bar": "LOL"}, "val is true"),
]


@pytest.mark.parametrize("case", SUBEXPRESSIONS, ids=ids(SUBEXPRESSIONS))
def test_subexpressions(case: Case) -> None:
    assert render(case.template, case.input, helpers=SUB_HELPERS) == case.expected


def test_unresolved_arguments_after_the_first_stand_for_their_names() -> None:
    # The spec's `{{blog (equal a b)}}` with neither defined is "val is true" in
    # Handlebars.js. Pinpoint ran Handlebars.java with stringParams (its own example
    # `{{inflect 3 apple apples}}` prints "apples"): the unresolved `b` is the string "b".
    assert render("{{blog (equal a b)}}", {"bar": "LOL"}, helpers=SUB_HELPERS) == "val is false"
    assert render("{{blog (equal a b)}}", {"a": "b"}, helpers=SUB_HELPERS) == "val is true"


def test_mixed_paths_and_helpers() -> None:
    data = {"a": 1, "b": 1, "bar": "LOL", "baz": {"bat": "foo!", "bar": "bar!"}}
    out = render("{{blog baz.bat (equal a b) baz.bar}}", data, helpers=SUB_HELPERS)
    assert out == "val is foo!, true, bar!"


def test_subexpressions_as_hash_values() -> None:
    blog = Helper("blog", lambda args, options: "val is " + _text(options.hash.get("fun")), 0, 0)
    helpers = registry(blog=blog, equal=simple("equal", _equal))
    assert render("{{blog fun=(equal (blog fun=1) 'val is 1')}}", helpers=helpers) == "val is true"


def test_multiple_subexpressions_in_a_hash() -> None:
    def input_(args: list[Any], options: Any) -> str:
        label, placeholder = options.hash["aria-label"], options.hash["placeholder"]
        return (
            f'<input aria-label="{escape_html(label)}" placeholder="{escape_html(placeholder)}" />'
        )

    helpers = registry(input=Helper("input", input_, 0, 0), t=simple("t", lambda s: s))
    expected = '<input aria-label="Name" placeholder="Example User" />'
    template = '{{{input aria-label=(t "Name") placeholder=(t "Example User")}}}'
    assert render(template, helpers=helpers) == expected
    template = "{{{input aria-label=(t item.field) placeholder=(t item.placeholder)}}}"
    data = {"item": {"field": "Name", "placeholder": "Example User"}}
    assert render(template, data, helpers=helpers) == expected


def test_subexpressions_cannot_be_property_lookups() -> None:
    helpers = registry(foo=simple("foo", lambda val: val + val))
    with pytest.raises(TemplateError, match="unknown helper 'bar'"):
        render("{{foo (bar)}}!", {"bar": "LOL"}, helpers=helpers)


# ---- partials ------------------------------------------------------------------------

DUDE = '{{#*inline "dude"}}{{name}} ({{url}}) {{/inline}}'
DUDES = {"dudes": [{"name": "Yehuda", "url": "http://yehuda"},
                   {"name": "Alan", "url": "http://alan"}]}  # fmt: skip

PARTIALS = [
    Case(DUDE + "Dudes: {{#dudes}}{{> dude}}{{/dudes}}", DUDES,
         "Dudes: Yehuda (http://yehuda) Alan (http://alan) "),
    Case('{{#*inline "dude"}}{{#this}}{{name}} ({{url}}) {{/this}}{{/inline}}'
         "Dudes: {{>dude dudes}}", DUDES, "Dudes: Yehuda (http://yehuda) Alan (http://alan) "),
    Case('{{#*inline "dude"}}{{.}}{{/inline}}Dudes: {{>dude "dudes"}}', {}, "Dudes: dudes"),
    Case('{{#*inline "dude"}}{{foo}} Empty{{/inline}}Dudes: {{>dude dudes}}', {}, "Dudes:  Empty"),
    Case('{{#*inline "dude"}}{{others.foo}}{{name}} ({{url}}) {{/inline}}'
         "Dudes: {{#dudes}}{{> dude others=..}}{{/dudes}}", {"foo": "bar", **DUDES},
         "Dudes: barYehuda (http://yehuda) barAlan (http://alan) "),
    Case('{{#*inline "url"}}<a href="{{url}}">{{url}}</a>{{/inline}}'
         '{{#*inline "dude"}}{{name}} {{> url}} {{/inline}}Dudes: {{#dudes}}{{>dude}}{{/dudes}}',
         DUDES, 'Dudes: Yehuda <a href="http://yehuda">http://yehuda</a> '
                'Alan <a href="http://alan">http://alan</a> '),
    # partial blocks: the fallback renders when the partial is not defined
    Case("{{#> dude}}success{{/dude}}", {}, "success"),
    Case("{{#> dude context}}{{value}}{{/dude}}", {"context": {"value": "success"}}, "success"),
    Case('{{#*inline "dude"}}success{{/inline}}{{#> dude}}fail{{/dude}}', {}, "success"),
    # inline partials
    Case('{{#*inline "myPartial"}}success{{/inline}}{{> myPartial}}', {}, "success"),
    Case('{{#*inline "myPartial"}}fail{{/inline}}{{#*inline "myPartial"}}success{{/inline}}'
         "{{> myPartial}}", {}, "success"),
    Case('{{#with .}}{{#*inline "myPartial"}}success{{/inline}}{{> myPartial}}{{/with}}', {},
         "success"),
    Case('{{#*inline "myPartial"}}fail{{/inline}}{{#with .}}{{#*inline "myPartial"}}success'
         "{{/inline}}{{> myPartial}}{{/with}}", {}, "success"),
    Case('{{#with .}}{{#*inline "myPartial"}}success{{/inline}}{{#with .}}{{#with .}}'
         "{{> myPartial}}{{/with}}{{/with}}{{/with}}", {}, "success"),
    Case('{{#*inline "myPartial"}}success{{/inline}}{{#*inline "dude"}}{{> myPartial }}{{/inline}}'
         "{{> dude}}", {}, "success"),
    # standalone partials keep the line's indentation
    Case('{{#*inline "dude"}}{{name}}\n{{/inline}}Dudes:\n{{#dudes}}\n  {{>dude}}\n{{/dudes}}',
         DUDES, "Dudes:\n  Yehuda\n  Alan\n"),
    Case('{{#*inline "url"}}{{url}}!\n{{/inline}}{{#*inline "dude"}}{{name}}\n {{> url}}'
         "{{/inline}}Dudes:\n{{#dudes}}\n  {{>dude}}\n{{/dudes}}", DUDES,
         "Dudes:\n  Yehuda\n   http://yehuda!\n  Alan\n   http://alan!\n"),
    # compat: partials see enclosing contexts (Handlebars.java's lookup)
    Case('{{#*inline "dude"}}{{name}} ({{url}}) {{root}} {{/inline}}'
         "Dudes: {{#dudes}}{{> dude}}{{/dudes}}", {"root": "yes", **DUDES},
         "Dudes: Yehuda (http://yehuda) yes Alan (http://alan) yes "),
    Case('{{#*inline "dude"}}{{name}} ({{url}}) {{root}} {{/inline}}'
         'Dudes: {{#dudes}}{{> dude "test"}}{{/dudes}}', {"root": "yes", **DUDES},
         "Dudes: Yehuda (http://yehuda) yes Alan (http://alan) yes "),
    Case('{{#*inline "dude"}}{{#dudes}}{{name}} ({{url}}) {{root}} {{/dudes}}{{/inline}}'
         "Dudes: {{> dude}}", {"root": "yes", **DUDES},
         "Dudes: Yehuda (http://yehuda) yes Alan (http://alan) yes "),
]  # fmt: skip


@pytest.mark.parametrize("case", PARTIALS, ids=ids(PARTIALS))
def test_partials(case: Case) -> None:
    assert render(case.template, case.input) == case.expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{> whatever}}", "unknown partial 'whatever'"),
        ('{{#with .}}{{#*inline "myPartial"}}success{{/inline}}{{/with}}{{> myPartial}}',
         "unknown partial 'myPartial'"),
        ("Dudes: {{>dude dudes foo bar=baz}}", "at most one context argument"),
        ("{{> (partial)}}", "dynamic partials"),
    ],
)  # fmt: skip
def test_partial_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template)


def test_a_partial_that_includes_itself_fails_the_render_not_the_process() -> None:
    with pytest.raises(TemplateRenderError, match="partials nested over 32 deep"):
        render('{{#*inline "loop"}}x{{> loop}}{{/inline}}{{> loop}}')
