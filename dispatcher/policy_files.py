"""``dispatcher lambda add-permission``: append a statement to a function's policy file,
like ``aws lambda add-permission`` (the file is what ``dispatcher.policy`` evaluates)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dispatcher.aws.partitions import partition_for_region
from dispatcher.errors import ConfigError
from dispatcher.policy import parse_policy, read_document

__all__ = ["add_permission"]

_STATEMENT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
_ACTION = re.compile(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$")
_ACCOUNT = re.compile(r"^\d{12}$")
_SOURCE_ARN = re.compile(r"^arn:aws[a-zA-Z0-9-]*:[a-zA-Z0-9-]+:[a-z0-9-]*:(\d{12})?:.*$")


def _function_arn(function_name: str, region: str, account: str) -> str:
    if function_name.startswith("arn:"):
        return function_name
    parts = function_name.split(":")
    if len(parts) == 3 and parts[1] == "function":  # ACCOUNT:function:NAME
        return f"arn:{partition_for_region(region)}:lambda:{region}:{function_name}"
    return f"arn:{partition_for_region(region)}:lambda:{region}:{account}:function:{function_name}"


def _principal_element(principal: str) -> Any:
    if principal == "*":
        return "*"
    if _ACCOUNT.match(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    return {"Service": principal}


def add_permission(
    policy_file: str | os.PathLike[str],
    *,
    function_name: str,
    statement_id: str,
    action: str,
    principal: str,
    source_account: str | None = None,
    source_arn: str | None = None,
    region: str = "us-east-1",
    account: str = "000000000000",
) -> dict[str, str]:
    """Append a statement to ``policy_file`` like ``aws lambda add-permission``.

    Creates the file as ``{"Version": "2012-10-17", "Id": "default", "Statement": []}``
    if it does not exist. Returns what the AWS CLI prints: ``{"Statement": "<JSON>"}``.
    A statement id already in the policy is a ConfigError (Lambda's
    ``ResourceConflictException``).
    """
    path = Path(policy_file)
    file = str(path)
    if not _STATEMENT_ID.match(statement_id):
        raise ConfigError(f"--statement-id {statement_id!r} must be 1-100 letters, digits, "
                          "'-' or '_' (InvalidParameterValueException)", file=file)
    if not _ACTION.match(action):
        raise ConfigError(f"--action {action!r} must be lambda:ACTION, lambda:* or * "
                          "(InvalidParameterValueException)", file=file)
    if source_account is not None and not _ACCOUNT.match(source_account):
        raise ConfigError(f"--source-account {source_account!r} must be a 12-digit account "
                          "id (InvalidParameterValueException)", file=file)
    if source_arn is not None and not _SOURCE_ARN.match(source_arn):
        raise ConfigError(f"--source-arn {source_arn!r} is not an ARN "
                          "(InvalidParameterValueException)", file=file)
    if path.exists():
        doc = read_document(path)
        parse_policy(doc, file)  # refuse to append to a policy that is already invalid
    else:
        doc = {"Version": "2012-10-17", "Id": "default", "Statement": []}
    if any(isinstance(s, Mapping) and s.get("Sid") == statement_id for s in doc["Statement"]):
        raise ConfigError(
            "ResourceConflictException: The statement id (sid) provided already exists. "
            "Please provide a new statement id, or remove the existing statement.",
            file=file,
        )
    statement: dict[str, Any] = {
        "Sid": statement_id,
        "Effect": "Allow",
        "Principal": _principal_element(principal),
        "Action": action,
        "Resource": _function_arn(function_name, region, account),
    }
    condition: dict[str, Any] = {}
    if source_account is not None:
        condition["StringEquals"] = {"AWS:SourceAccount": source_account}
    if source_arn is not None:
        condition["ArnLike"] = {"AWS:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
    doc["Statement"] = [*doc["Statement"], statement]
    doc = {"Version": doc.pop("Version", "2012-10-17"), **doc}
    _write_atomic(path, json.dumps(doc, indent=2) + "\n")
    return {"Statement": json.dumps(statement, separators=(",", ":"))}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


