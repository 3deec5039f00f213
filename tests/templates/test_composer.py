"""The composer with Handlebars helpers: a render that fails fails one endpoint."""

from __future__ import annotations

import pytest

from dispatcher.render import Composer, RenderFailed

ENDPOINT = {"ChannelType": "SMS", "Address": "+12065550100", "Location": {"City": "Seattle"}}


def test_a_helper_that_refuses_its_value_fails_only_that_render() -> None:
    composer = Composer("SMS", {"Body": "{{substring Location.City 1 4}}"}, overridable=True,
                        where="x")  # fmt: skip
    assert composer.compose("e", ENDPOINT) == (None, "eat", None)
    with pytest.raises(RenderFailed, match="not rendered"):
        composer.compose("e", {**ENDPOINT, "Location": {"City": "LA"}})
