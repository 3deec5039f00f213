"""Today's templates render the same through the Handlebars engine as through pystache.

The templates are collected from the places the brief names, not copied: every string
holding ``{{`` in ``config/example.toml``, in the TOML examples of README.md and docs/, and in
``tests/test_render.py`` and ``tests/test_campaign*.py``. Each renders with
``dispatcher.render.Template`` (Mustache) and ``dispatcher.handlebars`` over endpoints
like the tests' own, as text and as HTML; both must agree, or both refuse the template.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from benchmarks.legacy_render import Template as MustacheTemplate
from dispatcher import handlebars
from dispatcher.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def collected() -> dict[str, set[str]]:
    """Template sources, each with the files it was found in."""
    found: dict[str, set[str]] = {}

    def add(source: str, where: str) -> None:
        if "{{" in source:
            found.setdefault(source, set()).add(where)

    for s in _strings(tomllib.loads((ROOT / "config/example.toml").read_text())):
        add(s, "config/example.toml")
    for doc in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))]:
        for s in re.findall(r'^\w+ = "(.*\{\{.*)"$', doc.read_text(), re.M):
            add(s, str(doc.relative_to(ROOT)))
    for path in [ROOT / "tests/test_render.py", *sorted(ROOT.glob("tests/test_campaign*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                add(node.value, str(path.relative_to(ROOT)))
    return found


TEMPLATES = collected()

ENDPOINTS: list[dict[str, Any]] = [
    {  # tests/test_render.py's endpoint
        "ChannelType": "SMS", "Address": "+12065550100",
        "Attributes": {"Interests": ["Science", "Music"], "Html": ["<b>&</b>"],
                       "CreditScore": ["742"]},
        "User": {"UserId": "u-1", "UserAttributes": {"FirstName": ["Ana"]}},
        "Demographic": {"Platform": "ios"}, "Location": {"City": "Seattle"},
        "Metrics": {"visits": 3.0, "ratio": 0.5},
    },
    {  # config/sample-segment.jsonl's shape, with quotes and ampersands in values
        "ChannelType": "EMAIL", "Address": "a@example.com",
        "Attributes": {"CreditScore": ["<680 & \"fair\">"], "Tier": ["gold"]},
        "User": {"UserId": "u-2", "UserAttributes": {"FirstName": ["O'Brien"]}},
        "Location": {"City": "Tacoma", "Country": "US"},
    },
    {"ChannelType": "SMS", "Address": "+1"},  # nothing to fill in
]  # fmt: skip


def test_the_collection_finds_the_known_templates() -> None:
    where = set().union(*TEMPLATES.values())
    assert {"config/example.toml", "tests/test_render.py"} <= where
    assert "docs/configuration.md" in where, "the configuration reference's examples"
    assert any(w.startswith("tests/test_campaign") for w in where)
    assert (
        "Hi {{User.UserAttributes.FirstName}}, your score is {{Attributes.CreditScore}}"
        in TEMPLATES
    )
    assert "{{#Attributes.Interests}}<{{.}}>{{/Attributes.Interests}}" in TEMPLATES


def _mustache(source: str, html: bool) -> MustacheTemplate | None:
    try:
        return MustacheTemplate(source, html_mode=html)
    except ConfigError:
        return None


@pytest.mark.parametrize("html", [False, True], ids=["text", "html"])
@pytest.mark.parametrize("source", sorted(TEMPLATES), ids=lambda s: s[:48])
def test_renders_the_same_as_pystache(source: str, html: bool) -> None:
    old = _mustache(source, html)
    if old is None:  # refused by pystache (an unclosed section): refused by Handlebars too
        with pytest.raises(handlebars.TemplateError):
            handlebars.compile(source, html=html)
        return
    new = handlebars.compile(source, html=html)
    for endpoint in ENDPOINTS:
        extra = {"Id": "ep-9"}
        assert new.render(endpoint, extra) == old.render(endpoint, extra)


def test_the_escape_set_is_handlebars_not_html_escape() -> None:
    # The one intended difference: Handlebars also escapes ` and = in HTML.
    value = {"v": "a=`b`"}
    assert MustacheTemplate("{{v}}", html_mode=True).render(value, {}) == "a=`b`"
    assert handlebars.compile("{{v}}", html=True).render(value) == "a&#x3D;&#x60;b&#x60;"
