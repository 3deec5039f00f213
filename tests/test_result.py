"""The FILTER return-value validator."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.errors import HookResultError
from dispatcher.hooks.result import filter_result

IDS = {"a", "b", "c"}


def test_accepts_a_subset_and_counts_unknown_ids() -> None:
    accepted, ignored = filter_result({"a": {}, "c": {"ChannelType": "SMS"}, "zz": {}}, IDS)
    assert set(accepted) == {"a", "c"} and ignored == 1


def test_numbers_in_attribute_lists_become_strings() -> None:
    result = {
        "a": {
            "Attributes": {"CreditScore": [712, 1.5, True, None], "One": 3},
            "User": {"UserAttributes": {"Age": [40]}},
        }
    }
    accepted, _ = filter_result(result, IDS)
    assert accepted["a"]["Attributes"] == {"CreditScore": ["712", "1.5", "true"], "One": ["3"]}
    assert accepted["a"]["User"]["UserAttributes"] == {"Age": ["40"]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "hook returned an array"),
        ({"Endpoints": {"a": {}}, "ApplicationId": "x"}, "whole event"),
        ({"a": "yes"}, "definition of endpoint 'a' is a string"),
        ({"a": {"Attributes": ["x"]}}, "Attributes is an array"),
        ({"a": {"Attributes": {"x": [{"nested": 1}]}}}, "holds an object"),
        ({"a": {"User": "bob"}}, "User is a string"),
        ({"a": {"Demographic": []}}, "Demographic is an array"),
    ],
)
def test_rejects_anything_but_the_endpoints_map(value: Any, message: str) -> None:
    with pytest.raises(HookResultError, match=message):
        filter_result(value, IDS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "x", "Attributes", "User", "Endpoints"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_any_json_value_is_accepted_or_rejected_cleanly(value: Any) -> None:
    try:
        accepted, ignored = filter_result(value, IDS)
    except HookResultError as exc:
        assert exc.reason
        return
    assert isinstance(value, dict)
    assert set(accepted) <= IDS
    assert ignored == len(set(value) - IDS)
    for definition in accepted.values():
        for values in (definition.get("Attributes") or {}).values():
            assert all(isinstance(v, str) for v in values)
