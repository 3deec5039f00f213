"""The missing-variable report and DefaultSubstitutions (both shapes).

Rule: a path is reported (as written) when its value is *printed* — directly, or as an
argument of a value helper such as ``upper`` — and prints as nothing after defaults
(absent, null, "", []). Paths used only as conditions (``#if``, ``eq``, ``#each``,
``#with``, sections) are not reported.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher import handlebars

ENDPOINT: dict[str, Any] = {
    "User": {"UserId": "u1", "UserAttributes": {"FirstName": ["Jane"], "Last Name": ["Doe"],
                                                "Empty": [""], "None": []}},
    "Attributes": {"Score": ["0"], "Flag": [False]},
    "Metrics": {"visits": 0},
}  # fmt: skip


def missing_of(
    source: str, data: dict[str, Any] = ENDPOINT, **options: Any
) -> tuple[str, list[str]]:
    missing: list[str] = []
    out = handlebars.compile(source, html=False, **options).render(data, {"Id": "ep-1"}, missing)
    return out, missing


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{User.UserAttributes.FirstNam}}", ["User.UserAttributes.FirstNam"]),
        ("Hi {{User.UserAttributes.FirstName.[1]}}", ["User.UserAttributes.FirstName.[1]"]),
        ("{{User.UserAttributes.[Last Name].[0]}}{{User.UserAttributes.[First Name].[0]}}",
         ["User.UserAttributes.[First Name].[0]"]),
        ("{{User.UserAttributes.Empty}}|{{User.UserAttributes.None}}",
         ["User.UserAttributes.Empty", "User.UserAttributes.None"]),
        ("{{{Attributes.Html}}}", ["Attributes.Html"]),
        ("{{upper User.UserAttributes.Nick.[0]}}", ["User.UserAttributes.Nick.[0]"]),
        ("{{capitalizeFirst (lower User.UserAttributes.Nick.[0])}}",
         ["User.UserAttributes.Nick.[0]"]),
        ("{{#if User.UserAttributes.FirstName}}{{Attributes.Tier}}{{/if}}", ["Attributes.Tier"]),
        ("{{#each User.UserAttributes.FirstName}}{{this}} {{Attributes.Tier}}{{/each}}",
         ["Attributes.Tier"]),
        ("{{#* inline \"p\"}}{{Attributes.Tier}}{{/inline}}{{> p}}{{> p}}",
         ["Attributes.Tier", "Attributes.Tier"]),
    ],
)  # fmt: skip
def test_printed_paths_that_print_nothing_are_reported_as_written(
    source: str, expected: list[str]
) -> None:
    assert missing_of(source)[1] == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{#if User.UserAttributes.Nick}}x{{/if}}",
        "{{#unless User.UserAttributes.Nick}}x{{/unless}}",
        '{{#eq User.UserAttributes.Nick.[0] "a"}}x{{else}}y{{/eq}}',
        '{{eq User.UserAttributes.Nick.[0] "a" yes="x" no="y"}}',
        "{{not User.UserAttributes.Nick}}",
        "{{#and User.UserAttributes.Nick Attributes.Nope}}x{{/and}}",
        "{{#each User.UserAttributes.Nicks}}{{this}}{{else}}none{{/each}}",
        "{{#with User.Profile}}{{Name}}{{/with}}",
        "{{#User.UserAttributes.Nicks}}{{.}}{{/User.UserAttributes.Nicks}}",
        "{{#if User.UserAttributes.Nick}}{{User.UserAttributes.Nick}}{{/if}}",
        "{{@index}}{{Id}}",
    ],
)
def test_conditions_and_unrendered_branches_are_not_reported(source: str) -> None:
    assert missing_of(source)[1] == []


def test_present_falsy_values_are_not_missing() -> None:
    out, missing = missing_of("{{Attributes.Score}}/{{Attributes.Flag}}/{{Metrics.visits}}")
    assert (out, missing) == ("0/false/0", [])


def test_the_report_is_optional_and_rendering_is_the_same_without_it() -> None:
    template = handlebars.compile("Hi {{User.UserAttributes.Nick}}!", html=False)
    assert template.render(ENDPOINT) == "Hi !"
    assert template.render(ENDPOINT, None, None) == "Hi !"


def test_fast_and_compiled_templates_report_alike() -> None:
    flat = "A {{User.UserAttributes.Nick}} {{User.UserAttributes.FirstName}} {{Attributes.X.[0]}}"
    compiled = flat + "{{#if true}}{{/if}}"
    assert missing_of(flat) == missing_of(compiled)
    assert missing_of(flat)[1] == ["User.UserAttributes.Nick", "Attributes.X.[0]"]


# ---- DefaultSubstitutions ----------------------------------------------------------

FLAT = {"User.UserAttributes.FirstName": "there", "Attributes.Tier": ["silver"], "name": "User"}
NESTED = {"User": {"UserAttributes": {"FirstName": "there"}}, "Attributes": {"Tier": ["silver"]},
          "name": "User"}  # fmt: skip


@pytest.mark.parametrize("defaults", [FLAT, NESTED], ids=["dotted keys", "nested object"])
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{User.UserAttributes.FirstName}}", "Hi there"),
        ("Hi {{User.UserAttributes.FirstName.[0]}}", "Hi there"),
        ("{{Attributes.Tier}}/{{Attributes.Tier.[0]}}", "silver/silver"),
        ("{{name}}", "User"),
        ("{{upper User.UserAttributes.FirstName.[0]}}", "THERE"),
        ("{{#if User.UserAttributes.FirstName.[0]}}named{{else}}anonymous{{/if}}", "named"),
    ],
)
def test_defaults_fill_missing_values(defaults: dict[str, Any], source: str, expected: str) -> None:
    out, missing = missing_of(source, {}, defaults=defaults)
    assert (out, missing) == (expected, [])


@pytest.mark.parametrize("defaults", [FLAT, NESTED], ids=["dotted keys", "nested object"])
def test_the_endpoint_value_wins_over_the_default(defaults: dict[str, Any]) -> None:
    out, _ = missing_of("{{User.UserAttributes.FirstName.[0]}} {{Attributes.Tier}}", ENDPOINT,
                        defaults=defaults)  # fmt: skip
    assert out == "Jane silver"  # Tier is absent from ENDPOINT, so its default shows


def test_defaults_as_pinpoints_json_string() -> None:
    source = "Hi {{User.UserAttributes.FirstName}}, {{Attributes.Purchase}}"
    dotted = '{"User.UserAttributes.FirstName": "there"}'
    nested = '{"Attributes": {"Purchase": "Test"}}'
    assert missing_of(source, {}, defaults=dotted) == ("Hi there, ", ["Attributes.Purchase"])
    assert missing_of(source, {}, defaults=nested) == (
        "Hi , Test", ["User.UserAttributes.FirstName"])  # fmt: skip


def test_the_exact_key_as_written_comes_first() -> None:
    defaults = {"User.UserAttributes.FirstName.[0]": "exact", "User.UserAttributes.FirstName": "x"}
    assert missing_of("{{User.UserAttributes.FirstName.[0]}}", {}, defaults=defaults)[0] == "exact"


def test_an_empty_value_takes_the_default_and_an_empty_default_is_still_missing() -> None:
    data = {"User": {"UserAttributes": {"FirstName": [""]}}}
    assert missing_of("{{User.UserAttributes.FirstName}}", data, defaults=FLAT) == ("there", [])
    out, missing = missing_of("{{Attributes.Nope}}", {}, defaults={"Attributes.Nope": ""})
    assert (out, missing) == ("", ["Attributes.Nope"])


def test_defaults_are_html_escaped_like_values() -> None:
    template = handlebars.compile("{{a}}|{{{a}}}", html=True, defaults={"a": "<b>"})
    assert template.render({}) == "&lt;b&gt;|<b>"


def test_extra_fields_such_as_id_are_found_first() -> None:
    template = handlebars.compile("{{Id}} {{#with x}}{{Id}} {{@root.Id}}{{/with}}", html=False)
    assert template.render({"Id": "inner", "x": {"y": 1}}, {"Id": "ep-9"}) == "ep-9 ep-9 ep-9"
    flat = handlebars.compile("{{Id}}/{{Address}}", html=False)
    assert flat.render({"Address": "+1"}, {"Id": "ep-9"}) == "ep-9/+1"
