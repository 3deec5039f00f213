"""Helper behaviour the page leaves open, settled as Handlebars.java (jknack) settles it.

Each test names the jknack rule it pins; where this engine deviates on purpose, the
test says so (the deviations are listed in docs/templates.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dispatcher import handlebars
from dispatcher.handlebars import EACH_LIMIT, TemplateRenderError


def render(source: str, data: Any = None, **options: Any) -> str:
    return handlebars.compile(source, html=False, **options).render(data or {})


# ---- conditionals (ConditionalHelpers) -------------------------------------------------


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ('{{eq a "22"}}', {"a": 22}, "false"),  # equals: "22" is not 22
        ("{{eq a 2}}", {"a": 2.0}, "true"),  # but 2 is 2.0
        ("{{eq a b}}", {"a": ["x"], "b": ["x"]}, "true"),
        ('{{eq a "x"}}', {"a": ["x"]}, "false"),  # a list is not its item: use .[0]
        ('{{neq a "x"}}', {"a": "y"}, "true"),
        ("{{eq a null}} {{eq a undefined}} {{eq a ''}}", {}, "true true false"),
        ('{{eq a "x" yes="same" no="different"}}', {"a": "x"}, "same"),
        ('{{eq a "x" yes="same" no="different"}}', {"a": "y"}, "different"),
        ('{{gt a "17"}}', {"a": "9"}, "true"),  # compareTo on strings
        ("{{gt a 17}}", {"a": 9}, "false"),  # on numbers
        ("{{gte a 2}}", {"a": 2.0}, "true"),
        ("{{lt a b}}", {"a": "apple", "b": "banana"}, "true"),
        ("{{lte a b}}", {"a": False, "b": True}, "true"),
        ("{{and a b c}}", {"a": 1, "b": "x", "c": [0]}, "true"),
        ("{{and a b c}}", {"a": 1, "b": "x", "c": []}, "false"),
        ("{{or a b c}}", {"a": 0, "b": "", "c": False}, "false"),
        ("{{or a b c}}", {"a": 0, "b": "", "c": {}}, "true"),  # an empty object is not empty
        ("{{not a}}", {"a": 0}, "true"),
        ("{{not a yes='none' no='some'}}", {"a": ["x"]}, "some"),
        ("{{if a yes='y' no='n'}}", {"a": "x"}, "y"),
        ("{{if a}}", {}, "false"),
        ("{{#if a includeZero=true}}zero{{else}}nothing{{/if}}", {"a": 0}, "zero"),
        ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {"b": 1}, "B"),
        ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {}, "C"),
        ('{{#eq a "x"}}X{{else eq a "y"}}Y{{else}}Z{{/eq}}', {"a": "y"}, "Y"),
        ("{{#unless a}}none{{else}}some{{/unless}}", {"a": ""}, "none"),
        ('{{#eq a gold}}unquoted names stand for themselves{{/eq}}', {"a": "gold"},
         "unquoted names stand for themselves"),
    ],
)  # fmt: skip
def test_conditionals(source: str, data: dict[str, Any], expected: str) -> None:
    assert render(source, data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [({"a": "22", "b": 17}, "cannot compare '22', '17'"), ({"b": "1"}, "cannot compare null")],
)
def test_comparing_a_string_with_a_number_or_with_nothing_fails_the_render(
    data: dict[str, Any], message: str
) -> None:
    # jknack's cmp: compareTo throws ClassCastException / "Not a comparable: null".
    with pytest.raises(TemplateRenderError, match=message):
        render("{{#gt a b}}x{{/gt}}", data)


# ---- each ------------------------------------------------------------------------------


def test_each_renders_at_most_15_items_and_counts_the_cut() -> None:
    template = handlebars.compile("{{#each items}}{{this}},{{/each}}", html=False)
    out = template.render({"items": list(range(20))})
    assert out == "".join(f"{i}," for i in range(EACH_LIMIT))
    assert template.truncated == 1
    template.render({"items": list(range(15))})
    assert template.truncated == 1  # exactly 15 is not cut
    template.render({"items": {str(i): i for i in range(16)}})
    assert template.truncated == 2  # objects too
    assert "truncated=2" in repr(template)


def test_each_data_variables_are_handlebars_javas() -> None:
    # @first/@last print "first"/"last" (or nothing) in jknack; @index_1 is 1-based.
    source = "{{#each items}}[{{@index}}{{@index_1}}{{@first}}{{@last}}{{@odd}}{{@even}}]{{/each}}"
    assert render(source, {"items": ["a", "b", "c"]}) == "[01firsteven][12odd][23lasteven]"


# ---- strings (StringHelpers and Commons StringUtils/WordUtils) ------------------------


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("{{abbreviate s 6}}", {"s": "Alejan"}, "Alejan"),  # fits: unchanged
        ("{{capitalize s}}", {"s": "hELLO wORLD"}, "HELLO WORLD"),  # only first letters change
        ("{{capitalize s fully=true}}", {"s": "hELLO wORLD"}, "Hello World"),
        ("{{capitalizeFirst s}}", {"s": "élan vital"}, "Élan vital"),
        ("{{center s size=5 pad='*'}}", {"s": "ab"}, "*ab**"),  # the odd pad goes right
        ("{{center s size=1}}", {"s": "abc"}, "abc"),
        ("{{ljust s size=7 pad='xy'}}", {"s": "ab"}, "abxyxyx"),
        ("{{rjust s size=7 pad='xy'}}", {"s": "ab"}, "xyxyxab"),
        ("{{cut s}}", {"s": "a b c"}, "abc"),  # default: spaces
        ('{{join items " | " prefix="<" suffix=">"}}', {"items": ["a", "b"]}, "<a | b>"),
        ('{{join "a" "b" "c" "-"}}', {}, "a-b-c"),  # not a list: the arguments are joined
        ('{{join items ","}}', {"items": []}, ""),
        ("{{slugify s}}", {"s": "  Top 10 Deals_Now! "}, "top--dealsnow"),  # letters only
        ("{{stripTags s}}", {"s": "<p class='x'\n>Hi</p> <br/>there"}, "Hi there"),
        ("{{substring s 2}}", {"s": "Jane"}, "ne"),
        ('{{replace s "a" "o"}}', {"s": "banana"}, "bonono"),
        ("{{upper s}} {{lower s}}", {"s": ["Ana"]}, "ANA ana"),  # a one-item list is its item
        ("{{upper s}}", {"s": ["a", "b"]}, "A, B"),
        ("[{{upper nope}}][{{abbreviate nope 6}}][{{center nope size=3}}]", {}, "[][][]"),
        ("{{inflect n 'day' 'days' includeCount=true}}", {"n": "1"}, "1 day"),
        ("{{inflect n 'day' 'days'}}", {"n": 0}, "days"),
        ("{{yesno b}}", {"b": False}, "no"),
        ("{{yesno b}}", {}, "maybe"),
        ("{{yesno b yes='Y' no='N' maybe='?'}}", {"b": ["FALSE"]}, "N"),
    ],
)  # fmt: skip
def test_string_helpers(source: str, data: dict[str, Any], expected: str) -> None:
    assert render(source, data) == expected


def test_an_empty_value_prints_nothing_not_the_first_parameter() -> None:
    # Deviation, on purpose: jknack's StringHelpers return the first parameter for an
    # empty value ({{abbreviate Missing 6}} would print "6").
    assert render("[{{abbreviate x 6}}][{{substring x 1 2}}][{{replace x 'a' 'b'}}]") == "[][][]"


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
     (21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th"), ("112", "112th"), (23.0, "23rd"),
     (0, "0th"), (None, "")],
)  # fmt: skip
def test_ordinalize(n: Any, expected: str) -> None:
    assert render("{{ordinalize n}}", {"n": n}) == expected


# ---- math ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("{{add a b}}", {"a": "5", "b": ["2.3"]}, "7.3"),  # attribute strings are numbers too
        ("{{add 0.1 0.2}}", {}, "0.3"),  # decimal, not binary floating point
        ("{{subtract 1 1.5}}", {}, "-0.5"),
        ("{{multiply 3 0.1}}", {}, "0.3"),
        ("{{divide 10 4}}", {}, "2.5"),
        ("{{divide 2 3}}", {}, "0.66666667"),  # 8 places, half up
        ("{{modulo -7 2}}", {}, "-1"),  # the dividend's sign, like Java
        ("{{round 2.5}} {{round -2.5}}", {}, "3 -3"),  # half up
        ("{{ceiling -5.23}} {{floor -5.23}}", {}, "-5 -6"),
        ("{{round (divide 10 3)}}", {}, "3"),
        ("{{#gt (add 1 1) 1}}more{{/gt}}", {}, "more"),
    ],
)
def test_math(source: str, data: dict[str, Any], expected: str) -> None:
    assert render(source, data) == expected


def test_encodings_round_trip_utf8() -> None:
    assert render("{{decode64 (encode64 s)}}", {"s": "Grüße ✓"}) == "Grüße ✓"


# ---- dateFormat / now ------------------------------------------------------------------

MOMENT = {"D": "2020-09-19T10:05:09.007Z", "N": 1600509909007}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{dateFormat D "short"}}|{{dateFormat D}}|{{dateFormat D "long"}}',
         "9/19/20|Sep 19, 2020|September 19, 2020"),  # en_US, medium by default
        ('{{dateFormat D "full" locale="fr_FR"}}|{{dateFormat D "medium" "fr"}}',
         "samedi 19 septembre 2020|19 sept. 2020"),
        ('{{dateFormat D "full" locale="de_DE"}}|{{dateFormat D "medium" locale="de"}}',
         "Samstag, 19. September 2020|19.09.2020"),
        ('{{dateFormat D "full" locale="es_ES"}}|{{dateFormat D "short" locale="es"}}',
         "sábado, 19 de septiembre de 2020|19/9/20"),
        ('{{dateFormat D "full" locale="en_GB"}}|{{dateFormat D "medium" locale="en-GB"}}',
         "Saturday, 19 September 2020|19 Sept 2020"),
        ('{{dateFormat D "yyyy-MM-dd HH:mm:ss.SSS z" tz="Europe/Paris"}}',
         "2020-09-19 12:05:09.007 CEST"),
        ('{{dateFormat D "h:mm a Z XXX X" tz="America/New_York"}}', "6:05 AM -0400 -04:00 -04"),
        ('{{dateFormat D "yy G D F u k K"}}', "20 AD 263 3 6 10 10"),
        ("{{dateFormat D \"'Day' d 'of' MMMM, h 'o''clock'\"}}", "Day 19 of September, 10 o'clock"),
        ('{{dateFormat N "EEE, d MMM yyyy hh:mm a" tz=Demographic.Timezone}}',
         "Sat, 19 Sep 2020 07:05 PM"),  # epoch milliseconds; the zone from the endpoint
        ('{{dateFormat "2020-09-19T23:30:00-07:00" "yyyy-MM-dd HH:mm" tz="GMT+2"}}',
         "2020-09-20 08:30"),
        ('{{dateFormat "19 Sep 2020 3:04 PM" inputFormat="dd MMM yyyy h:mm a" '
         'outputFormat="yyyy-MM-dd HH:mm"}}', "2020-09-19 15:04"),
        ('{{dateFormat "20200919" inputFormat="yyyyMMdd" outputFormat="long"}}',
         "September 19, 2020"),
        ('{{dateFormat "09/19/20" inputFormat="MM/dd/yy" outputFormat="long"}}',
         "September 19, 2020"),
        ('{{dateFormat "2020-09-19 10:00 +0200" inputFormat="yyyy-MM-dd HH:mm Z" '
         'outputFormat="HH:mm XXX"}}', "08:00 Z"),
        ('{{dateFormat "2020-09-19" "yyyy-MM-dd z" tz=Bad.Timezone}}', "2020-09-19 UTC"),
        ('[{{dateFormat Missing "full"}}]', "[]"),
    ],
)  # fmt: skip
def test_date_format(source: str, expected: str) -> None:
    data = {**MOMENT, "Demographic": {"Timezone": "Asia/Tokyo"}, "Bad": {"Timezone": "Mars/X"}}
    assert render(source, data) == expected


def test_a_date_without_a_zone_is_read_in_the_output_zone() -> None:
    # So the page's "09/19/2020" in Los Angeles stays the 19th.
    source = '{{dateFormat "2020-09-19" "yyyy-MM-dd HH:mm XXX" tz=America/Los_Angeles}}'
    assert render(source) == "2020-09-19 00:00 -07:00"


def test_now_uses_the_injected_clock() -> None:
    helpers = handlebars.pinpoint_helpers(clock=lambda: datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC))
    source = '{{now "yyyy-MM-dd\'T\'HH:mm:ss"}} {{now "full" "fr" tz="Europe/Paris"}}'
    assert render(source, helpers=helpers) == "2021-01-02T03:04:05 samedi 2 janvier 2021"
