"""Message variables and the per-channel composer."""

from __future__ import annotations

import pytest

from dispatcher.errors import ConfigError
from dispatcher.render import Composer, RenderFailed, compile_template

ENDPOINT = {
    "ChannelType": "SMS",
    "Address": "+12065550100",
    "Attributes": {"Interests": ["Science", "Music"], "Html": ["<b>&</b>"]},
    "User": {"UserId": "u-1", "UserAttributes": {"FirstName": ["Ana"]}},
    "Demographic": {"Platform": "ios"},
    "Location": {"City": "Seattle"},
    "Metrics": {"visits": 3.0, "ratio": 0.5},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{User.UserAttributes.FirstName}}", "Hi Ana"),
        ("{{Attributes.Interests}}", "Science, Music"),
        ("[{{Attributes.Missing}}][{{Nope.Deeper.Still}}]", "[][]"),
        (
            "{{Demographic.Platform}}/{{Location.City}}/{{Metrics.visits}}/{{Metrics.ratio}}",
            "ios/Seattle/3/0.5",
        ),
        ("{{Address}} {{ChannelType}} {{Id}} {{User.UserId}}", "+12065550100 SMS ep-9 u-1"),
        ("{{Attributes.Html}}", "<b>&</b>"),
        ("{{#Attributes.Interests}}<{{.}}>{{/Attributes.Interests}}", "<Science><Music>"),
        ("no variables", "no variables"),
    ],
)
def test_text_rendering(source: str, expected: str) -> None:
    template = compile_template(source)
    assert template is not None and template.render(ENDPOINT, {"Id": "ep-9"}) == expected


def test_html_escapes_values_but_triple_braces_are_raw() -> None:
    t = compile_template(
        "<p>{{Attributes.Html}}|{{{Attributes.Html}}}|{{Attributes.Interests}}</p>", html=True
    )
    assert t is not None
    assert t.render(ENDPOINT, {}) == "<p>&lt;b&gt;&amp;&lt;/b&gt;|<b>&</b>|Science, Music</p>"


def test_html_escapes_in_sections_too() -> None:
    t = compile_template("{{#User}}{{Attributes.Html}}{{/User}}", html=True)
    assert t is not None and t.render(ENDPOINT, {}) == "&lt;b&gt;&amp;&lt;/b&gt;"


def test_invalid_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid template"):
        compile_template("{{#open}} never closed", where="campaign.X.Body")


def test_composer_overrides_for_sms_not_email() -> None:
    message = {"Title": "T {{Id}}", "Body": "B {{User.UserAttributes.FirstName}}"}
    definition = {**ENDPOINT, "TitleOverride": "over-t", "BodyOverride": "over-b"}
    sms = Composer("SMS", message, overridable=True, where="x")
    email = Composer("EMAIL", message, overridable=False, where="x")
    assert sms.compose("e", definition) == ("over-t", "over-b", None)
    assert email.compose("e", definition) == ("T e", "B Ana", None)


def test_strict_variables_fail_the_endpoint_naming_the_variable() -> None:
    message = {"Body": "Hi {{User.UserAttributes.FirstNam}}, {{Attributes.Interests}}"}
    strict = Composer("SMS", message, overridable=True, where="x", strict=True)
    with pytest.raises(RenderFailed, match=r"User\.UserAttributes\.FirstNam is empty"):
        strict.compose("e", ENDPOINT)
    lenient = Composer("SMS", message, overridable=True, where="x")
    assert lenient.compose("e", ENDPOINT) == (None, "Hi , Science, Music", None)

