"""Handlebars.js ``spec/blocks.js``, ``spec/builtins.js`` and ``spec/data.js``, ported.

Lookups follow Handlebars.java, as Pinpoint did: a name not found in the current
context is looked up in the enclosing ones (the spec's ``compat`` mode), so the compat
cases are here and pass without an option. Left out: block parameters (``as |x|``),
``log``, ``lookup``, ``Map``/``Set``/iterables and runtime ``data`` options.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.handlebars import TemplateError
from tests.templates.spec import Case, ids, registry, render, with_options

GOODBYES = [{"text": "goodbye"}, {"text": "Goodbye"}, {"text": "GOODBYE"}]

BLOCKS = [
    Case("{{#goodbyes}}{{text}}! {{/goodbyes}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"}, "goodbye! Goodbye! GOODBYE! cruel world!"),
    Case("{{#goodbyes}}{{text}}! {{/goodbyes}}cruel {{world}}!",
         {"goodbyes": [], "world": "world"}, "cruel world!"),
    Case("{{#goodbyes}}{{text}}{{/goodbyes}} {{#goodbyes}}{{text}}{{/goodbyes}}",
         {"goodbyes": GOODBYES, "world": "world"}, "goodbyeGoodbyeGOODBYE goodbyeGoodbyeGOODBYE"),
    Case("{{#goodbyes}}{{@index}}. {{text}}! {{/goodbyes}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"},
         "0. goodbye! 1. Goodbye! 2. GOODBYE! cruel world!"),
    Case("{{#goodbyes}}{{/goodbyes}}cruel {{world}}!", {"goodbyes": GOODBYES, "world": "world"},
         "cruel world!"),
    Case("{{#goodbyes}}{{text}} cruel {{../name}}! {{/goodbyes}}",
         {"name": "Alan", "goodbyes": GOODBYES},
         "goodbye cruel Alan! Goodbye cruel Alan! GOODBYE cruel Alan! "),
    Case("{{#goodbyes}}{{../name}}{{../name}}{{/goodbyes}}", {"name": "Alan", "goodbyes": GOODBYES},
         "AlanAlanAlanAlanAlanAlan"),
    Case("{{#outer}}Goodbye {{#inner}}cruel {{../sibling}} {{../../omg}}{{/inner}}{{/outer}}",
         {"omg": "OMG!", "outer": [{"sibling": "sad", "inner": [{"text": "goodbye"}]}]},
         "Goodbye cruel sad OMG!"),
    Case("{{#each person}}{{#with .}}{{first}} {{last}}{{/with}}{{/each}}",
         {"person": [{"first": "Alan", "last": "Johnson"}, {"first": "Alan", "last": "Johnson"}]},
         "Alan JohnsonAlan Johnson"),
    # inverted sections
    Case("{{#goodbyes}}{{this}}{{/goodbyes}}{{^goodbyes}}Right On!{{/goodbyes}}", {}, "Right On!"),
    Case("{{#goodbyes}}{{this}}{{/goodbyes}}{{^goodbyes}}Right On!{{/goodbyes}}",
         {"goodbyes": False}, "Right On!"),
    Case("{{#goodbyes}}{{this}}{{/goodbyes}}{{^goodbyes}}Right On!{{/goodbyes}}",
         {"goodbyes": []}, "Right On!"),
    Case("{{#people}}{{name}}{{^}}{{none}}{{/people}}", {"none": "No people"}, "No people"),
    Case("{{#people}}{{name}}{{else if none}}{{none}}{{/people}}", {"none": "No people"},
         "No people"),
    Case("{{#people}}{{name}}{{else if nothere}}fail{{else unless nothere}}{{none}}{{/people}}",
         {"none": "No people"}, "No people"),
    Case("{{#people}}{{name}}{{else if none}}{{none}}{{else}}fail{{/people}}",
         {"none": "No people"}, "No people"),
    Case("{{#people}}{{name}}{{^}}{{none}}{{/people}}", {"none": "No people", "people": []},
         "No people"),
    # standalone sections
    Case("{{#people}}\n{{name}}\n{{^}}\n{{none}}\n{{/people}}\n", {"none": "No people"},
         "No people\n"),
    Case("{{#none}}\n{{.}}\n{{^}}\n{{none}}\n{{/none}}\n", {"none": "No people"}, "No people\n"),
    Case("{{#people}}\n{{name}}\n{{else if none}}\n{{none}}\n{{/people}}\n",
         {"none": "No people"}, "No people\n"),
    Case("{{#people}}\n{{name}}\n{{else if none}}\n{{none}}\n{{^}}\n{{/people}}\n",
         {"none": "No people"}, "No people\n"),
    Case("{{#data}}\n{{#if true}}\n{{.}}\n{{/if}}\n{{/data}}\nOK.", {"data": [1, 3, 5]},
         "1\n3\n5\nOK."),
    # compat mode: recursive lookup (Handlebars.java's default)
    Case("{{#outer}}Goodbye {{#inner}}cruel {{omg}}{{/inner}}{{/outer}}",
         {"omg": "OMG!", "outer": [{"inner": [{"text": "goodbye"}]}]}, "Goodbye cruel OMG!"),
    Case("{{#outer}}Goodbye {{#inner}}cruel {{omg.yes}}{{/inner}}{{/outer}}",
         {"omg": {"yes": "OMG!"}, "outer": [{"inner": [{"yes": "no", "text": "goodbye"}]}]},
         "Goodbye cruel OMG!"),
    Case("{{#outer}}Goodbye {{#inner}}cruel {{omg.yes}}{{/inner}}{{/outer}}",
         {"omg": {"no": "OMG!"}, "outer": [{"inner": [{"yes": "no", "text": "goodbye"}]}]},
         "Goodbye cruel "),
]  # fmt: skip


@pytest.mark.parametrize("case", BLOCKS, ids=ids(BLOCKS))
def test_blocks(case: Case) -> None:
    assert render(case.template, case.input) == case.expected


def test_explicit_null_is_looked_up_in_enclosing_contexts_as_handlebars_java_does() -> None:
    # Handlebars.js compat prints "" here (the spec's "explicitly null property");
    # Handlebars.java treats null as not found and goes up the stack to the root's name.
    template = "{{#each items}}{{name}}{{/each}}"
    assert render(template, {"name": "root", "items": [{"name": None}]}) == "root"


@pytest.mark.parametrize(
    "template",
    [
        "{{#goodbyes}}{{text}} cruel {{foo/../name}}! {{/goodbyes}}",
        "{{#people}}{{name}}{{else if none}}{{none}}{{/if}}",
    ],
)
def test_invalid_blocks_throw(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template)


IF = "{{#if goodbye}}GOODBYE {{/if}}cruel {{world}}!"

BUILTINS = [
    Case(IF, {"goodbye": True, "world": "world"}, "GOODBYE cruel world!"),
    Case(IF, {"goodbye": "dummy", "world": "world"}, "GOODBYE cruel world!"),
    Case(IF, {"goodbye": False, "world": "world"}, "cruel world!"),
    Case(IF, {"world": "world"}, "cruel world!"),
    Case(IF, {"goodbye": ["foo"], "world": "world"}, "GOODBYE cruel world!"),
    Case(IF, {"goodbye": [], "world": "world"}, "cruel world!"),
    Case(IF, {"goodbye": 0, "world": "world"}, "cruel world!"),
    Case("{{#if goodbye includeZero=true}}GOODBYE {{/if}}cruel {{world}}!",
         {"goodbye": 0, "world": "world"}, "GOODBYE cruel world!"),
    Case("{{#with foo}}{{#if goodbye}}GOODBYE cruel {{../world}}!{{/if}}{{/with}}",
         {"foo": {"goodbye": True}, "world": "world"}, "GOODBYE cruel world!"),
    # with
    Case("{{#with person}}{{first}} {{last}}{{/with}}",
         {"person": {"first": "Alan", "last": "Johnson"}}, "Alan Johnson"),
    Case("{{#with person}}Person is present{{else}}Person is not present{{/with}}", {},
         "Person is not present"),
    # each
    Case("{{#each goodbyes}}{{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"}, "goodbye! Goodbye! GOODBYE! cruel world!"),
    Case("{{#each goodbyes}}{{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": [], "world": "world"}, "cruel world!"),
    Case("{{#each .}}{{.}}{{/each}}", {"goodbyes": "cruel", "world": "world"}, "cruelworld"),
    Case("{{#each goodbyes}}{{text}}! {{/each}}cruel {{world}}!", {}, "cruel !"),
    Case("{{#each goodbyes}}{{@key}}. {{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": {"<b>#1</b>": {"text": "goodbye"}, "2": {"text": "GOODBYE"}},
          "world": "world"},
         "&lt;b&gt;#1&lt;/b&gt;. goodbye! 2. GOODBYE! cruel world!"),
    Case("{{#each goodbyes}}{{@key}}. {{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": {}, "world": "world"}, "cruel world!"),
    Case("{{#each goodbyes}}{{@index}}. {{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"},
         "0. goodbye! 1. Goodbye! 2. GOODBYE! cruel world!"),
    Case("{{#each goodbyes}}{{@index}}. {{text}}! {{#each ../goodbyes}}{{@index}} {{/each}}"
         "After {{@index}} {{/each}}{{@index}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"},
         "0. goodbye! 0 1 2 After 0 1. Goodbye! 0 1 2 After 1 2. GOODBYE! 0 1 2 After 2 "
         "cruel world!"),
    Case("{{#each goodbyes}}{{@index}}. {{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": {"a": {"text": "goodbye"}, "b": {"text": "Goodbye"},
                       "c": {"text": "GOODBYE"}}, "world": "world"},
         "0. goodbye! 1. Goodbye! 2. GOODBYE! cruel world!"),
    Case("{{#each goodbyes}}{{#if @first}}{{text}}! {{/if}}{{/each}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"}, "goodbye! cruel world!"),
    Case("{{#each goodbyes}}({{#if @first}}{{text}}! {{/if}}{{#each ../goodbyes}}{{#if @first}}"
         "{{text}}!{{/if}}{{/each}}{{#if @first}} {{text}}!{{/if}}) {{/each}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"},
         "(goodbye! goodbye! goodbye!) (goodbye!) (goodbye!) cruel world!"),
    Case("{{#each goodbyes}}{{#if @first}}{{text}}! {{/if}}{{/each}}cruel {{world}}!",
         {"goodbyes": {"foo": {"text": "goodbye"}, "bar": {"text": "Goodbye"}}, "world": "world"},
         "goodbye! cruel world!"),
    Case("{{#each goodbyes}}{{#if @last}}{{text}}! {{/if}}{{/each}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"}, "GOODBYE! cruel world!"),
    Case("{{#each goodbyes}}{{#if @last}}{{text}}! {{/if}}{{/each}}cruel {{world}}!",
         {"goodbyes": {"foo": {"text": "goodbye"}, "bar": {"text": "Goodbye"}}, "world": "world"},
         "Goodbye! cruel world!"),
    Case("{{#each goodbyes}}({{#if @last}}{{text}}! {{/if}}{{#each ../goodbyes}}{{#if @last}}"
         "{{text}}!{{/if}}{{/each}}{{#if @last}} {{text}}!{{/if}}) {{/each}}cruel {{world}}!",
         {"goodbyes": GOODBYES, "world": "world"},
         "(GOODBYE!) (GOODBYE!) (GOODBYE! GOODBYE! GOODBYE!) cruel world!"),
    Case("{{#each goodbyes}}{{@index}}. {{text}}! {{/each}}cruel {{world}}!",
         {"goodbyes": {"a": {"text": "goodbye"}, "b": {"text": "Goodbye"},
                       "": {"text": "GOODBYE"}}, "world": "world"},
         "0. goodbye! 1. Goodbye! 2. GOODBYE! cruel world!"),
]  # fmt: skip


@pytest.mark.parametrize("case", BUILTINS, ids=ids(BUILTINS))
def test_builtins(case: Case) -> None:
    assert render(case.template, case.input) == case.expected


def test_each_needs_an_iterator() -> None:
    # The spec's "Must pass iterator to #each", at compile time here.
    with pytest.raises(TemplateError, match="'each' takes 1 argument, got 0"):
        render("{{#each}}{{text}}! {{/each}}cruel world!")


def test_root_data() -> None:
    assert render("{{@root.foo}}", {"foo": "hello"}) == "hello"
    assert render("{{#each items}}{{@root.foo}}{{/each}}", {"foo": "hi", "items": [1, 2]}) == "hihi"


def test_data_is_inherited_downstream_from_a_helper_frame() -> None:
    # spec/data.js "deep @foo triggers automatic top-level data", with a `let` helper.
    def let(*args: Any) -> str:
        options = args[-1]
        return options.fn(options.this, {**options.frame.data, **options.hash})

    helpers = registry(let=with_options("let", let))
    template = '{{#let world="world"}}{{#if foo}}{{#if foo}}Hello {{@world}}{{/if}}{{/if}}{{/let}}'
    assert render(template, {"foo": True}, helpers=helpers) == "Hello world"


# ---- helpers.js (block helpers written in Python) -----------------------------------


def _link(prefix: Any, options: Any) -> str:
    this = options.this
    return f'<a href="{prefix}/{this["url"]}">{options.fn(this)}</a>'


def _link_inline(prefix: Any, options: Any) -> str:
    this = options.this
    return f'<a href="{prefix}/{this["url"]}">{this["text"]}</a>'


def _goodbyes(options: Any, context: Any = None) -> str:
    return "".join(
        f"{bye} {options.fn(options.this if context is None else context)}! "
        for bye in ("Goodbye", "goodbye", "GOODBYE")
    )


HELPER_CASES: list[tuple[Case, dict[str, Any]]] = [
    (Case("{{#goodbyes}}{{{link ../prefix}}}{{/goodbyes}}",
          {"prefix": "/root", "goodbyes": [{"text": "Goodbye", "url": "goodbye"}]},
          '<a href="/root/goodbye">Goodbye</a>'), {"link": _link_inline}),
    (Case("{{#goodbyes}}{{name}}{{/goodbyes}}", {"name": "Alan"},
          "Goodbye Alan! goodbye Alan! GOODBYE Alan! "), {"goodbyes": _goodbyes}),
    (Case("{{#goodbyes}}{{../name}}{{/goodbyes}}", {"name": "Alan"},
          "Goodbye Alan! goodbye Alan! GOODBYE Alan! "),
     {"goodbyes": lambda options: _goodbyes(options, {})}),
    (Case("{{#goodbyes}}{{#link ../prefix}}{{text}}{{/link}}{{/goodbyes}}",
          {"prefix": "/root", "goodbyes": [{"text": "Goodbye", "url": "goodbye"}]},
          '<a href="/root/goodbye">Goodbye</a>'), {"link": _link}),
    (Case(" {{nothere}}", {}, " "), {"nothere": lambda options: None}),
    (Case(" {{#nothere}}{{/nothere}}", {}, " "), {"nothere": lambda options: None}),
    (Case("{{#goodbyes}}{{text}}! {{/goodbyes}}cruel {{world}}!", {"world": "world"},
          "GOODBYE! cruel world!"), {"goodbyes": lambda o: o.fn({"text": "GOODBYE"})}),
    (Case("{{#form}}<p>{{name}}</p>{{/form}}", {"name": "Yehuda"}, "<form><p>Yehuda</p></form>"),
     {"form": lambda o: f"<form>{o.fn(o.this)}</form>"}),
    (Case("<ul>{{#people}}<li>{{#link}}{{name}}{{/link}}</li>{{/people}}</ul>",
          {"people": [{"name": "Alan", "id": 1}, {"name": "Yehuda", "id": 2}]},
          '<ul><li><a href="/people/1">Alan</a></li><li><a href="/people/2">Yehuda</a></li></ul>'),
     {"link": lambda o: f'<a href="/people/{o.this["id"]}">{o.fn(o.this)}</a>'}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "functions"), HELPER_CASES, ids=[c.template[:40] for c, _ in HELPER_CASES]
)
def test_block_helpers(case: Case, functions: dict[str, Any]) -> None:
    helpers = registry(**{n: with_options(n, f) for n, f in functions.items()})
    assert render(case.template, case.input, helpers=helpers) == case.expected
