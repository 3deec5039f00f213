"""parse_function_name: the forms Lambda's Invoke accepts, the region rule, bad names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.aws import partition_for_region
from dispatcher.errors import ConfigError
from dispatcher.hooks.lambda_names import LAMBDA_FUNCTION_NAME_PATTERN, parse_function_name

BOTOCORE_PATTERN = re.compile(LAMBDA_FUNCTION_NAME_PATTERN)


def test_pattern_is_botocores() -> None:
    """The reference pattern is the one in the installed botocore's Lambda model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    member = model.operation_model("Invoke").input_shape.members["FunctionName"]
    assert member.metadata["pattern"] == LAMBDA_FUNCTION_NAME_PATTERN


@pytest.mark.parametrize(
    ("name", "project", "expected"),
    [
        ("Thumbnail", "us-west-2", ("Thumbnail", None, "us-west-2", None, "aws")),
        ("Thumbnail:prod", "us-west-2", ("Thumbnail", "prod", "us-west-2", None, "aws")),
        ("Thumbnail:$LATEST", "us-west-2", ("Thumbnail", "$LATEST", "us-west-2", None, "aws")),
        ("my.fn_v-2:7", "eu-west-1", ("my.fn_v-2", "7", "eu-west-1", None, "aws")),
        (
            "123456789012:Thumbnail",
            "us-west-2",
            ("Thumbnail", None, "us-west-2", "123456789012", "aws"),
        ),
        (
            "123456789012:function:Thumbnail:live",
            "us-west-2",
            ("Thumbnail", "live", "us-west-2", "123456789012", "aws"),
        ),
        (
            "arn:aws:lambda:us-west-2:123456789012:function:ThumbNail",
            "us-west-2",
            ("ThumbNail", None, "us-west-2", "123456789012", "aws"),
        ),
        (
            "arn:aws:lambda:us-west-2:123456789012:function:ThumbNail:$LATEST.PUBLISHED",
            "us-west-2",
            ("ThumbNail", "$LATEST.PUBLISHED", "us-west-2", "123456789012", "aws"),
        ),
        (
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:hook:blue",
            "cn-north-1",
            ("hook", "blue", "cn-north-1", "123456789012", "aws-cn"),
        ),
        (
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:hook",
            "us-gov-west-1",
            ("hook", None, "us-gov-west-1", "123456789012", "aws-us-gov"),
        ),
        ("hook", "cn-northwest-1", ("hook", None, "cn-northwest-1", None, "aws-cn")),
    ],
)
def test_accepted_forms(name: str, project: str, expected: tuple[object, ...]) -> None:
    ref = parse_function_name(name, project)
    assert (ref.function_name, ref.qualifier, ref.region, ref.account, ref.partition) == expected
    assert str(ref) == name
    assert BOTOCORE_PATTERN.fullmatch(name)


def test_invoke_name_is_the_arn_when_the_account_is_known() -> None:
    assert parse_function_name("fn:prod", "us-east-1").invoke_name == "fn"
    partial = parse_function_name("123456789012:fn:prod", "us-east-1")
    assert partial.invoke_name == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert partial.qualifier == "prod"


def test_cross_region_arn_is_a_config_error_naming_both_regions() -> None:
    with pytest.raises(ConfigError) as info:
        parse_function_name("arn:aws:lambda:eu-west-1:123456789012:function:scorer", "us-east-1")
    message = str(info.value)
    assert "scorer" in message
    assert "eu-west-1" in message
    assert "us-east-1" in message


@pytest.mark.parametrize(
    "name",
    [
        "",
        "my function",
        "fn:",
        ":fn",
        "fn:1.0",  # dots are not allowed in qualifiers
        "fn:prod:extra",
        "a" * 65,  # names are at most 64 characters
        "fn:" + "q" * 129,  # qualifiers at most 128
        "arn:aws:lambda:us-east-1:12345:function:fn",  # account is 12 digits
        "arn:aws:lambda:us-east-1:123456789012:fn",  # ':function:' is required in an ARN
        "arn:aws:s3:us-east-1:123456789012:function:fn",
        "arn:aws-cn:lambda:us-east-1:123456789012:function:fn",  # partition/region mismatch
        "arn:aws:lambda:cn-north-1:123456789012:function:fn",
        "fn\n",
        "fünf",
    ],
)
def test_malformed_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        parse_function_name(name, "us-east-1")


def test_bad_project_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_function_name("fn", "")
    with pytest.raises(ConfigError):
        parse_function_name("fn", "US East")


def test_partitions() -> None:
    assert partition_for_region("us-east-1") == "aws"
    assert partition_for_region("cn-north-1") == "aws-cn"
    assert partition_for_region("us-gov-east-1") == "aws-us-gov"
    assert partition_for_region("us-iso-east-1") == "aws-iso"
    assert partition_for_region("local") == "aws"


# --- properties -------------------------------------------------------------------------

names = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."),
    min_size=1,
    max_size=64,
)
qualifiers = st.one_of(
    st.none(),
    st.just("$LATEST"),
    st.text(
        alphabet=st.sampled_from(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        ),
        min_size=1,
        max_size=128,
    ),
)
accounts = st.from_regex(r"\d{12}", fullmatch=True)
regions = st.sampled_from(["us-east-1", "eu-central-1", "ap-southeast-2", "cn-north-1"])


@given(names, qualifiers, accounts, regions, st.sampled_from(["plain", "partial", "fn", "arn"]))
def test_round_trip(name: str, qualifier: str | None, account: str, region: str, form: str) -> None:
    """Any valid combination parses back into its parts, and botocore agrees it is valid."""
    partition = partition_for_region(region)
    if form == "plain":
        base, expected_account = name, None
    elif form == "partial":
        base, expected_account = f"{account}:{name}", account
    elif form == "fn":
        base, expected_account = f"{account}:function:{name}", account
    else:
        base, expected_account = (
            f"arn:{partition}:lambda:{region}:{account}:function:{name}",
            account,
        )
    text = base if qualifier is None else f"{base}:{qualifier}"
    if form == "plain" and re.fullmatch(r"\d{12}", name) and qualifier is not None:
        return  # '123456789012:x' is a partial ARN by Lambda's own precedence
    ref = parse_function_name(text, region)
    assert ref.function_name == name
    assert ref.qualifier == qualifier
    assert ref.account == expected_account
    assert ref.region == region
    assert ref.partition == partition
    assert BOTOCORE_PATTERN.fullmatch(text)
    if ref.arn is not None:
        assert parse_function_name(ref.arn, region).arn == ref.arn


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_is_a_config_error(text: str) -> None:
    """Never another exception; whatever is accepted is valid by Lambda's own pattern."""
    try:
        ref = parse_function_name(text, "us-east-1")
    except ConfigError:
        return
    assert BOTOCORE_PATTERN.fullmatch(text)
    assert 1 <= len(ref.function_name) <= 64
    assert ref.region == "us-east-1"


@given(names, accounts, st.sampled_from(["eu-west-1", "ap-northeast-1", "us-west-2"]))
def test_any_other_region_is_rejected(name: str, account: str, region: str) -> None:
    with pytest.raises(ConfigError, match="us-east-1"):
        parse_function_name(f"arn:aws:lambda:{region}:{account}:function:{name}", "us-east-1")
