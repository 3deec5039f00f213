"""Lambda resource policies: parsing every printed form, IAM-style evaluation, add-permission."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.errors import ConfigError
from dispatcher.policy import load_policy, parse_policy, source_arn
from dispatcher.policy_files import add_permission

ACCOUNT = "111122223333"
ARN = source_arn("us-east-1", ACCOUNT, "app-1", "camp-1")
OTHER_CAMPAIGN = source_arn("us-east-1", ACCOUNT, "app-1", "camp-2")
OTHER_APP = source_arn("us-east-1", ACCOUNT, "app-2", "camp-1")
PINPOINT = f"arn:aws:mobiletargeting:us-east-1:{ACCOUNT}"


def statement(**over: Any) -> dict[str, Any]:
    """The Pinpoint guide's example statement, for one campaign, with overrides."""
    stmt: dict[str, Any] = {
        "Sid": "sid",
        "Effect": "Allow",
        "Principal": {"Service": "pinpoint.us-east-1.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:credit",
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": ACCOUNT},
            "ArnLike": {"AWS:SourceArn": ARN},
        },
    }
    stmt.update(over)
    return {k: v for k, v in stmt.items() if v is not None}


def policy(*statements: dict[str, Any]) -> Any:
    return parse_policy({"Version": "2012-10-17", "Id": "default", "Statement": list(statements)})


def test_source_arn() -> None:
    assert ARN == "arn:aws:mobiletargeting:us-east-1:111122223333:apps/app-1/campaigns/camp-1"
    assert source_arn("cn-north-1", ACCOUNT, "a", "c").startswith("arn:aws-cn:mobiletargeting:")


def test_single_campaign_statement() -> None:
    p = policy(statement())
    assert p.allows(ARN, ACCOUNT)
    assert not p.allows(OTHER_CAMPAIGN, ACCOUNT)
    assert not p.allows(OTHER_APP, ACCOUNT)
    assert not p.allows(ARN, "999999999999")
    assert not p.allows(ARN, None)  # StringEquals on a missing key is false


def test_seed_example_statement_with_empty_service_principal() -> None:
    seed = {
        "Sid": "sid",
        "Effect": "Allow",
        "Principal": {"Service": ""},
        "Action": "lambda:InvokeFunction",
        "Resource": "{arn:aws:lambda:us-east-1:account-id:function:function-name}",
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": ACCOUNT},
            "ArnLike": {"AWS:SourceArn": f"{PINPOINT}:apps/app-1/campaigns/*"},
        },
    }
    p = parse_policy(seed)
    assert p.allows(ARN, ACCOUNT) and p.allows(OTHER_CAMPAIGN, ACCOUNT)
    assert not p.allows(OTHER_APP, ACCOUNT)


@pytest.mark.parametrize(
    "pattern,allowed",
    [
        (f"{PINPOINT}:apps/app-1/campaigns/*", {ARN, OTHER_CAMPAIGN}),
        ("arn:aws:mobiletargeting:*:111122223333:apps/*", {ARN, OTHER_CAMPAIGN, OTHER_APP}),
        (f"{PINPOINT}:apps/app-?/campaigns/camp-1", {ARN, OTHER_APP}),
        ("arn:aws:mobiletargeting:us-east-1:*:apps/app-1/campaigns/camp-?", {ARN, OTHER_CAMPAIGN}),
        ("arn:aws:mobiletargeting:us-east-1:111122223333:apps/app-1/campaigns/camp-1*", {ARN}),
        ("arn:aws:mobiletargeting:us-west-2:111122223333:apps/*", set()),
        ("arn:aws:mobiletargeting:us-east-1:111122223333:apps/app-1", set()),
        ("arn:aws:mobiletargeting:*", {ARN, OTHER_CAMPAIGN, OTHER_APP}),  # last part: the rest
        ("arn:aws:sns:*", set()),
        ("*", {ARN, OTHER_CAMPAIGN, OTHER_APP}),
    ],
)
def test_arn_like_wildcards(pattern: str, allowed: set[str]) -> None:
    p = policy(statement(Condition={"ArnLike": {"AWS:SourceArn": pattern}}))
    for arn in (ARN, OTHER_CAMPAIGN, OTHER_APP):
        assert p.allows(arn, ACCOUNT) is (arn in allowed), arn


def test_string_like_and_equals() -> None:
    like = policy(statement(Condition={"StringLike": {"aws:sourcearn": "*:apps/app-1/*"}}))
    assert like.allows(ARN, ACCOUNT) and not like.allows(OTHER_APP, ACCOUNT)
    equals = policy(statement(Condition={"StringEquals": {"AWS:SOURCEARN": [OTHER_APP, ARN]}}))
    assert equals.allows(ARN, ACCOUNT) and equals.allows(OTHER_APP, ACCOUNT)
    assert not equals.allows(OTHER_CAMPAIGN, ACCOUNT)
    no_wildcards = policy(statement(Condition={"StringEquals": {"AWS:SourceArn": "*"}}))
    assert not no_wildcards.allows(ARN, ACCOUNT)


def test_leading_slash_form_matches_both_ways() -> None:
    slash = f"arn:aws:mobiletargeting:us-east-1:{ACCOUNT}:/apps/app-1/campaigns/*"
    p = policy(statement(Condition={"ArnLike": {"AWS:SourceArn": slash}}))
    assert p.allows(ARN, ACCOUNT)
    assert not p.allows(OTHER_APP, ACCOUNT)
    old_request = f"arn:aws:mobiletargeting:us-east-1:{ACCOUNT}:/apps/app-1/campaigns/camp-1"
    assert policy(statement()).allows(old_request, ACCOUNT)


def test_negated_operator_holds_only_for_both_forms() -> None:
    """Deny everything but app-1, written with the old slash form: app-1 still passes."""
    slash = f"arn:aws:mobiletargeting:us-east-1:{ACCOUNT}:/apps/app-1/*"
    p = policy(
        statement(Sid="allow-all", Condition={"StringEquals": {"AWS:SourceAccount": ACCOUNT}}),
        statement(
            Sid="only-app-1", Effect="Deny", Condition={"ArnNotLike": {"AWS:SourceArn": slash}}
        ),
    )
    assert p.allows(ARN, ACCOUNT)
    assert not p.allows(OTHER_APP, ACCOUNT)
    decision = p.evaluate(OTHER_APP, ACCOUNT)
    assert decision.statement is not None and decision.statement.sid == "only-app-1"


def test_explicit_deny_wins() -> None:
    allow_project = statement(
        Sid="project",
        Condition={
            "ArnLike": {
                "AWS:SourceArn": f"arn:aws:mobiletargeting:us-east-1:{ACCOUNT}:apps/app-1/*"
            }
        },
    )
    deny_one = statement(
        Sid="not-camp-2", Effect="Deny", Condition={"ArnEquals": {"AWS:SourceArn": OTHER_CAMPAIGN}}
    )
    for p in (policy(allow_project, deny_one), policy(deny_one, allow_project)):
        assert p.allows(ARN, ACCOUNT)
        assert not p.allows(OTHER_CAMPAIGN, ACCOUNT)
        assert "explicitly denied" in p.evaluate(OTHER_CAMPAIGN, ACCOUNT).reason
    deny_slash = statement(
        Sid="deny-slash",
        Effect="Deny",
        Condition={"ArnLike": {"AWS:SourceArn": f"{PINPOINT}:/apps/app-1/campaigns/camp-1"}},
    )
    assert not policy(allow_project, deny_slash).allows(ARN, ACCOUNT)


def test_no_statement_means_implicit_deny() -> None:
    p = policy()
    assert not p.allows(ARN, ACCOUNT)
    assert p.evaluate(ARN, ACCOUNT).reason == "no statement allows it"


@pytest.mark.parametrize(
    "principal,matches",
    [
        ({"Service": "pinpoint.amazonaws.com"}, True),
        ({"Service": "pinpoint.eu-west-1.amazonaws.com"}, True),
        ({"Service": ["sns.amazonaws.com", "PINPOINT.us-east-1.amazonaws.com"]}, True),
        ({"Service": ""}, True),
        ("*", True),
        ({"AWS": "*"}, True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, False),
        ({"AWS": ACCOUNT}, False),
        ({"Service": "sns.amazonaws.com"}, False),
        ({"Service": "evil-pinpoint.amazonaws.com"}, False),
        ({"Federated": "cognito-identity.amazonaws.com"}, False),
    ],
)
def test_principals(principal: Any, matches: bool) -> None:
    assert policy(statement(Principal=principal)).allows(ARN, ACCOUNT) is matches


def test_not_principal_deny() -> None:
    p = policy(
        statement(Principal="*", Condition=None),
        statement(
            Sid="d",
            Effect="Deny",
            Principal=None,
            NotPrincipal={"Service": "pinpoint.amazonaws.com"},
            Condition=None,
        ),
    )
    assert p.allows(ARN, ACCOUNT)  # Pinpoint is the exception to the deny


@pytest.mark.parametrize(
    "action,matches",
    [
        ("lambda:InvokeFunction", True),
        ("LAMBDA:invokefunction", True),
        ("lambda:*", True),
        ("*", True),
        ("lambda:Invoke*", True),
        (["lambda:GetFunction", "lambda:InvokeFunction"], True),
        ("lambda:InvokeAsync", False),
        ("lambda:GetFunction", False),
        ("s3:*", False),
        ("lambda:InvokeFunctionUrl", False),
    ],
)
def test_actions(action: Any, matches: bool) -> None:
    assert policy(statement(Action=action)).allows(ARN, ACCOUNT) is matches


def test_not_action() -> None:
    assert not policy(statement(Action=None, NotAction="lambda:Invoke*")).allows(ARN, ACCOUNT)
    assert policy(statement(Action=None, NotAction="lambda:GetPolicy")).allows(ARN, ACCOUNT)


def test_condition_operator_variants() -> None:
    def allows(condition: dict[str, Any], account: str | None = ACCOUNT) -> bool:
        return bool(policy(statement(Condition=condition)).allows(ARN, account))

    assert allows({"StringNotEquals": {"AWS:SourceAccount": "999999999999"}})
    assert not allows({"StringNotEquals": {"AWS:SourceAccount": ACCOUNT}})
    assert allows({"StringNotEquals": {"AWS:SourceAccount": ACCOUNT}}, None)  # IAM: key absent
    assert allows({"StringEqualsIfExists": {"AWS:SourceAccount": ACCOUNT}}, None)
    assert not allows({"StringEqualsIfExists": {"AWS:SourceAccount": "999999999999"}})
    assert allows({"StringEqualsIgnoreCase": {"AWS:SourceArn": ARN.upper()}})
    assert allows({"Null": {"AWS:SourceAccount": "true"}}, None)
    assert not allows({"Null": {"AWS:SourceAccount": "true"}})
    assert allows({"StringEquals": {"AWS:SourceAccount": int(ACCOUNT)}})  # a JSON number
    assert allows({"ForAnyValue:StringLike": {"AWS:SourceArn": "*camp-1"}})
    assert not allows({"StringEquals": {"aws:PrincipalOrgID": "o-1234567890"}})
    assert not allows({"NumericEquals": {"AWS:SourceAccount": ACCOUNT}})
    assert not allows({"ArnNotLike": {"AWS:SourceArn": "arn:aws:mobiletargeting:*:*:apps/*"}})


@pytest.mark.parametrize(
    "form",
    ["document", "single-statement", "bare", "get-policy", "add-permission", "statement-object"],
)
def test_every_printed_form_loads(tmp_path: Path, form: str) -> None:
    stmt = statement()
    doc = {"Version": "2012-10-17", "Id": "default", "Statement": [stmt]}
    data: Any = {
        "document": doc,
        "single-statement": {**doc, "Statement": stmt},
        "bare": stmt,
        "get-policy": {"Policy": json.dumps(doc), "RevisionId": "abc"},
        "add-permission": {"Statement": json.dumps(stmt)},
        "statement-object": {"Statement": json.dumps([stmt])},
    }[form]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    p = load_policy(path)
    assert [s.sid for s in p.statements] == ["sid"]
    assert p.allows(ARN, ACCOUNT) and not p.allows(OTHER_APP, ACCOUNT)


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "a statement must be an object"),
        ('{"Version": "2012-10-17"}', "needs a Statement"),
        ('{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "*"}]}', "Effect"),
        ('{"Statement": [{"Effect": "Allow", "Action": "*"}]}', "Principal"),
        ('{"Statement": [{"Effect": "Allow", "Principal": "*"}]}', "Action"),
        (
            '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*",'
            ' "Condition": {"StringMaybe": {"aws:SourceArn": "x"}}}]}',
            "unknown condition operator",
        ),
        ('{"Policy": "{oops"}', "invalid JSON"),
    ],
)
def test_invalid_policies_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_policy(path)
    assert err.value.file == str(path)
    assert str(path) in str(err.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read policy") as err:
        load_policy(tmp_path / "nope.json")
    assert err.value.file == str(tmp_path / "nope.json")


def test_add_permission_creates_appends_and_refuses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "policies" / "credit.json"
    project = f"arn:aws:mobiletargeting:us-east-1:{ACCOUNT}:apps/app-1/campaigns/*"
    out = add_permission(
        path,
        function_name="credit",
        statement_id="pinpoint-app-1",
        action="lambda:InvokeFunction",
        principal="pinpoint.us-east-1.amazonaws.com",
        source_account=ACCOUNT,
        source_arn=project,
        account=ACCOUNT,
    )
    first = json.loads(out["Statement"])
    assert first == {
        "Sid": "pinpoint-app-1",
        "Effect": "Allow",
        "Principal": {"Service": "pinpoint.us-east-1.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:credit",
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": ACCOUNT},
            "ArnLike": {"AWS:SourceArn": project},
        },
    }
    doc = json.loads(path.read_text())
    assert doc == {"Version": "2012-10-17", "Id": "default", "Statement": [first]}
    assert load_policy(path).allows(ARN, ACCOUNT)
    assert not load_policy(path).allows(OTHER_APP, ACCOUNT)

    out = add_permission(
        path,
        function_name="credit",
        statement_id="pinpoint-app-2",
        action="lambda:InvokeFunction",
        principal="pinpoint.amazonaws.com",
        source_arn=OTHER_APP,
        account=ACCOUNT,
    )
    assert [s["Sid"] for s in json.loads(path.read_text())["Statement"]] == [
        "pinpoint-app-1",
        "pinpoint-app-2",
    ]
    assert load_policy(path).allows(OTHER_APP, ACCOUNT)

    before = path.read_text()
    with pytest.raises(
        ConfigError,
        match=r"ResourceConflictException: The statement id \(sid\) "
        "provided already exists",
    ):
        add_permission(
            path,
            function_name="credit",
            statement_id="pinpoint-app-1",
            action="lambda:InvokeFunction",
            principal="pinpoint.amazonaws.com",
        )
    assert path.read_text() == before


def test_add_permission_principal_forms_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    out = add_permission(
        path,
        function_name=f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:f",
        statement_id="acct",
        action="lambda:*",
        principal=ACCOUNT,
    )
    stmt = json.loads(out["Statement"])
    assert stmt["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert stmt["Resource"] == f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:f"
    assert "Condition" not in stmt
    assert not load_policy(path).allows(ARN, ACCOUNT)  # an account principal is not Pinpoint
    for bad in [
        {"statement_id": "has space"},
        {"action": "s3:GetObject"},
        {"source_account": "12345"},
        {"source_arn": "not-an-arn"},
    ]:
        kwargs: dict[str, Any] = {
            "function_name": "f",
            "statement_id": "ok",
            "action": "lambda:InvokeFunction",
            "principal": "pinpoint.amazonaws.com",
            **bad,
        }
        with pytest.raises(ConfigError, match="InvalidParameterValueException"):
            add_permission(path, **kwargs)


def test_add_permission_to_an_existing_get_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    doc = {"Version": "2012-10-17", "Id": "default", "Statement": [statement()]}
    path.write_text(json.dumps({"Policy": json.dumps(doc), "RevisionId": "r"}))
    add_permission(
        path,
        function_name="credit",
        statement_id="second",
        action="lambda:InvokeFunction",
        principal="pinpoint.amazonaws.com",
        source_arn=OTHER_APP,
    )
    rewritten = json.loads(path.read_text())
    assert [s["Sid"] for s in rewritten["Statement"]] == ["sid", "second"]
    assert rewritten["Version"] == "2012-10-17"
    p = load_policy(path)
    assert p.allows(ARN, ACCOUNT) and p.allows(OTHER_APP, ACCOUNT)
