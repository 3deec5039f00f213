"""Lambda resource policies: may Amazon Pinpoint invoke this function for this campaign?

A policy file is Lambda's own JSON, in any of the forms the AWS tools print or people
write:

- a policy document ``{"Version": "2012-10-17", "Id": ..., "Statement": [...]}``
  (``Statement`` may also be one object);
- what ``aws lambda get-policy`` prints: ``{"Policy": "<document as a JSON string>"}``;
- what ``aws lambda add-permission`` prints: ``{"Statement": "<statement JSON string>"}``;
- one bare statement ``{"Sid": ..., "Effect": ..., ...}`` (as in the Pinpoint guide).

Evaluation follows IAM for the request Amazon Pinpoint makes (action
``lambda:InvokeFunction``, condition keys ``AWS:SourceArn`` and ``AWS:SourceAccount``):
a statement applies when its principal, action and every condition match; an applicable
``Deny`` wins; otherwise an applicable ``Allow`` allows; otherwise the call is denied.

- ``Principal``: ``"*"``, ``{"AWS": "*"}``, or ``{"Service": ...}`` naming Pinpoint
  (``pinpoint.amazonaws.com``, ``pinpoint.<region>.amazonaws.com``) or left empty
  (``""``, as the Pinpoint guide prints it). Other principals (an account, a role,
  another service) do not match. ``NotPrincipal`` inverts this.
- ``Action`` / ``NotAction``: a string or a list, case-insensitive, ``*`` and ``?``
  wildcards (``lambda:*``, ``*``, ``lambda:Invoke*``).
- ``Resource`` is not checked: a policy file belongs to one function.
- ``Condition``: the String, Arn, Null and other IAM operators, with the ``IfExists``
  suffix and ``ForAnyValue:`` / ``ForAllValues:`` prefixes; keys are case-insensitive;
  ``*`` and ``?`` wildcards in the ``*Like`` and ``Arn*`` operators; ARNs are compared
  component by component (a pattern with fewer than six components, such as ``*``,
  matches the rest of the ARN with its last one). A key the request does not have
  makes a positive operator false and a negated one (``StringNotEquals``,
  ``ArnNotLike``...) true, as in IAM. Operators on other value types (Numeric, Date,
  Bool, IpAddress, Binary) never match a Pinpoint string key.
- Source ARNs: older Pinpoint documents wrote ``arn:aws:mobiletargeting:R:A:/apps/...``
  with a leading slash. A request's source ARN is taken in both forms: a positive
  operator holds if it holds for either form, a negated one only if it holds for both.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from dispatcher.aws.partitions import partition_for_region
from dispatcher.errors import ConfigError

INVOKE_ACTION = "lambda:InvokeFunction"
SOURCE_ARN = "aws:sourcearn"
SOURCE_ACCOUNT = "aws:sourceaccount"

_PINPOINT_SERVICE = re.compile(r"^pinpoint(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$", re.IGNORECASE)
_STATEMENT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
_ACTION = re.compile(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$")
_ACCOUNT = re.compile(r"^\d{12}$")
_SOURCE_ARN = re.compile(r"^arn:aws[a-zA-Z0-9-]*:[a-zA-Z0-9-]+:[a-z0-9-]*:(\d{12})?:.*$")

_STRING_OPS = {
    "stringequals", "stringnotequals", "stringequalsignorecase", "stringnotequalsignorecase",
    "stringlike", "stringnotlike",
}
_ARN_OPS = {"arnequals", "arnlike", "arnnotequals", "arnnotlike"}
_OTHER_OPS = {
    "numericequals", "numericnotequals", "numericlessthan", "numericlessthanequals",
    "numericgreaterthan", "numericgreaterthanequals", "dateequals", "datenotequals",
    "datelessthan", "datelessthanequals", "dategreaterthan", "dategreaterthanequals",
    "bool", "binaryequals", "ipaddress", "notipaddress",
}
_NEGATED = {"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals",
            "arnnotlike", "numericnotequals", "datenotequals", "notipaddress"}


def source_arn(region: str, account: str, application_id: str, campaign_id: str) -> str:
    """The ``AWS:SourceArn`` Amazon Pinpoint invokes a campaign hook with."""
    return (
        f"arn:{partition_for_region(region)}:mobiletargeting:{region}:{account}:"
        f"apps/{application_id}/campaigns/{campaign_id}"
    )


def _arn_forms(arn: str) -> tuple[str, ...]:
    """The ARN as given and in the other Pinpoint form (with/without ``:/apps/``)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "mobiletargeting":
        return (arn,)
    head, resource = ":".join(parts[:5]), parts[5]
    other = resource[1:] if resource.startswith("/") else f"/{resource}"
    return (arn, f"{head}:{other}")


@lru_cache(maxsize=512)
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.compile(f"^{body}$", flags)


def _arn_match(pattern: str, arn: str) -> bool:
    """ArnLike/ArnEquals: the six colon-separated components, each matched with wildcards.

    A pattern with fewer components (``*``, ``arn:aws:mobiletargeting:*``) matches the
    rest of the ARN, colons included, with its last component.
    """
    want = pattern.split(":", 5)
    have = arn.split(":", len(want) - 1)
    if len(have) != len(want) or len(arn.split(":", 5)) != 6:
        return False
    return all(_wildcard(w).match(h) is not None for w, h in zip(want, have, strict=True))


@dataclass(frozen=True)
class Condition:
    """One ``{"Operator": {"Key": values}}`` entry."""

    operator: str
    key: str
    values: tuple[str, ...]

    def holds(self, context: Mapping[str, Sequence[str]]) -> bool:
        op = self.operator.lower()
        if_exists = op.endswith("ifexists")
        op = op.removesuffix("ifexists")
        if ":" in op:  # ForAnyValue: / ForAllValues: on single-valued keys
            op = op.split(":", 1)[1]
        have = context.get(self.key)
        if op == "null":
            want_absent = any(v.lower() == "true" for v in self.values)
            return (have is None) == want_absent
        if have is None:
            return if_exists or op in _NEGATED
        if op in _OTHER_OPS:
            return op in _NEGATED
        negated = op in _NEGATED
        positive = op.replace("not", "", 1) if negated else op
        matched = any(
            self._matches(positive, want, value) for want in self.values for value in have
        )
        return not matched if negated else matched

    @staticmethod
    def _matches(op: str, want: str, value: str) -> bool:
        if op == "stringequals":
            return want == value
        if op == "stringequalsignorecase":
            return want.lower() == value.lower()
        if op == "stringlike":
            return _wildcard(want).match(value) is not None
        return _arn_match(want, value)  # arnequals / arnlike


def _scalar(value: Any) -> str | None:
    """A condition value as IAM reads it: strings, and numbers/booleans as their text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _patterns(value: Any, where: str, file: str, *, scalars: bool = False) -> tuple[str, ...]:
    convert = _scalar if scalars else (lambda v: v if isinstance(v, str) else None)
    items = value if isinstance(value, list) else [value]
    out = tuple(convert(v) for v in items)
    if out and all(v is not None for v in out):
        return out  # type: ignore[return-value]
    raise ConfigError("must be a string or a non-empty list of strings", file=file, key=where)


@dataclass(frozen=True)
class Statement:
    """One policy statement, reduced to what the evaluation needs."""

    sid: str | None
    effect: str
    principal_any: bool
    services: tuple[str, ...]
    not_principal: bool
    actions: tuple[str, ...]
    not_action: bool
    conditions: tuple[Condition, ...]

    def applies(self, context: Mapping[str, Sequence[str]]) -> bool:
        return (
            self._principal()
            and self._action()
            and all(c.holds(context) for c in self.conditions)
        )

    def _principal(self) -> bool:
        pinpoint = self.principal_any or any(
            s == "" or _PINPOINT_SERVICE.match(s) for s in self.services
        )
        return not pinpoint if self.not_principal else pinpoint

    def _action(self) -> bool:
        matched = any(_wildcard(a, True).match(INVOKE_ACTION) for a in self.actions)
        return not matched if self.not_action else matched


def _principal(
    stmt: Mapping[str, Any], where: str, file: str
) -> tuple[bool, tuple[str, ...], bool]:
    """(anyone, service names, negated) of a Principal or NotPrincipal element."""
    key = "NotPrincipal" if "NotPrincipal" in stmt else "Principal"
    if key not in stmt:
        raise ConfigError("a statement needs a Principal", file=file, key=where)
    value = stmt[key]
    if value == "*":
        return True, (), key == "NotPrincipal"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be \"*\" or an object such as "
                          '{"Service": "pinpoint.amazonaws.com"}', file=file, key=f"{where}.{key}")
    anyone = False
    services: tuple[str, ...] = ()
    for kind, names in value.items():
        listed = [names] if isinstance(names, str) else names
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise ConfigError("must be a string or a list of strings", file=file,
                              key=f"{where}.{key}.{kind}")
        if kind == "AWS" and "*" in listed:
            anyone = True
        elif kind == "Service":
            services += tuple(listed)
    return anyone, services, key == "NotPrincipal"


def _conditions(value: Any, where: str, file: str) -> tuple[Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError("Condition must be an object", file=file, key=where)
    out = []
    for operator, block in value.items():
        op = str(operator).lower().removesuffix("ifexists")
        if ":" in op:
            prefix, op = op.split(":", 1)
            if prefix not in ("foranyvalue", "forallvalues"):
                raise ConfigError(f"unknown condition set operator {operator!r}", file=file,
                                  key=where)
        if op not in _STRING_OPS | _ARN_OPS | _OTHER_OPS | {"null"}:
            raise ConfigError(f"unknown condition operator {operator!r}", file=file, key=where)
        if not isinstance(block, Mapping):
            raise ConfigError("must be an object of condition keys", file=file,
                              key=f"{where}.{operator}")
        for key, values in block.items():
            out.append(Condition(str(operator), str(key).lower(),
                                 _patterns(values, f"{where}.{operator}.{key}", file,
                                           scalars=True)))
    return tuple(out)


def _statement(raw: Any, where: str, file: str) -> Statement:
    if not isinstance(raw, Mapping):
        raise ConfigError("a statement must be an object", file=file, key=where)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise ConfigError(f"Effect must be \"Allow\" or \"Deny\", got {effect!r}", file=file,
                          key=f"{where}.Effect")
    action_key = "NotAction" if "NotAction" in raw else "Action"
    if action_key not in raw:
        raise ConfigError("a statement needs an Action", file=file, key=where)
    anyone, services, not_principal = _principal(raw, where, file)
    sid = raw.get("Sid")
    return Statement(
        sid=str(sid) if sid is not None else None,
        effect=effect,
        principal_any=anyone,
        services=services,
        not_principal=not_principal,
        actions=_patterns(raw[action_key], f"{where}.{action_key}", file),
        not_action=action_key == "NotAction",
        conditions=_conditions(raw.get("Condition"), f"{where}.Condition", file),
    )


@dataclass(frozen=True)
class Decision:
    """The outcome of an evaluation and the statement that decided it (if any)."""

    allowed: bool
    statement: Statement | None
    reason: str


@dataclass(frozen=True)
class Policy:
    """A parsed resource policy; ``allows`` answers for Amazon Pinpoint's invocation."""

    statements: tuple[Statement, ...]
    file: str = ""
    version: str = "2012-10-17"
    id: str | None = None

    def evaluate(self, source_arn: str, source_account: str | None) -> Decision:
        """Decide, with the deciding statement: explicit Deny, then Allow, else implicit deny."""
        context: dict[str, Sequence[str]] = {SOURCE_ARN: _arn_forms(source_arn)}
        if source_account is not None:
            context[SOURCE_ACCOUNT] = (source_account,)
        allow: Statement | None = None
        for stmt in self.statements:
            if stmt.applies(context):
                if stmt.effect == "Deny":
                    return Decision(False, stmt, f"explicitly denied by statement {stmt.sid!r}")
                allow = allow or stmt
        if allow is not None:
            return Decision(True, allow, f"allowed by statement {allow.sid!r}")
        return Decision(False, None, "no statement allows it")

    def allows(self, source_arn: str, source_account: str | None) -> bool:
        """True if Amazon Pinpoint may invoke the function for ``source_arn``."""
        return self.evaluate(source_arn, source_account).allowed


def _document(data: Any, file: str) -> dict[str, Any]:
    """Normalize every accepted form to a policy document (a dict with a Statement list)."""
    if isinstance(data, Mapping) and isinstance(data.get("Policy"), str):
        data = _loads(data["Policy"], file, "Policy")
    if isinstance(data, list):
        data = {"Statement": data}
    if not isinstance(data, Mapping):
        raise ConfigError("a policy must be a JSON object", file=file)
    if "Statement" not in data:
        if "Effect" in data:
            return {"Version": "2012-10-17", "Statement": [dict(data)]}
        raise ConfigError("a policy needs a Statement (or must be one statement)", file=file)
    doc = dict(data)
    statements = doc["Statement"]
    if isinstance(statements, str):
        statements = _loads(statements, file, "Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list):
        raise ConfigError("Statement must be a list of statements", file=file, key="Statement")
    doc["Statement"] = statements
    return doc


def _loads(text: str, file: str, key: str | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                          file=file, key=key) from exc


def parse_policy(data: Any, file: str = "<policy>") -> Policy:
    """Parse an already-decoded policy in any accepted form; ConfigError if malformed."""
    doc = _document(data, file)
    statements = tuple(
        _statement(raw, f"Statement[{i}]", file) for i, raw in enumerate(doc["Statement"])
    )
    return Policy(statements, file=file, version=str(doc.get("Version", "2012-10-17")),
                  id=doc.get("Id"))


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read policy: {reason}", file=str(path)) from exc
    return _document(_loads(text, str(path)), str(path))


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a policy file; ConfigError naming the file if it cannot be used."""
    p = Path(path)
    doc = read_document(p)
    return parse_policy(doc, str(p))


__all__ = [
    "INVOKE_ACTION",
    "Condition",
    "Decision",
    "Policy",
    "Statement",
    "load_policy",
    "parse_policy",
    "read_document",
    "source_arn",
]

