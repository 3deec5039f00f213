"""Engine rules: value printing, escaping by part, segment literals, both render paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from dispatcher import handlebars
from dispatcher.render import to_text as mustache_to_text

ROOT = Path(__file__).resolve().parents[2]

VALUES: dict[str, Any] = {
    "list": ["a", "b"], "one": ["a"], "empty": [], "yes": True, "no": False, "int": 7,
    "float": 3.0, "ratio": 0.25, "nested": [["a", "b"], "c"], "none": None, "zero": 0,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_print_as_the_dispatcher_prints_them(name: str) -> None:
    # A bare list joins with ", ", one value is that value, booleans print true/false,
    # integral floats lose ".0": the same text as dispatcher.render.to_text.
    assert handlebars.compile(f"{{{{{name}}}}}", html=False).render(VALUES) == mustache_to_text(
        VALUES[name]
    )


def test_text_parts_are_not_escaped_and_html_parts_are() -> None:
    data = {"v": "<a href='x'>&</a>"}
    source = "{{v}}|{{{v}}}|{{& v}}"
    assert handlebars.compile(source, html=False).render(data) == (
        "<a href='x'>&</a>|<a href='x'>&</a>|<a href='x'>&</a>"
    )
    assert handlebars.compile(source, html=True).render(data) == (
        "&lt;a href&#x3D;&#x27;x&#x27;&gt;&amp;&lt;/a&gt;|<a href='x'>&</a>|<a href='x'>&</a>"
    )


def test_helper_output_is_escaped_in_html_but_block_output_is_not() -> None:
    template = handlebars.compile("{{upper v}}{{#if v}}<b>{{v}}</b>{{/if}}", html=True)
    assert template.render({"v": "a&b"}) == "A&amp;B<b>a&amp;b</b>"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{User.UserAttributes.[Last Name].[0]}}", "Doe"),
        ("{{User.UserAttributes.[Last Name].[1]}}", ""),  # past the end: missing
        ("{{User.UserAttributes.FirstName.0}}", "Jane"),  # a numeric segment indexes too
        ("{{User.UserId.[0]}}", ""),  # a string is not a list: no "u"
        ("{{User/UserAttributes/FirstName}}", "Jane"),
        ("{{#with User}}{{UserId}} {{../Location.City}} {{@root.Location.City}}{{/with}}",
         "u1 LA LA"),
        ("{{#with User.UserAttributes}}{{this.FirstName}}/{{./FirstName}}{{/with}}", "Jane/Jane"),
        ("{{#each User.UserAttributes}}{{@key}}={{this}};{{/each}}",
         "FirstName=Jane;Last Name=Doe;"),
    ],
)  # fmt: skip
def test_paths(source: str, expected: str) -> None:
    data = {"User": {"UserId": "u1", "UserAttributes": {"FirstName": ["Jane"],
                                                        "Last Name": ["Doe"]}},
            "Location": {"City": "LA"}}  # fmt: skip
    assert handlebars.compile(source, html=False).render(data) == expected


@pytest.mark.parametrize(
    "source",
    [
        "Hi {{User.UserAttributes.FirstName}}, {{Attributes.Tier.[0]}} {{Missing}}!",
        "<p>{{Attributes.Html}}</p>{{! a comment }}{{{Attributes.Html}}}",
        "{{Id}} {{User.UserAttributes.[Last Name]}} {{Metrics.ratio}}",
    ],
)
@pytest.mark.parametrize("html", [False, True])
def test_the_flat_path_and_the_compiled_path_agree(source: str, html: bool) -> None:
    data = {
        "User": {"UserAttributes": {"FirstName": ["Ana"], "Last Name": ["Doe"]}},
        "Attributes": {"Tier": ["gold"], "Html": ["<b>&</b>"]},
        "Metrics": {"ratio": 0.5},
    }
    flat = handlebars.compile(source, html=html)
    compiled = handlebars.compile(source + "{{#if false}}{{/if}}", html=html)
    assert "flat" in repr(flat) and "compiled" in repr(compiled)
    assert flat.render(data, {"Id": "e"}) == compiled.render(data, {"Id": "e"})


def test_any_mapping_is_a_context() -> None:
    data = MappingProxyType({"a": MappingProxyType({"b": ["x"]})})
    assert handlebars.compile("{{a.b}}", html=False).render(data) == "x"
    assert handlebars.compile("{{#with a}}{{b}}{{/with}}", html=False).render(data) == "x"


def test_static_templates() -> None:
    assert handlebars.compile("no variables {{! at all }}", html=False).is_static
    assert not handlebars.compile("{{x}}", html=False).is_static


def test_a_registry_without_pinpoints_helpers_refuses_them() -> None:
    with pytest.raises(handlebars.TemplateError, match="unknown helper 'upper'"):
        handlebars.compile("{{upper x}}", html=False, helpers=handlebars.builtin_helpers())
    template = handlebars.compile(
        "{{#if x}}y{{/if}}", html=False, helpers=handlebars.builtin_helpers()
    )
    assert template.render({"x": 1}) == "y"


def test_custom_helpers_can_be_registered_on_a_copy() -> None:
    registry = handlebars.pinpoint_helpers().copy()
    registry.register(handlebars.Helper("shout", lambda args, o: str(args[0]).upper() + "!", 1, 1))
    assert (
        handlebars.compile("{{shout x}}", html=False, helpers=registry).render({"x": "hi"}) == "HI!"
    )
    assert "shout" not in handlebars.PINPOINT_HELPERS


def test_every_helper_on_pinpoints_page_is_registered() -> None:
    page = """and eq gt gte if lt lte neq not or abbreviate capitalize capitalizeFirst center cut
    dateFormat inflect join ljust lower now ordinalize replace rjust slugify stripTags substring
    upper yesno add ceiling decode64 divide encode64 floor md5 modulo multiply round sha256
    sha512 subtract uuid each with unless""".split()
    assert sorted(set(page) - set(handlebars.PINPOINT_HELPERS)) == []


def test_the_render_benchmark_runs_and_both_engines_print_the_same() -> None:
    # No timing is asserted: this keeps benchmarks/bench_render.py from rotting.
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_render.py", "--endpoints", "300", "--repeat", "1",
         "--json", "/dev/stdout"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    import json

    report = json.loads(out[out.index("{") :])
    samples = report["sample"]
    assert samples["mustache"] == samples["handlebars"] == samples["handlebars_pinpoint"]
    assert set(report["us_per_endpoint"]) == set(samples)
