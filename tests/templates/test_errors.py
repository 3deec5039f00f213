"""Bad templates fail when compiled, with the position; bad data fails one render only."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher import handlebars
from dispatcher.errors import ConfigError, DispatchError
from dispatcher.handlebars import TemplateError, TemplateRenderError


def compile_error(source: str, **options: Any) -> TemplateError:
    with pytest.raises(TemplateError) as err:
        handlebars.compile(source, html=True, where="welcome.email: HtmlPart", **options)
    return err.value


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("Hi {{name", 1, 4, "unclosed mustache: expected '}}'"),
        ("line1\n  {{#if x}}\nno close", 2, 3, "{{#if x}} is never closed"),
        ("{{/if}}", 1, 1, "{{/if}} closes a block that was never opened"),
        ("{{#if a}}x{{/each}}", 1, 11, "{{/each}} does not close {{#if}}"),
        ("a\n{{else}}", 2, 1, "{{else}} outside a block"),
        ("{{foo bar=}}", 1, 11, "expected a name or a value, found '}}'"),
        ('{{upper "abc}}', 1, 9, "unterminated string"),
        ("{{{raw}}", 1, 7, "expected '}}}' to close '{{{'"),
        ("ok\n{{!-- never closed", 2, 1, "unclosed comment"),
        ("{{a.[b}}", 1, 5, "unterminated segment literal"),
        ("{{}}", 1, 3, "empty mustache"),
        ("{{{{raw}}}}x{{{{/raw}}}}", 1, 1, "raw blocks ({{{{raw}}}}) are not supported"),
        ("{{#each items as |item|}}{{/each}}", 1, 15, "block parameters"),
        ('{{#*inline foo}}{{/inline}}', 1, 12, "expected a partial name in quotes"),
        ("{{#*decorator}}{{/decorator}}", 1, 5, "only the inline decorator"),
        ("{{#hellos}}{{text/this/foo}}{{/hellos}}", 1, 14, "invalid path: text/this"),
    ],
)  # fmt: skip
def test_parse_errors_carry_line_and_column(
    source: str, line: int, column: int, message: str
) -> None:
    err = compile_error(source)
    assert (err.line, err.column) == (line, column)
    assert message in err.reason


def test_a_template_error_is_a_config_error_naming_the_template_part_and_position() -> None:
    err = compile_error("Hello\n  {{uper User.UserAttributes.FirstName.[0]}}")
    assert isinstance(err, ConfigError)
    assert err.where == "welcome.email: HtmlPart"
    assert str(err) == (
        "welcome.email: HtmlPart: invalid template at line 2, column 5: "
        "unknown helper 'uper' (did you mean 'upper'?)"
    )


@pytest.mark.parametrize(
    ("source", "column", "message"),
    [
        ("{{uper Name}}", 3, "unknown helper 'uper' (did you mean 'upper'?)"),
        ("{{#shout Name}}x{{/shout}}", 4, "unknown helper 'shout'"),
        ("{{User.Name Id}}", 3, "unknown helper 'User.Name'"),
        ("{{upper (shout Name)}}", 10, "unknown helper 'shout'"),
    ],
)
def test_unknown_helpers_fail_at_compile_time(source: str, column: int, message: str) -> None:
    err = compile_error(source)
    assert message in err.reason and err.column == column


@pytest.mark.parametrize(
    ("source", "column", "message"),
    [
        ("{{eq a}}", 3, "'eq' takes 2 arguments, got 1"),
        ("{{#gt a b c}}x{{/gt}}", 11, "'gt' takes 2 arguments, got 3"),
        ("{{substring x}}", 3, "'substring' takes 2 to 3 arguments, got 1"),
        ("{{and a}}", 3, "'and' takes at least 2 arguments, got 1"),
        ("{{not}}", 3, "'not' takes 1 argument, got 0"),
        ("{{uuid x}}", 8, "'uuid' takes 0 arguments, got 1"),
        ("{{upper}}", 3, "'upper' takes 1 argument, got 0"),
        ("{{add 1}}", 3, "'add' takes 2 arguments, got 1"),
        ("{{replace City \" \"}}", 3, "'replace' takes 3 arguments, got 2"),
        ("{{#if}}x{{/if}}", 4, "'if' takes 1 argument, got 0"),
        ("{{center x}}", 3, "'center' needs size="),
        ("{{ljust x pad='-'}}", 3, "'ljust' needs size="),
        ("{{#upper x}}y{{/upper}}", 4, "'upper' is not a block helper"),
        ("{{each x}}", 3, "'each' is a block helper"),
        ("{{with x}}", 3, "'with' is a block helper"),
        ("{{abbreviate x 3}}", 3, "the width must be a whole number, at least 4"),
        ("{{center x size='wide'}}", 3, "size= must be a whole number"),
        ("{{substring x 'a'}}", 3, "start and end must be whole numbers"),
        ("{{join x 1}}", 3, "the separator (last argument) must be a string"),
        ('{{dateFormat d "yyyy-qq"}}', 3, "'q' in pattern 'yyyy-qq' is not supported"),
        ('{{dateFormat d "yyyy-bb"}}', 3, "'b' in pattern 'yyyy-bb' is not"),
        ('{{now "zzzz"}}', 3, "long zone names (zzzz) are not supported"),
        ('{{dateFormat d locale="xx_YY"}}', 3, "locale 'xx_YY' is not supported"),
        ('{{dateFormat d tz="Mars/Olympus"}}', 3, "unknown time zone 'Mars/Olympus'"),
        ('{{now time="short"}}', 3, "time= (date-time styles) is not supported"),
    ],
)  # fmt: skip
def test_wrong_arguments_fail_at_compile_time(source: str, column: int, message: str) -> None:
    err = compile_error(source)
    assert message in err.reason
    assert (err.line, err.column) == (1, column)


def test_default_substitutions_that_are_not_json_name_the_position() -> None:
    err = compile_error("Hi {{name}}", defaults='{"name": "there",\n "x": }')
    assert err.reason.startswith("DefaultSubstitutions is not JSON")
    assert (err.line, err.column) == (2, 7)


def test_default_substitutions_must_be_an_object() -> None:
    assert "must be a JSON object" in compile_error("x", defaults='["a"]').reason


# ---- render errors: that endpoint fails, the template stays usable ------------------


@pytest.mark.parametrize(
    ("source", "data", "message"),
    [
        ('{{#gt User.Age.[0] "17"}}a{{/gt}}', {}, "cannot compare null, '17'"),
        ('{{gt Age 17}}', {"Age": "22"}, "cannot compare '22', '17'"),
        ("{{Attributes}}", {"Attributes": {"a": ["b"]}}, "is an object"),
        ("{{#if x}}{{Attributes}}{{/if}}", {"x": 1, "Attributes": {"a": 1}}, "is an object"),
        ("{{substring Name 2 10}}", {"Name": "Jane"}, "range 2..10 is outside 'Jane'"),
        ("{{divide 1 Zero}}", {"Zero": "0"}, "division by zero"),
        ("{{modulo 1 0}}", {}, "division by zero"),
        ("{{add Name 1}}", {"Name": "Jane"}, "found 'Jane', expected a number"),
        ("{{yesno Flag}}", {"Flag": "perhaps"}, "found 'perhaps', expected true or false"),
        ("{{decode64 Code}}", {"Code": "%%%"}, "not valid base64"),
        ("{{dateFormat D}}", {"D": "19/09/2020"}, "is not an ISO 8601 date"),
        ('{{dateFormat D inputFormat="MM/dd/yyyy"}}', {"D": "2020-09-19"}, "does not match"),
        ("{{ordinalize N}}", {"N": "2.5"}, "expected a whole number"),
    ],
)  # fmt: skip
def test_render_errors_name_the_template_and_position(
    source: str, data: dict[str, Any], message: str
) -> None:
    template = handlebars.compile("Hi\n" + source, html=False, where="otp.sms: Body")
    with pytest.raises(TemplateRenderError) as err:
        template.render(data)
    assert isinstance(err.value, DispatchError) and not isinstance(err.value, ConfigError)
    assert message in err.value.reason
    assert err.value.where == "otp.sms: Body" and err.value.line == 2
    assert str(err.value).startswith("otp.sms: Body: line 2, column ")


def test_a_failed_render_leaves_the_template_usable() -> None:
    template = handlebars.compile("{{upper Name}} {{substring Name 0 3}}", html=False)
    with pytest.raises(TemplateRenderError):
        template.render({"Name": "Al"})
    assert template.render({"Name": "Alice"}) == "ALICE Ali"


def test_printing_an_object_on_the_fast_path_is_a_render_error_too() -> None:
    template = handlebars.compile("Hi {{User}}", html=False, where="t")
    with pytest.raises(TemplateRenderError, match="line 1, column 4: is an object"):
        template.render({"User": {"UserId": "u1"}})
